// The launcher against real (non-QEMU) processes: spawn failures, early exits with their stderr,
// the ready wait, the stop ladder down to SIGKILL, and that no path leaves a process behind.
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { hasCode, isSupervisorError } from '../../../src/errors.js';
import { createLogger } from '../../../src/log.js';
import { launchQemu, launchFailure, type QemuProcess } from '../../../src/process/launcher.js';
import { isPidAlive } from '../../../src/process/pid.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const NODE = process.execPath;

const started: QemuProcess[] = [];
afterEach(async () => {
  for (const proc of started.splice(0)) {
    if (proc.isAlive()) await proc.kill();
    expect(isPidAlive(proc.pid)).toBe(false);
  }
});

async function launch(...args: Parameters<typeof launchQemu>): Promise<QemuProcess> {
  const proc = await launchQemu(...args);
  started.push(proc);
  return proc;
}

/** A ready check that waits for `text` on the child's stderr. */
const stderrSays =
  (text: string) =>
  async (proc: QemuProcess): Promise<void> => {
    while (!proc.stderrTail().includes(text)) await delay(10);
  };

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error: unknown) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('launchQemu', () => {
  it('names the binary when it cannot be spawned', async () => {
    const error = await rejection(launchQemu({ binary: '/nonexistent/qemu', argv: [] }));
    expect(hasCode(error, 'SUP_ERR_LAUNCH_FAILED')).toBe(true);
    expect(isSupervisorError(error) && error.message).toBe(
      'cannot start QEMU: spawn /nonexistent/qemu ENOENT; check that /nonexistent/qemu exists and is executable',
    );
  });

  it('turns an exit before ready into SUP_ERR_LAUNCH_FAILED quoting stderr without warnings', async () => {
    const error = await rejection(
      launchQemu({ binary: NODE, argv: [fixture('stderr-then-exit.mjs'), '0', '3'], ready: () => new Promise(() => undefined) }),
    );
    expect(hasCode(error, 'SUP_ERR_LAUNCH_FAILED')).toBe(true);
    expect(isSupervisorError(error) && error.message).toBe('QEMU exited with code 3 before it was ready: qemu-system-x86_64: last words');
    expect(isSupervisorError(error) && error.details['exitCode']).toBe(3);
  });

  it('keeps only the last 8 KiB of stderr, starting on a whole line', async () => {
    const proc = await launch({ binary: NODE, argv: [fixture('stderr-then-exit.mjs'), '1000', '0'] });
    const exit = await proc.exited;
    expect(exit.how).toBe('exited');
    expect(exit.exitCode).toBe(0);
    expect(exit.signal).toBeUndefined();
    expect(Buffer.byteLength(exit.stderrTail)).toBeLessThanOrEqual(8 * 1024);
    expect(exit.stderrTail).toMatch(/^qemu-system-x86_64: line \d+ (x\.)+\n/);
    expect(exit.stderrTail.endsWith('qemu-system-x86_64: last words\n')).toBe(true);
    expect(proc.stderrTail()).toBe(exit.stderrTail);
    expect(proc.isAlive()).toBe(false);
  });

  it('logs each stderr line at debug', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const proc = await launch({ binary: NODE, argv: [fixture('stderr-then-exit.mjs'), '2', '0'], logger });
    await proc.exited;
    const stderrLines = lines.map((l) => JSON.parse(l) as { msg: string; line?: string }).filter((l) => l.msg === 'qemu stderr');
    expect(stderrLines.map((l) => l.line)).toEqual([
      `qemu-system-x86_64: line 0 ${'x.'.repeat(30)}`,
      `qemu-system-x86_64: line 1 ${'x.'.repeat(30)}`,
      'qemu-system-x86_64: warning: this is only a warning',
      'qemu-system-x86_64: last words',
    ]);
  });

  it('kills the process and rethrows when the ready check fails', async () => {
    let pid = 0;
    const failure = new Error('monitor said no');
    const error = await rejection(
      launchQemu({
        binary: '/bin/sleep',
        argv: ['60'],
        ready: async (proc) => {
          pid = proc.pid;
          throw failure;
        },
      }),
    );
    expect(error).toBe(failure);
    expect(pid).toBeGreaterThan(0);
    expect(isPidAlive(pid)).toBe(false);
  });

  it('kills the process when it is not ready in time', async () => {
    let pid = 0;
    const error = await rejection(
      launchQemu({
        binary: NODE,
        argv: [fixture('ignore-sigterm.mjs')],
        // Long enough for Node to start and print "ready" on a loaded 2-core host (200 ms was not:
        // the fixture was sometimes killed before it said anything, and the message had no stderr).
        readyTimeoutMs: 3000,
        ready: (proc) => {
          pid = proc.pid;
          return new Promise(() => undefined);
        },
      }),
    );
    expect(hasCode(error, 'SUP_ERR_LAUNCH_TIMEOUT')).toBe(true);
    expect(isSupervisorError(error) && error.message).toBe(
      'QEMU did not become ready within 3000 ms and was killed; its stderr: qemu-system-x86_64: ready',
    );
    expect(isPidAlive(pid)).toBe(false);
  });
});

