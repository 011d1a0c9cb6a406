// Daemon mode of the lifecycle on real processes: a detached fake QEMU (test/fixtures/bin/fake-qemu.mjs)
// whose state survives its supervisor; state.json written at each transition; detach() leaving
// QEMU untouched; attach() restoring held (same deadline, same record, never re-measured, never
// resumed) and running guests, destroying what cannot be trusted, and reporting a QEMU that is gone.
import { connect } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseVmConfig } from '../../../src/config/vm-config.js';
import type { VmSpec } from '../../../src/config/vm-spec.js';
import { isPidAlive, waitForPidExit } from '../../../src/process/pid.js';
import { DetachedPids } from '../../support/detached-fakes.js';
import { inotifyWatchesOn } from '../../support/proc-scan.js';
import { prepareVmRunDir } from '../../../src/process/run-dir.js';
import { planReattach } from '../../../src/vm/attach.js';
import { VmLifecycle } from '../../../src/vm/lifecycle.js';
import type { LifecycleOptions } from '../../../src/vm/lifecycle-options.js';
import type { LifecycleEventRecord } from '../../../src/vm/types.js';
import { readVmState, type PersistedVmState } from '../../../src/vm/state-file.js';
import { fakeQemuCommands, fakeQemuLaunch } from '../../support/lifecycle-rig.js';
import { DEBIAN_LIKE_IMAGE } from '../../support/ovmf-images.js';

/** A synthetic image shaped like Debian's OVMF.fd (empty hashes and secret areas), written in beforeAll. */
let OVMF: string;

let root: string;
let n = 0;
const pids = new DetachedPids();
const lifecycles: VmLifecycle[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sla-'));
  OVMF = join(root, 'OVMF.fd');
  await writeFile(OVMF, DEBIAN_LIKE_IMAGE);
});
afterEach(async () => {
  await Promise.all(lifecycles.splice(0).map((l) => l.stop('test cleanup', { force: true })));
  await pids.endAll();
});
afterAll(async () => {
  // A QEMU ended just before may still have its last qemu.log write or rotation in flight: retry ENOTEMPTY.
  await rm(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
});

/** The guest every test launches, from config text as the daemon reads it. */
function spec(): VmSpec {
  return parseVmConfig(
    ['memory: 256', 'cores: 1', 'bios: ovmf', `firmware: ${OVMF}`, 'serial: none', 'amd_sev: type=std,nodbg=1,noks=1'].join('\n'),
    '/etc/sevsup/vms/vm1.conf',
  );
}

interface Rig {
  readonly dir: string;
  readonly stateFile: string;
  readonly monitor: string;
  readonly commandLog: string;
  make(over?: Partial<LifecycleOptions>): VmLifecycle;
  commands(): Promise<string[]>;
  persisted(): Promise<PersistedVmState>;
}

async function rig(scenario: object = {}, vmSpec: VmSpec = spec()): Promise<Rig> {
  const dir = join(root, String(n++));
  const paths = await prepareVmRunDir(join(dir, 'run'), vmSpec.name);
  const stateFile = join(paths.dir, 'state.json');
  const commandLog = join(dir, 'commands.jsonl');
  const make = (over: Partial<LifecycleOptions> = {}): VmLifecycle => {
    const lifecycle = new VmLifecycle({
      spec: vmSpec,
      ...fakeQemuLaunch(scenario, commandLog),
      runDir: join(dir, 'run'),
      stateDir: join(dir, 'state'),
      paths,
      powerdownTimeoutMs: 1000,
      detached: { stderrFile: join(paths.dir, 'qemu.log') },
      stateFile,
      ...over,
    });
    lifecycle.onEvent((e) => {
      if (e.event === 'spawned' || e.event === 'attached') pids.add(e.pid);
    });
    lifecycles.push(lifecycle);
    return lifecycle;
  };
  return {
    dir,
    stateFile,
    monitor: paths.monitorSocket,
    commandLog,
    make,
    commands: () => fakeQemuCommands(commandLog),
    persisted: async () => {
      const state = await readVmState(stateFile);
      if (state === null) throw new Error(`no state file at ${stateFile}`);
      return state;
    },
  };
}

function eventsOf(lifecycle: VmLifecycle): LifecycleEventRecord[] {
  const events: LifecycleEventRecord[] = [];
  lifecycle.onEvent((e) => events.push(e));
  return events;
}

function until(lifecycle: VmLifecycle, states: readonly string[]): Promise<void> {
  return new Promise((resolve) => {
    if (states.includes(lifecycle.state)) return resolve();
    const off = lifecycle.onEvent(() => {
      if (states.includes(lifecycle.state)) {
        off();
        resolve();
      }
    });
  });
}

/** Poll `check` until it holds (state-file writes land shortly after the transition). */
async function eventually(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await delay(20);
  }
}

