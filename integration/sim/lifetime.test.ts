// The simulated platform's process lifetime: signals reach QEMU and the sim exits with QEMU's
// status; QEMU never outlives the sim, even when the sim is SIGKILLed; the pidfile names the sim.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPidAlive, waitForPidExit } from '../../src/process/pid.js';
import {
  argvFor,
  cleanupDir,
  expectNoProcessesLeft,
  makeDir,
  missingPrerequisite,
  paths,
  RawQmp,
  readStatus,
  spec,
  startSim,
  type Paths,
  type SimProcess,
} from './harness.js';

const missing = missingPrerequisite();

describe.skipIf(missing !== null)(`sim lifetime${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  let dir: string;
  let p: Paths;
  let sim: SimProcess;
  let qmp: RawQmp;
  let qemuPid: number;

  beforeEach(async () => {
    dir = await makeDir();
    p = paths(dir);
    sim = startSim([], argvFor(spec(), p));
    qmp = await RawQmp.ready(p.monitor);
    qemuPid = readStatus(p).qemuPid as number;
    expect(isPidAlive(qemuPid)).toBe(true);
  });

  afterEach(async () => {
    qmp.close();
    await sim.kill();
    await expectNoProcessesLeft(dir);
    await cleanupDir(dir, [sim]);
  });

  it('writes its own pid to -pidfile and runs QEMU in its process group', () => {
    expect(readFileSync(p.pidfile, 'utf8')).toBe(`${sim.pid}\n`);
    const pgrp = (pid: number): string => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[2] ?? '';
    expect(pgrp(qemuPid)).toBe(pgrp(sim.pid));
  });

  it('forwards SIGTERM to QEMU and exits with its status, cleaning up', async () => {
    sim.child.kill('SIGTERM');
    expect(await sim.exited).toEqual({ code: 0, signal: null });
    expect(sim.stderr).toMatch(/qemu-system-x86_64: terminating on signal 15/);
    expect(existsSync(p.pidfile)).toBe(false);
    expect(isPidAlive(qemuPid)).toBe(false);
  });

  it('dies of the same signal when QEMU is killed', async () => {
    process.kill(qemuPid, 'SIGKILL');
    expect(await sim.exited).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('takes QEMU with it when the sim itself is SIGKILLed; the next sim removes its private dir', async () => {
    const privateDirs = (): string[] => readdirSync(dir).filter((n) => n.startsWith('.sevsup-sim-'));
    expect(privateDirs()).toEqual([expect.stringMatching(new RegExp(`^\\.sevsup-sim-${sim.pid}-`))]);
    sim.child.kill('SIGKILL');
    await sim.exited;
    expect(await waitForPidExit(qemuPid, { timeoutMs: 5000 })).toBe(true);
    qmp.close();
    sim = startSim([], argvFor(spec(), p));
    qmp = await RawQmp.ready(p.monitor);
    expect(privateDirs()).toEqual([expect.stringMatching(new RegExp(`^\\.sevsup-sim-${sim.pid}-`))]);
  });
});
