// Liveness by /proc: a zombie is not alive (kill(pid, 0) would say it is), and waiting for a pid
// that is not our child ends when it becomes a zombie.
import { execa } from 'execa';
import { readdirSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { isPidAlive, ProcStatHandle, readProcStat, waitForPidExit } from '../../../src/process/pid.js';

const toKill: number[] = [];
afterEach(() => {
  for (const pid of toKill.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

function childrenOf(ppid: number): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map((entry) => readProcStat(Number(entry)))
    .filter((stat) => stat !== null && stat.ppid === ppid)
    .map((stat) => stat?.pid ?? 0);
}

/** A zombie: `sh` starts a child that exits, then execs `sleep`, which never reaps it. */
async function makeZombie(): Promise<{ parent: number; zombie: number }> {
  const sub = execa('/bin/sh', ['-c', '/bin/true & exec /bin/sleep 30'], { reject: false, stdio: 'ignore', cleanup: true });
  const parent = sub.pid ?? 0;
  toKill.push(parent);
  for (;;) {
    const zombie = childrenOf(parent).find((pid) => readProcStat(pid)?.state === 'Z');
    if (zombie !== undefined) return { parent, zombie };
    await delay(10);
  }
}

describe('readProcStat / isPidAlive', () => {
  it('reads this process', () => {
    const stat = readProcStat(process.pid);
    expect(stat?.pid).toBe(process.pid);
    expect(stat?.ppid).toBe(process.ppid);
    expect(isPidAlive(process.pid)).toBe(true);
  });

  it('knows no process for an unused pid', () => {
    expect(readProcStat(2 ** 22 + 1)).toBeNull();
    expect(isPidAlive(2 ** 22 + 1)).toBe(false);
  });

  it('treats a zombie as not alive, though kill(pid, 0) succeeds on it', async () => {
    const { zombie } = await makeZombie();
    expect(readProcStat(zombie)?.state).toBe('Z');
    expect(() => process.kill(zombie, 0)).not.toThrow();
    expect(isPidAlive(zombie)).toBe(false);
    expect(await waitForPidExit(zombie, { timeoutMs: 1_000 })).toBe(true);
  });
});

describe('ProcStatHandle', () => {
  it('answers as isPidAlive for a live process, a zombie and a reaped one; closed, it is not open', async () => {
    const { parent, zombie } = await makeZombie();
    const live = new ProcStatHandle(parent);
    const dead = new ProcStatHandle(zombie);
    expect(live.open && dead.open).toBe(true);
    expect(live.isAlive()).toBe(true);
    expect(dead.isAlive()).toBe(false);
    // Killing the parent makes the zombie an orphan that init reaps; the handle then reads ESRCH.
    process.kill(parent, 'SIGKILL');
    await waitForPidExit(parent, { timeoutMs: 5_000 });
    expect(live.isAlive()).toBe(false);
    live.close();
    dead.close();
    expect(live.open).toBe(false);
    expect(live.isAlive()).toBe(false);
  });

  it('is not open for an unused pid', () => {
    const none = new ProcStatHandle(2 ** 22 + 1);
    expect(none.open).toBe(false);
    expect(none.isAlive()).toBe(false);
  });
});

describe('waitForPidExit', () => {
  it('resolves false on timeout while the process lives, true once it is gone', async () => {
    const sub = execa('/bin/sleep', ['30'], { reject: false, stdio: 'ignore' });
    const pid = sub.pid ?? 0;
    toKill.push(pid);
    expect(await waitForPidExit(pid, { timeoutMs: 100 })).toBe(false);
    const waiting = waitForPidExit(pid);
    sub.kill('SIGKILL');
    expect(await waiting).toBe(true);
    await sub;
  });

  it('resolves false when aborted', async () => {
    const controller = new AbortController();
    const waiting = waitForPidExit(process.pid, { signal: controller.signal });
    controller.abort();
    expect(await waiting).toBe(false);
  });

  it('counts a reused pid (different start time) as exited', async () => {
    const stat = readProcStat(process.pid);
    expect(await waitForPidExit(process.pid, { startTime: (stat?.startTime ?? 0) + 1, timeoutMs: 1_000 })).toBe(true);
  });
});
