#!/usr/bin/env bash
# Build the independent SNP report verifier the tests compare against: test/oracle/snporacle (our
# ~100 lines) on Debian's go-sev-guest 0.15 (sid's golang-github-google-go-sev-guest-dev), with
# trixie's Go 1.24, in a trixie chroot (bookworm's Go 1.19 is too old). Not part of setup.sh: it
# downloads a root filesystem (~2 minutes, ~600 MB). Output: .cache/snporacle; the tests use it
# when present (or $SNP_ORACLE) and say so when they skip it.
# The Debian package leaves out the AMD PEMs go-sev-guest embeds (verify/trust/*.pem); the oracle
# never uses them (it is always given the roots), so any parseable chain fills the gap.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -f dist/sev/snp-cert-builder.js ]] || npm run --silent build
out="$PWD/.cache/snporacle"
root="${SNP_ORACLE_ROOT:-/tmp/sevsup-gsg-root}"
[[ -x "$root/usr/bin/go" ]] || {
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian >/dev/null
}
cat >"$root/etc/apt/sources.list" <<'LIST'
deb http://deb.debian.org/debian trixie main
deb http://deb.debian.org/debian sid main
LIST
src="$root/root/go/src"
mkdir -p "$src/snporacle"
cp test/oracle/snporacle/main.go "$src/snporacle/"
chroot "$root" bash -euc '
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o Acquire::Check-Valid-Until=false update -qq
  apt-get -o Acquire::Check-Valid-Until=false install -y -qq --no-install-recommends -t trixie golang-go ca-certificates >/dev/null
  apt-get -o Acquire::Check-Valid-Until=false install -y -qq --no-install-recommends golang-github-google-go-sev-guest-dev >/dev/null
  mkdir -p /root/go/src/github.com/google
  rm -rf /root/go/src/github.com/google/go-sev-guest
  cp -r /usr/share/gocode/src/github.com/google/go-sev-guest /root/go/src/github.com/google/
'
node --input-type=module -e '
  const { buildChain, derToPem } = await import("./dist/sev/snp-cert-builder.js");
  const c = await import("node:crypto"); const fs = await import("node:fs");
  const k = (n) => c.createPrivateKey(fs.readFileSync(`test/fixtures/snp-keys/${n}.key`));
  const ch = buildChain({ product: "Milan", kind: "vcek", keys: { ark: k("ark"), intermediate: k("ask"), leaf: c.generateKeyPairSync("ec", { namedCurve: "secp384r1" }).privateKey }, tcb: { bootloader: 0, tee: 0, snp: 0, microcode: 0 } });
  process.stdout.write(derToPem(ch.intermediate) + derToPem(ch.ark));
' >"$root/tmp/placeholder-chain.pem"
for f in ask_ark_milan ask_ark_milan_vlek ask_ark_genoa ask_ark_genoa_vlek ask_ark_turin_vcek ask_ark_turin_vlek; do
  cp "$root/tmp/placeholder-chain.pem" "$src/github.com/google/go-sev-guest/verify/trust/$f.pem"
done
# GOROOT given: the chroot has no /proc, so Debian's trimmed go binary cannot find its root from its own path.
chroot "$root" bash -euc 'cd /root/go/src/snporacle && GOROOT=/usr/lib/go GOPATH=/root/go:/usr/share/gocode GO111MODULE=off GOCACHE=/root/.cache/go-build go build -o /root/snporacle .'
mkdir -p "$(dirname "$out")"
cp "$root/root/snporacle" "$out"
echo "built $out"
