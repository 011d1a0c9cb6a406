#!/usr/bin/env bash
# The README's main command: install what is missing (scripts/setup.sh: Debian packages, npm ci and
# dist/, the demo kernel, initrd and test firmware, the simulated SNP chain), then run `sevsup demo`
# on the SIMULATED SEV platform, in a temporary directory: one SEV guest launched, measured, relayed
# by the daemon to its owner's service (`sevsup owner serve`), which verifies it, sends a secret and
# approves with nobody typing (libvirt's virt-qemu-sev-validate agrees), and a changed launch
# rejected by that service; one SEV-SNP guest pinned by its
# owner's ID block, its report verified offline, and a changed launch refused by the platform.
# Arguments go to `sevsup demo` (e.g. --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/sevsup demo "$@"
