// release(): a supervisor that detaches from a QEMU (daemon shutdown leaving guests running, or a
// guest unreachable on re-attach) lets go of everything it held for it. Checked on real processes
// through the kernel's own account of this process's inotify watches (/proc/self/fdinfo): the
// qemu.log bound's watcher (log-cap.ts) on the guest's log file is gone after release(), for a
// launched and for an adopted process, and the process itself is left running.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { adoptQemu } from '../../../src/process/adopt.js';
import { launchQemu, type QemuProcess } from '../../../src/process/launcher.js';
import { isPidAlive, readProcStat, waitForPidExit } from '../../../src/process/pid.js';
import { inotifyWatchesOn } from '../../support/proc-scan.js';

const MARK = '/run/sevsup-test/vm1/private/monitor.sock';
let dir: string;
const pids: number[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-release-'));
});

afterEach(async () => {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await waitForPidExit(pid, { timeoutMs: 5000 });
  }
  await rm(dir, { recursive: true, force: true });
});

function expectReleased(proc: QemuProcess, log: string): void {
  expect(inotifyWatchesOn(log)).toBe(1);
  proc.release();
  expect(inotifyWatchesOn(log)).toBe(0);
  expect(proc.isAlive()).toBe(true);
  proc.release(); // idempotent
}

describe('release()', () => {
  it('closes the log watcher of a launched, detached process and leaves it running', async () => {
    const log = join(dir, 'qemu.log');
    const proc = await launchQemu({
      binary: process.execPath,
      argv: ['-e', 'setInterval(() => {}, 1000)'],
      detached: true,
      stderrFile: log,
    });
    pids.push(proc.pid);
    expectReleased(proc, log);
    expect(isPidAlive(proc.pid)).toBe(true);
  });

  it('closes the log watcher of an adopted process and leaves it running', () => {
    const log = join(dir, 'qemu.log');
    writeFileSync(log, '');
    const child: ChildProcess = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', `path=${MARK}`], { stdio: 'ignore' });
    const pid = child.pid ?? 0;
    pids.push(pid);
    const startTime = readProcStat(pid)?.startTime ?? 0;
    const proc = adoptQemu({ pid, startTime, cmdlineIncludes: MARK, stderrFile: log, pollIntervalMs: 20 });
    if (proc === null) throw new Error('not adopted');
    expectReleased(proc, log);
  });
});
