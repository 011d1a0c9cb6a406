#!/usr/bin/env bash
# Makes .cache/qemu10-root: a minbase Debian trixie root filesystem with trixie's QEMU 10
# (qemu-system-x86, no recommends) and OVMF, for the tests that need QEMU >= 9.1 (sev-snp-guest)
# and trixie's OVMF.fd; they run QEMU in it with chroot (integration/snp/). Run as root.
# Cached by its recipe, as docker-base.sh caches the Docker base: the root carries a hash of the
# functions below (and lib/debian-root.sh's make_rootfs), the suite and the mirror, and is made
# again only when that hash changes. Atomic: built in a temporary directory next to it and
# renamed into place, so a failed or interrupted run leaves the old root (or none), never half of one.
# Exit codes: 0 ready; 1 it could not be made (no network, apt, debootstrap): the last stderr line
# starts with "qemu10-root: failed:". setup.sh only warns on that; the tests then skip, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=${SEVSUP_QEMU10_ROOT_DIR:-.cache/qemu10-root}
SUITE=trixie
PACKAGES=(qemu-system-x86 ovmf)
log() { echo "qemu10-root: $*" >&2; }
failed() { log "failed: $*"; exit 1; }

[[ $EUID -eq 0 ]] || failed "must run as root (debootstrap, chroot)"

# shellcheck source=lib/debian-root.sh
source scripts/lib/debian-root.sh

# The recipe on top of make_rootfs: $1 packages installed in root $2 (apt-get in a chroot, in a
# private mount namespace so /proc is never left mounted), package lists dropped afterwards.
install_packages() {
  local dir=$2
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  # No daemon starts inside the chroot while packages are configured.
  printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"
  chmod 0755 "$dir/usr/sbin/policy-rc.d"
  unshare -m sh -c '
    mount -t proc proc "$1/proc"
    chroot "$1" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$1" apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends $2 >/dev/null
  ' sh "$dir" "$1"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin
}

m=$(mirror)
RECIPE=$(printf '%s\n' "$(declare -f make_rootfs install_packages)" "$SUITE" "$m" "${PACKAGES[*]}" | sha256sum | cut -c1-16)
if [[ -f $ROOT/.sevsup-recipe && "$(cat "$ROOT/.sevsup-recipe")" == "$RECIPE" ]]; then
  log "$ROOT is up to date (recipe $RECIPE)"
  exit 0
fi
[[ ! -e $ROOT ]] || log "$ROOT is not from recipe $RECIPE: making it again"
start=$SECONDS
ensure_debootstrap || failed "cannot install debootstrap (apt-get)"
mkdir -p "$(dirname "$ROOT")"
tmp=$(mktemp -d "$ROOT.tmp.XXXXXX")
chmod 0755 "$tmp" # apt drops to _apt for downloads
trap 'rm -rf "$tmp" "$tmp.log" "$ROOT.old"' EXIT
log "debootstrap --variant=minbase $SUITE from $m, then ${PACKAGES[*]}"
make_rootfs "$SUITE" "$m" "$tmp" || failed "debootstrap $SUITE from $m did not work (no network?)"
install_packages "${PACKAGES[*]}" "$tmp" || failed "apt-get install ${PACKAGES[*]} in the $SUITE root did not work"
[[ -x $tmp/usr/bin/qemu-system-x86_64 && -s $tmp/usr/share/ovmf/OVMF.fd ]] || failed "the root has no QEMU or OVMF.fd"
echo "$RECIPE" > "$tmp/.sevsup-recipe"
# Swap in: the old root (if any) moves aside first; rename(2) is atomic within .cache.
[[ ! -e $ROOT ]] || mv "$ROOT" "$ROOT.old"
mv "$tmp" "$ROOT"
rm -rf "$ROOT.old"
trap - EXIT
log "ready: $ROOT ($(chroot "$ROOT" qemu-system-x86_64 -version | head -n1); $((SECONDS - start)) s)"
