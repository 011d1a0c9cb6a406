// Test helper for integration suites that run built binaries (bin/sevsup, bin/sevsup-sim-qemu) and
// QEMU: where the repo, the binaries and the test assets are, whether a suite can run here, and
// which processes still mention a test's private directory (nothing may be left behind).
// Must not: start or kill processes (the suites' harnesses do, by pid).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Live (non-zombie) processes whose command line mentions a text, other than this test process. */
export { processesMentioning } from '../../src/process/pid.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const SEVSUP = join(REPO, 'bin', 'sevsup');
export const SIM = join(REPO, 'bin', 'sevsup-sim-qemu');
export const ASSETS = join(REPO, '.cache', 'test-assets');
export const KERNEL = join(ASSETS, 'vmlinuz');
export const TEST_FIRMWARE = join(ASSETS, 'ovmf-sev-test.fd');
export const DEBIAN_OVMF = '/usr/share/ovmf/OVMF.fd';
export const VALIDATOR = '/usr/bin/virt-qemu-sev-validate';
export const PYTHON = '/usr/bin/python3';
export const REAL_QEMU = '/usr/bin/qemu-system-x86_64';
/**
 * A Debian trixie root with QEMU 10 and trixie's OVMF (scripts/setup-qemu10-root.sh, which setup
 * runs); SEVSUP_QEMU10_ROOT names another one.
 */
export const QEMU10_ROOT = process.env['SEVSUP_QEMU10_ROOT'] ?? join(REPO, '.cache', 'qemu10-root');

/** Why QEMU 10 cannot run from QEMU10_ROOT here, or null. */
export function qemu10Unavailable(): string | null {
  if (!existsSync(join(QEMU10_ROOT, 'usr', 'bin', 'qemu-system-x86_64'))) {
    return `no QEMU 10 root at ${QEMU10_ROOT} (setup warned why; make it with: bash scripts/setup-qemu10-root.sh)`;
  }
  if (process.getuid?.() !== 0) return 'running QEMU 10 in its root needs root (unshare -m, chroot)';
  return null;
}

/** Why a suite cannot run here, or null: `bundle` (dist/bundle/<bundle>) must be built, `paths` present. */
export function missingBuildOrAssets(bundle: string, paths: readonly string[]): string | null {
  if (!existsSync(join(REPO, 'dist', 'bundle', bundle))) return 'dist/ is not built (npm run build)';
  for (const p of paths) if (!existsSync(p)) return `${p} is missing (bash scripts/setup-test-assets.sh)`;
  return null;
}
