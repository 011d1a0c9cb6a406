// bin/sevsup as users run it: a real process running the bundle (dist/bundle/, npm run build).
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';

const run = promisify(execFile);
const BIN = new URL('../../bin/sevsup', import.meta.url).pathname;

async function sevsup(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(BIN, args);
    return { code: 0, stdout, stderr };
  } catch (error: unknown) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('bin/sevsup', () => {
  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await sevsup('--version');
    expect(r).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it('--help lists every subcommand, and every subcommand answers --help with exit 0', async () => {
    const top = await sevsup('--help');
    expect(top.code).toBe(0);
    for (const cmd of (await buildProgram()).commands) {
      expect(top.stdout).toContain(cmd.name());
      const r = await sevsup(cmd.name(), '--help');
      expect(r.code, `${cmd.name()} --help`).toBe(0);
      expect(r.stdout).toContain(`Usage: sevsup ${cmd.name()}`);
    }
  });

  it('an unknown command is a usage error (exit 2) without a stack trace', async () => {
    const r = await sevsup('no-such-command');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'no-such-command'");
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('runs the bundle, and says how to build it when it is missing (exit 70, no stack trace)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sevsup-bin-'));
    try {
      mkdirSync(join(dir, 'bin'));
      copyFileSync(BIN, join(dir, 'bin', 'sevsup'));
      copyFileSync(new URL('../../bin/package.json', import.meta.url), join(dir, 'bin', 'package.json'));
      copyFileSync(new URL('../../package.json', import.meta.url), join(dir, 'package.json'));
      const r = await run(process.execPath, [join(dir, 'bin', 'sevsup'), '--version']).then(
        () => ({ code: 0, stderr: '' }),
        (error: { code?: number; stderr?: string }) => ({ code: error.code, stderr: error.stderr }),
      );
      expect(r).toEqual({ code: 70, stderr: 'sevsup: not built yet: run `npm ci` (or `npm run build`) in the sevsup checkout\n' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
