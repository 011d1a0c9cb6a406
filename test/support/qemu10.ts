// Test support: QEMU 10 (Debian trixie's, from the root setup-qemu10-root.sh makes) run as if it
// were installed here: a wrapper executable that starts it with chroot in a private mount
// namespace (unshare -m), with /dev, /proc and one test directory under /tmp bind-mounted at their
// own paths, so argv paths mean the same inside and out. The mounts live and die with the process
// (nothing stays mounted); unshare, sh and chroot each exec the next, so the wrapper's pid is QEMU's.
// Must not: write into the root (it is shared by every test; /tmp inside is a private tmpfs).
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { QEMU10_ROOT } from './it-env.js';

/** A fresh directory under /tmp that the wrapper shows QEMU 10 at the same path. */
export function qemu10Dir(prefix: string): string {
  return mkdtempSync(join('/tmp', prefix));
}

/** Writes `<dir>/qemu-system-x86_64`, QEMU 10 seeing `dir`; returns its path. */
export function writeQemu10Wrapper(dir: string): string {
  const wrapper = join(dir, 'qemu-system-x86_64');
  const inner =
    'root=$1; dir=$2; shift 2; ' +
    'mount --bind /dev "$root/dev" && mount --bind /proc "$root/proc" && mount -t tmpfs -o size=1m tmpfs "$root/tmp" && ' +
    'mkdir -p "$root$dir" && mount --bind "$dir" "$root$dir" && exec chroot "$root" qemu-system-x86_64 "$@"';
  writeFileSync(
    wrapper,
    `#!/bin/sh\n# QEMU 10 from ${QEMU10_ROOT}, seeing ${dir} (test/support/qemu10.ts)\n` +
      `exec unshare -m sh -c '${inner}' sh '${QEMU10_ROOT}' '${dir}' "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  return wrapper;
}

/**
 * For a suite that runs only when `runs`: its directory and the wrapper seeing it, removed after
 * the suite. Nothing is made for a skipped suite (whose afterAll would never run).
 */
export function qemu10Workspace(prefix: string, runs: boolean): { readonly dir: string; readonly qemu: string } {
  if (!runs) return { dir: '', qemu: '' };
  const dir = qemu10Dir(prefix);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, qemu: writeQemu10Wrapper(dir) };
}
