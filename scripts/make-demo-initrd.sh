#!/usr/bin/env bash
# Builds a tiny initramfs (busybox-static) for the demo guest: /init mounts /proc and /sys,
# prints what the guest can see of SEV, and powers the guest off. Usage: make-demo-initrd.sh OUT
set -euo pipefail
out=$1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,proc,sys,dev}
cp /bin/busybox "$root/bin/busybox"
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
echo "sevsup-demo: hello from the guest, running on $(/bin/busybox uname -r)"
echo "sevsup-demo: kernel command line: $(/bin/busybox cat /proc/cmdline)"
if /bin/busybox dmesg | /bin/busybox grep -q 'Memory Encryption Features active'; then
  echo "sevsup-demo: memory encryption is active"
else
  echo "sevsup-demo: memory encryption not active (simulated platform: QEMU runs this guest unencrypted)"
fi
echo "sevsup-demo: powering off"
/bin/busybox poweroff -f
INIT
chmod 0755 "$root/init"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -9) > "$out.tmp"
mv "$out.tmp" "$out"