/** Send one raw QMP command on the monitor (what a process with access to it could do). */
function rawQmp(path: string, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buffered = '';
    s.on('data', (c: Buffer) => {
      buffered += c.toString('utf8');
      if (buffered.includes('"return"') && buffered.split('"return"').length > 2) {
        s.end();
        resolve();
      }
    });
    s.once('connect', () => s.write(`{"execute":"qmp_capabilities"}\n{"execute":"${command}"}\n`));
    s.once('error', reject);
  });
}

describe('planReattach', () => {
  it.each([
    ['held', false, false, 'hold'],
    ['held', false, true, 'destroy'],
    ['running', true, true, 'running'],
    ['running', true, false, 'paused'],
    ['paused', true, true, 'running'],
    ['resuming', false, true, 'running'],
    ['resuming', false, false, 'destroy'],
    ['measuring', false, false, 'destroy'],
    ['starting', false, false, 'destroy'],
    ['stopping', true, true, 'stop'],
    ['stopped', true, true, 'destroy'],
  ] as const)('%s (ran %s, QEMU running %s) → %s', (state, ran, running, kind) => {
    expect(planReattach(state, ran, running).kind).toBe(kind);
  });

  // QEMU's prelaunch means no cont ever reached it, whatever the state file claims.
  it.each([
    ['running', 'destroy'],
    ['paused', 'destroy'],
    ['held', 'hold'],
  ] as const)('%s, QEMU in prelaunch → %s', (state, kind) => {
    expect(planReattach(state, true, false, true).kind).toBe(kind);
  });
});

