// Adopting a process by identity (pid + start time + command line) on real processes: a live
// match is adopted and stopped through the shared ladder; a dead pid, a different start time (a
// reused pid) or a foreign command line is never adopted and never signalled.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { adoptQemu, checkQemuIdentity } from '../../../src/process/adopt.js';
import { readProcStat, waitForPidExit } from '../../../src/process/pid.js';

const MARK = '/run/sevsup-test/vm1/private/monitor.sock';
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (c.pid !== undefined) await waitForPidExit(c.pid, { timeoutMs: 5000 });
  }
});

/** A process whose command line names MARK (as QEMU's names its monitor socket). */
function standIn(): { pid: number; startTime: number } {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', `path=${MARK}`], { stdio: 'ignore' });
  children.push(child);
  const pid = child.pid ?? 0;
  const stat = readProcStat(pid);
  if (stat === null) throw new Error('no stat');
  return { pid, startTime: stat.startTime };
}

describe('checkQemuIdentity', () => {
  it('knows a live process with the same start time and command line', () => {
    const p = standIn();
    expect(checkQemuIdentity({ ...p, cmdlineIncludes: MARK })).toEqual({ kind: 'alive' });
  });

  it('refuses a different start time (a reused pid) and a foreign command line', () => {
    const p = standIn();
    expect(checkQemuIdentity({ ...p, startTime: p.startTime + 1, cmdlineIncludes: MARK })).toMatchObject({ kind: 'gone' });
    expect(checkQemuIdentity({ ...p, cmdlineIncludes: '/run/sevsup/other/private/monitor.sock' })).toEqual({
      kind: 'gone',
      why: `process ${p.pid} is not this VM's QEMU (its command line does not name /run/sevsup/other/private/monitor.sock)`,
    });
  });

  it('says a pid is gone once the process exited', async () => {
    const p = standIn();
    process.kill(p.pid, 'SIGKILL');
    await waitForPidExit(p.pid, { timeoutMs: 5000 });
    expect(checkQemuIdentity({ ...p, cmdlineIncludes: MARK }).kind).toBe('gone');
  });
});

describe('adoptQemu', () => {
  it('adopts a match and stops it with the ladder (SIGTERM without a monitor)', async () => {
    const p = standIn();
    const proc = adoptQemu({ ...p, cmdlineIncludes: MARK, pollIntervalMs: 20 });
    expect(proc?.pid).toBe(p.pid);
    expect(proc?.isAlive()).toBe(true);
    const exit = await proc?.stop({ termTimeoutMs: 2000 });
    expect(exit).toMatchObject({ how: 'sigterm', stderrTail: '' });
    expect(proc?.isAlive()).toBe(false);
  });

  it('adopts nothing for a mismatch, and signals nothing', () => {
    const p = standIn();
    expect(adoptQemu({ ...p, startTime: p.startTime + 1, cmdlineIncludes: MARK })).toBeNull();
    expect(adoptQemu({ ...p, cmdlineIncludes: 'elsewhere' })).toBeNull();
    expect(checkQemuIdentity({ ...p, cmdlineIncludes: MARK }).kind).toBe('alive');
  });
});