describe('QemuProcess.stop', () => {
  it('ends with SIGKILL a process that ignores SIGTERM', async () => {
    const proc = await launch({ binary: NODE, argv: [fixture('ignore-sigterm.mjs')], ready: stderrSays('ready') });
    expect(proc.isAlive()).toBe(true);
    const exit = await proc.stop({ termTimeoutMs: 300 });
    expect(exit).toMatchObject({ how: 'sigkill', signal: 'SIGKILL' });
    expect(exit.exitCode).toBeUndefined();
    expect(exit.stderrTail).toBe('qemu-system-x86_64: ready\nqemu-system-x86_64: ignoring SIGTERM\n');
    expect(proc.isAlive()).toBe(false);
  });

  it('moves on at once when a QMP step fails (a 10-minute wait would time the test out)', async () => {
    const proc = await launch({ binary: NODE, argv: [fixture('ignore-sigterm.mjs')], ready: stderrSays('ready') });
    const asked: string[] = [];
    const qmp = {
      execute: async (name: string): Promise<unknown> => {
        asked.push(name);
        throw new Error('monitor disconnected');
      },
    };
    const exit = await proc.stop({ qmp, powerdownTimeoutMs: 600_000, quitTimeoutMs: 600_000, termTimeoutMs: 300 });
    expect(asked).toEqual(['system_powerdown', 'quit']);
    expect(exit.how).toBe('sigkill');
  });

  it('skips the QMP steps whose timeout is 0', async () => {
    const proc = await launch({ binary: '/bin/sleep', argv: ['60'] });
    const asked: string[] = [];
    const qmp = { execute: async (name: string): Promise<unknown> => void asked.push(name) };
    const exit = await proc.stop({ qmp, powerdownTimeoutMs: 0, quitTimeoutMs: 0 });
    expect(asked).toEqual([]);
    expect(exit).toMatchObject({ how: 'sigterm', signal: 'SIGTERM' });
  });

  it('shares one run between concurrent calls, and reports an exit that happened by itself', async () => {
    const proc = await launch({ binary: '/bin/sleep', argv: ['60'] });
    const [a, b] = await Promise.all([proc.stop(), proc.stop()]);
    expect(a).toBe(b);
    const done = await launch({ binary: '/bin/true', argv: [] });
    await done.exited;
    expect(await done.stop()).toEqual({ exitCode: 0, stderrTail: '', how: 'exited' });
    expect(await done.kill()).toEqual({ exitCode: 0, stderrTail: '', how: 'exited' });
  });

  it('kill() sends SIGKILL at once', async () => {
    const proc = await launch({ binary: NODE, argv: [fixture('ignore-sigterm.mjs')], ready: stderrSays('ready') });
    const exit = await proc.kill();
    expect(exit).toMatchObject({ how: 'sigkill', signal: 'SIGKILL' });
  });
});

describe('launchFailure', () => {
  it('describes a signal death and a silent QEMU', () => {
    expect(launchFailure({ signal: 'SIGABRT', stderrTail: '', how: 'exited' }).message).toBe(
      'QEMU was killed by SIGABRT before it was ready: (it printed nothing on stderr)',
    );
  });

  it('quotes at most the last four error lines', () => {
    const tail = ['a', 'b', 'qemu: warning: w', 'c', 'd', 'e', ''].join('\n');
    expect(launchFailure({ exitCode: 1, stderrTail: tail, how: 'exited' }).message).toBe(
      'QEMU exited with code 1 before it was ready: b; c; d; e',
    );
  });
});
