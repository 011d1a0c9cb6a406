#!/usr/bin/env bash
# Installs everything sevsup and its tests need on a Debian 12 + Node 20 machine (run as root):
# Debian packages, npm dependencies (npm ci, which also compiles dist/), and the test assets
# (a real kernel and a test firmware, built locally; nothing big is committed). Idempotent: a
# second run only does what is missing, so the quick-start commands can call it every time.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  qemu-system-x86 qemu-utils ovmf            # QEMU 7.2 and Debian's OVMF firmware
  libvirt-clients-qemu                       # virt-qemu-sev-validate, the independent oracle
  python3-lxml python3-libvirt python3-cryptography  # what the validator imports
  openssl                                    # hashing baseline for benchmarks; SNP chain/signature cross-checks
  busybox-static cpio                        # the demo guest's tiny initramfs
  systemd                                    # systemd-analyze verify for the unit files
  debootstrap                                # the QEMU 10 root (setup-qemu10-root.sh) and the Docker base
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $EUID -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]}; run as root (or apt-get install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The QEMU 10 root (trixie's QEMU and OVMF, for the SNP tests) in the background: it is mostly
# downloading, so it overlaps npm ci and the test assets. Without it (no network, not root) setup
# only warns: the QEMU 10 tests skip and say why.
mkdir -p .cache
bash scripts/setup-qemu10-root.sh >.cache/qemu10-root.log 2>&1 &
qemu10_pid=$!

# npm ci only when the lock file changed since the last install (npm ci wipes node_modules).
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f node_modules/.sevsup-lock-sum || "$(cat node_modules/.sevsup-lock-sum)" != "$lock_sum" ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.sevsup-lock-sum
fi
echo "setup: building dist/"
npm run --silent build

bash scripts/setup-test-assets.sh

if wait "$qemu10_pid"; then
  tail -n 1 .cache/qemu10-root.log
else
  echo "setup: warning: no QEMU 10 root, so the QEMU 10 (SEV-SNP) tests will skip: $(tail -n 1 .cache/qemu10-root.log)" >&2
  echo "setup: (full log: .cache/qemu10-root.log; retry: bash scripts/setup-qemu10-root.sh)" >&2
fi
