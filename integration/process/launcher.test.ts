// The launcher against real QEMU 7.2 under TCG (guests paused with -S; KVM is not what is tested
// here, except for QEMU's SEV start failure, which only KVM can report): ready via the QMP greeting, QEMU's own stderr in start failures, each stop step, the detached
// mode outliving its parent, and no QEMU left behind (checked in /proc).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isSupervisorError } from '../../src/errors.js';
import { launchQemu, type QemuProcess } from '../../src/process/launcher.js';
import { isPidAlive, readProcStat, waitForPidExit } from '../../src/process/pid.js';
import { QmpClient } from '../../src/qmp/client.js';
import { processesMentioning } from '../../test/support/it-env.js';
import { skipWithoutKvm } from '../kvm.js';
import { transpileForNode, type Transpiled } from './transpiled.js';

const QEMU = '/usr/bin/qemu-system-x86_64';

let dir: string;
let tag: string;
const clients: QmpClient[] = [];
const procs: QemuProcess[] = [];
const strayPids: number[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-launch-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  for (const proc of procs.splice(0)) await proc.kill();
  for (const pid of strayPids.splice(0)) {
    if (isPidAlive(pid)) process.kill(pid, 'SIGKILL');
    await waitForPidExit(pid, { timeoutMs: 10_000 });
  }
  expect(processesMentioning(tag)).toEqual([]);
});

/** A paused QEMU's argv with a QMP server socket; `-name` carries a tag to find strays by. */
function qemuArgv(machine: string, extra: readonly string[] = [], accel = 'tcg'): { argv: string[]; socket: string } {
  tag = `sevsup-it-${randomBytes(4).toString('hex')}`;
  const socket = join(dir, `${tag}.sock`);
  return {
    socket,
    argv: [
      '-name',
      tag,
      '-machine',
      machine,
      '-accel',
      accel,
      '-nodefaults',
      '-display',
      'none',
      '-S',
      '-chardev',
      `socket,id=m,path=${socket},server=on,wait=off`,
      '-mon',
      'chardev=m,mode=control',
      ...extra,
    ],
  };
}

/** Launch and wait for the negotiated QMP session (the launcher's `ready`). */
async function launchWithQmp(
  machine: string,
  extra: readonly string[] = [],
  accel = 'tcg',
): Promise<{ proc: QemuProcess; qmp: QmpClient }> {
  const { argv, socket } = qemuArgv(machine, extra, accel);
  let qmp: QmpClient | undefined;
  const proc = await launchQemu({
    binary: QEMU,
    argv,
    ready: async (started) => {
      qmp = await QmpClient.connect({ path: socket, isAlive: () => started.isAlive(), exited: started.exited });
    },
  });
  procs.push(proc);
  if (qmp === undefined) throw new Error('ready resolved without a QMP client');
  clients.push(qmp);
  return { proc, qmp };
}

async function launchError(machine: string, extra: readonly string[], accel = 'tcg'): Promise<{ code: string; message: string }> {
  try {
    const { proc } = await launchWithQmp(machine, extra, accel);
    throw new Error(`QEMU ${proc.pid} started; expected a launch failure`);
  } catch (error: unknown) {
    if (isSupervisorError(error)) return { code: error.code, message: error.message };
    throw error;
  }
}

