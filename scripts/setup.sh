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
