#!/usr/bin/env bash
# Builds the test and demo assets in .cache/test-assets/ (git-ignored):
#  - vmlinuz: Debian's cloud kernel (apt-get download + dpkg -x), a real ~14 MB bzImage;
#  - ovmf-sev-test.fd: a copy of Debian's OVMF.fd whose footer table declares a kernel-hashes
#    area and a launch-secret area (Debian's declare base 0, size 0, which QEMU refuses for
#    kernel-hashes). Real SEV hosts use the OVMF AmdSev build (OvmfPkg/AmdSev/AmdSevX64.dsc);
#  - ovmf-snp-test.fd: a copy of Debian's OVMF.fd with SNP metadata and a KERNEL_HASHES section
#    (make-test-firmware.mjs --snp kernel-hashes): the demo's SNP guest boots it with a measured kernel;
#  - demo-initrd.img: a busybox initramfs whose /init prints a greeting and powers off;
#  - sim-state/: the simulated SEV-SNP platform's state directory (its SIMULATED ARK → ASK → VCEK
#    chain and chip key, 0600; two RSA-4096 keys, up to a minute): what tests and the demo pass as
#    --sim-state-dir. An installed sim makes its own on first use ($XDG_STATE_HOME/sevsup-sim).
# Needs dist/ (npm run build) for the firmware patcher.
#   usage: setup-test-assets.sh [ASSET…]   (default: all; the Dockerfile makes the two that
#   need no build before copying the sources, so a source change does not download the kernel)
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=.cache/test-assets
mkdir -p "$ASSETS"
wanted=("$@")
((${#wanted[@]})) || wanted=(vmlinuz ovmf-sev-test.fd ovmf-snp-test.fd demo-initrd.img sim-state)
for w in "${wanted[@]}"; do
  case $w in vmlinuz | ovmf-sev-test.fd | ovmf-snp-test.fd | demo-initrd.img | sim-state) ;; *) echo "setup: no asset '$w' (vmlinuz, ovmf-sev-test.fd, ovmf-snp-test.fd, demo-initrd.img, sim-state)" >&2; exit 2 ;; esac
done
want() { [[ " ${wanted[*]} " == *" $1 "* && ! -s "$ASSETS/$1" ]]; }

if want vmlinuz; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
  [[ -n "$pkg" ]] || { echo "setup: cannot find the cloud kernel package (apt-get update?)" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "setup: downloading $pkg"
  chmod 0755 "$tmp"   # apt drops to _apt for downloads
  (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
  dpkg -x "$tmp"/*.deb "$tmp/root"
  cp "$tmp"/root/boot/vmlinuz-* "$ASSETS/vmlinuz.tmp"
  mv "$ASSETS/vmlinuz.tmp" "$ASSETS/vmlinuz"
  rm -rf "$tmp"
  trap - EXIT
fi

if want ovmf-sev-test.fd; then
  node scripts/make-test-firmware.mjs /usr/share/ovmf/OVMF.fd "$ASSETS/ovmf-sev-test.fd"
fi
if want ovmf-snp-test.fd; then
  node scripts/make-test-firmware.mjs /usr/share/ovmf/OVMF.fd "$ASSETS/ovmf-snp-test.fd" --snp kernel-hashes >/dev/null
fi

if want demo-initrd.img && [[ -x /bin/busybox ]]; then
  bash scripts/make-demo-initrd.sh "$ASSETS/demo-initrd.img"
fi
if [[ " ${wanted[*]} " == *" sim-state "* && -s dist/bundle/sevsup-sim-qemu.mjs ]]; then
  node bin/sevsup-sim-qemu --sim-init-snp-platform --sim-state-dir "$ASSETS/sim-state" >/dev/null
fi
echo "setup: test assets ready in $ASSETS"