describe('daemon mode', () => {
  it('persists each transition; the state file carries the launch config', async () => {
    const r = await rig();
    const lifecycle = r.make({ hold: true });
    void lifecycle.start().catch(() => undefined);
    await until(lifecycle, ['held']);
    const state = await r.persisted();
    expect(state).toMatchObject({
      schema: 'sevsup.vm-state/v1',
      vm: 'vm1',
      state: 'held',
      platform: 'simulated',
      sev: true,
      pid: lifecycle.pid,
      monitorSocket: r.monitor,
      record: lifecycle.status().record,
      holdDeadline: lifecycle.status().holdDeadline,
      ran: false,
      error: null,
    });
    expect(state.startTime).toBeGreaterThan(0);
    expect(parseVmConfig(state.config, state.configSource)).toEqual({ ...spec(), source: '/etc/sevsup/vms/vm1.conf' });
  });

  it('a held guest stays held across detach and attach: same pid, deadline and record, never re-measured or resumed', async () => {
    const r = await rig();
    const first = r.make({ hold: true });
    void first.start().catch(() => undefined);
    await until(first, ['held']);
    const before = first.status();
    await first.detach();
    expect(isPidAlive(before.pid ?? 0)).toBe(true);
    const measuresBefore = (await r.commands()).filter((c) => c === 'query-sev-launch-measure').length;

    const second = r.make({ hold: true });
    const events = eventsOf(second);
    void second.attach(await r.persisted()).catch(() => undefined);
    await until(second, ['held', 'failed']);
    expect(second.status()).toEqual({ ...before, holdDeadline: before.holdDeadline });
    expect(events.map((e) => e.event)).toEqual(['attached', 'held']);
    expect(second.resumeLocked).toBe(true);
    const commands = await r.commands();
    expect(commands.filter((c) => c === 'query-sev-launch-measure').length).toBe(measuresBefore);
    expect(commands).not.toContain('cont');

    // The owner's approval still works after the restart, and resumes it exactly once.
    await second.approve();
    expect(second.state).toBe('running');
    expect((await r.commands()).filter((c) => c === 'cont')).toEqual(['cont']);
    await eventually(async () => (await r.persisted()).state === 'running');
  });

  it("detach() lets go of QEMU's log file: the qemu.log bound's watcher is closed, after a launch and after an attach", async () => {
    const r = await rig();
    const log = join(dirname(r.stateFile), 'qemu.log');
    const first = r.make();
    await first.start();
    expect(inotifyWatchesOn(log)).toBe(1);
    await first.detach();
    expect(inotifyWatchesOn(log)).toBe(0);
    const second = r.make();
    await second.attach(await r.persisted());
    expect(second.state).toBe('running');
    expect(inotifyWatchesOn(log)).toBe(1);
    await second.detach();
    expect(inotifyWatchesOn(log)).toBe(0);
    expect(isPidAlive(second.pid ?? 0)).toBe(true);
  });

  it('a running guest stays running across detach and attach', async () => {
    const r = await rig();
    const first = r.make();
    await first.start();
    const pid = first.pid;
    await first.detach();
    const second = r.make();
    const events = eventsOf(second);
    await second.attach(await r.persisted());
    expect(second.state).toBe('running');
    expect(second.pid).toBe(pid);
    expect(events.map((e) => e.event)).toEqual(['attached', 'running']);
    expect(events[0]).toMatchObject({ was: 'running', qemuStatus: 'running' });
    expect((await r.commands()).filter((c) => c === 'cont')).toHaveLength(1);
    const outcome = await second.stop();
    expect(outcome).toMatchObject({ state: 'stopped' });
    expect(isPidAlive(pid ?? 0)).toBe(false);
  });

  it('reports a QEMU that ended while nobody supervised it', async () => {
    const r = await rig();
    const first = r.make();
    await first.start();
    const pid = first.pid ?? 0;
    await first.detach();
    process.kill(pid, 'SIGKILL');
    await waitForPidExit(pid, { timeoutMs: 5000 });
    const second = r.make();
    await expect(second.attach(await r.persisted())).rejects.toMatchObject({
      code: 'SUP_ERR_QEMU_EXITED',
      message: `VM vm1: QEMU (pid ${pid}) ended while sevsup was not running; the guest was running (it printed nothing on stderr)`,
    });
    expect(second.status()).toMatchObject({ state: 'failed', pid: null });
  });

  it('never adopts a process whose start time differs (a reused pid)', async () => {
    const r = await rig();
    const first = r.make();
    await first.start();
    await first.detach();
    const persisted = await r.persisted();
    const second = r.make();
    await expect(second.attach({ ...persisted, startTime: (persisted.startTime ?? 0) + 1 })).rejects.toMatchObject({
      code: 'SUP_ERR_QEMU_EXITED',
    });
    // The real QEMU was not touched: it still answers (and is ended by the cleanup).
    expect(isPidAlive(persisted.pid ?? 0)).toBe(true);
  });

  it('a guest that was stopping and is gone is reported stopped', async () => {
    const r = await rig();
    const first = r.make();
    await first.start();
    await first.detach();
    const persisted = await r.persisted();
    process.kill(persisted.pid ?? 0, 'SIGKILL');
    await waitForPidExit(persisted.pid ?? 0, { timeoutMs: 5000 });
    const second = r.make();
    await second.attach({ ...persisted, state: 'stopping' });
    expect(second.state).toBe('stopped');
    expect(await second.finished).toMatchObject({ state: 'stopped', how: 'exited while sevsup was not running' });
  });

  it('destroys a guest caught mid-launch, and one held but found running', async () => {
    const r = await rig();
    const first = r.make({ hold: true });
    void first.start().catch(() => undefined);
    await until(first, ['held']);
    await first.detach();
    const persisted = await r.persisted();

    const midLaunch = r.make();
    await expect(midLaunch.attach({ ...persisted, state: 'measuring' })).rejects.toMatchObject({
      code: 'SUP_ERR_VM_STATE',
      message:
        'VM vm1: re-attached after a restart, but sevsup stopped while it was measuring, before its launch completed; QEMU was stopped',
    });
    expect(isPidAlive(persisted.pid ?? 0)).toBe(false);
    expect(await r.commands()).not.toContain('cont');

    // A second guest, held, then resumed behind sevsup's back through its private monitor.
    const r2 = await rig();
    const held = r2.make({ hold: true });
    void held.start().catch(() => undefined);
    await until(held, ['held']);
    await held.detach();
    await rawQmp(r2.monitor, 'cont');
    const again = r2.make({ hold: true });
    await expect(again.attach(await r2.persisted())).rejects.toMatchObject({
      code: 'SUP_ERR_VM_STATE',
      message:
        'VM vm1: re-attached after a restart, but it was held for attestation, but QEMU reports it running: nothing but sevsup may resume it; QEMU was stopped',
    });
  });

  it('a hold whose deadline passed while detached is rejected at attach', async () => {
    const r = await rig();
    const first = r.make({ hold: true, holdTimeoutMs: 300 });
    void first.start().catch(() => undefined);
    await until(first, ['held']);
    await first.detach();
    await delay(500);
    const second = r.make({ hold: true, holdTimeoutMs: 300 });
    await expect(second.attach(await r.persisted())).rejects.toMatchObject({ code: 'SUP_ERR_ATTEST_TIMEOUT' });
    expect(await r.commands()).not.toContain('cont');
  });

  it('force stop kills at once', async () => {
    const r = await rig({ ignorePowerdown: true });
    const lifecycle = r.make({ powerdownTimeoutMs: 30_000 });
    await lifecycle.start();
    // Straight to SIGKILL: no powerdown (which this QEMU ignores for 30 s), no quit. Its speed is
    // measured in bench/force-stop.mjs, not asserted here.
    const outcome = await lifecycle.stop('test', { force: true });
    expect(outcome).toMatchObject({ state: 'stopped', how: 'sigkill' });
    expect(await r.commands()).not.toContain('system_powerdown');
    expect(await r.commands()).not.toContain('quit');
  });

  it('detach refuses a launch in progress', async () => {
    const r = await rig();
    const lifecycle = r.make();
    await expect(lifecycle.detach()).rejects.toMatchObject({ code: 'SUP_ERR_VM_STATE' });
  });
});
