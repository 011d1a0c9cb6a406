#!/usr/bin/env bash
# The README's main command: install what is missing (scripts/setup.sh: Debian packages, npm ci and
# dist/, the demo kernel, initrd and test firmware), then run `sevsup demo`: one SEV guest launched,
# measured, verified with libvirt's virt-qemu-sev-validate, given a secret and run, on the
# SIMULATED SEV platform, in a temporary directory. Arguments go to `sevsup demo` (e.g. --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/sevsup demo "$@"
