// A tmpdir() of a test file's own (or of each of its tests): TMPDIR points at a fresh directory
// while it runs, so whatever the code under test makes in tmpdir() (the QEMU probe's socket
// directory, say) is named under it, and the leftover check sees only this file's processes, not
// those of the files vitest runs beside it. Afterwards: TMPDIR as it was, no live process may
// mention the directory, and it is removed.
// Owns: TMPDIR in the test worker while in use. Must not: be used by tests that run concurrently
// within one file (TMPDIR is process-wide).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import { processesMentioning } from '../../src/process/pid.js';

/** Register the hooks; `path()` is the current directory (valid inside tests and later hooks). */
export function ownTmpdir(prefix: string, per: 'file' | 'test'): { path: () => string } {
  let dir: string | undefined;
  const before = process.env['TMPDIR'];
  (per === 'file' ? beforeAll : beforeEach)(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    process.env['TMPDIR'] = dir;
  });
  (per === 'file' ? afterAll : afterEach)(() => {
    if (before === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = before;
    if (dir === undefined) return;
    const left = processesMentioning(dir);
    rmSync(dir, { recursive: true, force: true });
    expect(left, `processes left that mention ${dir}`).toEqual([]);
  });
  return {
    path: () => {
      if (dir === undefined) throw new Error('ownTmpdir: used outside a test');
      return dir;
    },
  };
}