describe('launchQemu with real QEMU', () => {
  it('starts a paused -machine none QEMU and stops it with quit when powerdown does nothing', async () => {
    const { proc, qmp } = await launchWithQmp('none');
    expect(proc.isAlive()).toBe(true);
    expect(processesMentioning(tag).map((p) => p.pid)).toEqual([proc.pid]);
    const exit = await proc.stop({ qmp, powerdownTimeoutMs: 300 });
    expect(exit).toMatchObject({ how: 'quit', exitCode: 0 });
    expect(proc.isAlive()).toBe(false);
  });

  it('reports the powerdown step when QEMU exits during it (a guest that powers off)', async () => {
    const { proc, qmp } = await launchWithQmp('q35');
    // A paused guest cannot act on ACPI powerdown; quitting when asked to power down stands in
    // for a guest OS that powers off, which is what ends QEMU in this step on a real host.
    const guestPowersOff = { execute: (name: string) => qmp.execute(name === 'system_powerdown' ? 'quit' : name) };
    const exit = await proc.stop({ qmp: guestPowersOff });
    expect(exit).toMatchObject({ how: 'powerdown', exitCode: 0 });
  });

  it('stops a paused q35 guest with SIGTERM when there is no QMP', async () => {
    const { proc } = await launchWithQmp('q35');
    const exit = await proc.stop();
    expect(exit.how).toBe('sigterm');
    expect(exit.stderrTail).toMatch(/^qemu-system-x86_64: terminating on signal 15 from pid \d+/m);
  });

  it('kill() ends a paused q35 guest with SIGKILL', async () => {
    const { proc } = await launchWithQmp('q35');
    expect(await proc.kill()).toMatchObject({ how: 'sigkill', signal: 'SIGKILL' });
    expect(proc.isAlive()).toBe(false);
  });

  it("keeps QEMU's stderr for a bad argv", async () => {
    expect(await launchError('none', ['-bogus-option'])).toEqual({
      code: 'SUP_ERR_LAUNCH_FAILED',
      message: 'QEMU exited with code 1 before it was ready: qemu-system-x86_64: -bogus-option: invalid option',
    });
  });

  it.runIf(!existsSync('/dev/sev'))("quotes QEMU's SEV start failure on a host without /dev/sev", async (ctx) => {
    skipWithoutKvm(ctx, 'QEMU reports SEV initialisation only under -accel kvm:');
    expect(await launchError('q35,memory-encryption=sev0', ['-object', 'sev-guest,id=sev0,cbitpos=0,reduced-phys-bits=1'], 'kvm')).toEqual({
      code: 'SUP_ERR_LAUNCH_FAILED',
      message:
        "QEMU exited with code 1 before it was ready: qemu-system-x86_64: -accel kvm: sev_kvm_init: Failed to open /dev/sev 'No such file or directory'; " +
        'qemu-system-x86_64: -accel kvm: failed to initialize kvm: Operation not permitted',
    });
  });
});

describe('detached launch', () => {
  let js: Transpiled;
  beforeAll(async () => {
    js = transpileForNode('src/process/launcher.ts');
    // Launches QEMU, prints its pid, and exits without stopping it, as a crashing daemon would.
    await writeFile(
      join(js.dir, 'parent.mjs'),
      [
        "import { launchQemu } from './src/process/launcher.js';",
        'const [binary, mode, ...argv] = process.argv.slice(2);',
        "const proc = await launchQemu({ binary, argv, detached: mode === 'detached' });",
        "process.stdout.write(proc.pid + '\\n', () => process.exit(0));",
      ].join('\n'),
    );
  });
  afterAll(() => js.remove());

  async function launchFromParent(mode: 'detached' | 'attached'): Promise<{ pid: number; parent: number }> {
    const { argv } = qemuArgv('none');
    const subprocess = execa(process.execPath, [join(js.dir, 'parent.mjs'), QEMU, mode, ...argv], { stdin: 'ignore' });
    const parent = subprocess.pid ?? 0;
    const { stdout } = await subprocess;
    const pid = Number(stdout.trim());
    expect(Number.isInteger(pid) && pid > 0).toBe(true);
    strayPids.push(pid);
    return { pid, parent };
  }

  it('a detached QEMU outlives its parent, in its own process group', async () => {
    const { pid, parent } = await launchFromParent('detached');
    expect(await waitForPidExit(pid, { timeoutMs: 1_000 })).toBe(false);
    const stat = readProcStat(pid);
    expect(stat?.pgrp).toBe(pid);
    expect(stat?.ppid).not.toBe(parent);
  });

  it('an attached QEMU dies with its parent', async () => {
    const { pid } = await launchFromParent('attached');
    expect(await waitForPidExit(pid, { timeoutMs: 10_000 })).toBe(true);
  });
});
