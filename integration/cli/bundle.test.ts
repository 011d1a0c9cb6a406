// The bundle users run (dist/bundle/, scripts/bundle.mjs): every path a bundled module finds
// relative to itself (`new URL('…', import.meta.url)`, rewritten at bundle time because all
// chunks share dist/bundle/) names a file or directory that exists in the checkout, and the
// simulator's bundle runs.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const BUNDLE = fileURLToPath(new URL('../../dist/bundle/', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BUILT = existsSync(join(BUNDLE, 'sevsup.mjs'));
if (!BUILT) process.stderr.write('integration/cli/bundle: SKIPPED — dist/bundle/ is not built (npm run build)\n');

describe.skipIf(!BUILT)('dist/bundle', () => {
  it('every import.meta.url-relative path in it exists (the simulator next to bin/sevsup, the checkout root)', () => {
    const targets = new Set<string>();
    for (const file of readdirSync(BUNDLE).filter((f) => f.endsWith('.mjs'))) {
      for (const m of readFileSync(join(BUNDLE, file), 'utf8').matchAll(/new URL\((["'])([^"']+)\1,\s*import\.meta\.url\)/g)) {
        targets.add(fileURLToPath(new URL(m[2] ?? '', `file://${BUNDLE}`)));
      }
    }
    // The daemon and `sevsup run` spawn the simulator; `sevsup demo` finds the checkout.
    expect([...targets].sort()).toEqual([REPO, join(REPO, 'bin', 'sevsup-sim-qemu')]);
    for (const target of targets) expect(existsSync(target), target).toBe(true);
  });

  it('bin/sevsup-sim-qemu runs its bundle', async () => {
    const { stdout } = await promisify(execFile)(join(REPO, 'bin', 'sevsup-sim-qemu'), ['--sim-help']);
    expect(stdout).toMatch(/^Usage: sevsup-sim-qemu \[--sim-OPTION VALUE\]\.\.\. QEMU-ARGUMENTS\.\.\./);
  });
});
