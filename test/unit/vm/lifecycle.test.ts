// The lifecycle on real processes and sockets: test/fixtures/bin/fake-qemu.mjs is spawned by the
// real launcher and answers QMP on the real monitor socket; the real QMP client, argv builder,
// preflight (a Debian-like OVMF image) and record store run. Each scenario asserts the exact event order and
// the commands the fake received — above all that `cont` never reaches QEMU on a failed check.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { VmSpec } from '../../../src/config/vm-spec.js';
import { SupervisorError } from '../../../src/errors.js';
import { createLogger } from '../../../src/log.js';
import { isPidAlive } from '../../../src/process/pid.js';
import { preflight } from '../../../src/vm/preflight.js';
import { VmLifecycle } from '../../../src/vm/lifecycle.js';
import type { LifecycleOptions } from '../../../src/vm/lifecycle-options.js';
import type { LifecycleEventRecord } from '../../../src/vm/types.js';
import { fakeQemuCommands, fakeQemuLaunch, names, startFailure, waitFor } from '../../support/lifecycle-rig.js';
import { readLatestRecord } from '../../support/records.js';
import { DEBIAN_LIKE_IMAGE } from '../../support/ovmf-images.js';

/** A synthetic image shaped like Debian's OVMF.fd (empty hashes and secret areas), written in beforeAll. */
let OVMF: string;
const SECRET = 'c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ=';
const HEADER = 'aGVhZGVyLXZhbHVlLXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ=';

let root: string;
let n = 0;
const lifecycles: VmLifecycle[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sl-'));
  OVMF = join(root, 'OVMF.fd');
  await writeFile(OVMF, DEBIAN_LIKE_IMAGE);
});
afterEach(async () => {
  // Never leave a fake QEMU behind, whatever a test did.
  await Promise.all(lifecycles.splice(0).map((l) => l.stop('test cleanup')));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function spec(over: Partial<VmSpec> = {}): VmSpec {
  return {
    name: 'vm1',
    source: '/etc/sevsup/vms/vm1.conf',
    memory: 256,
    cores: 1,
    cpu: 'EPYC-v4',
    bios: 'ovmf',
    firmware: { path: OVMF },
    disks: [],
    nets: [],
    attest: 'none',
    autostart: false,
    serial: 'none',
    sev: { type: 'std', nodbg: true, noks: true, kernelHashes: false, key: 'amd_sev' },
    qmpAllow: [],
    qmpDeny: [],
    ...over,
  };
}

interface Harness {
  readonly lifecycle: VmLifecycle;
  readonly events: LifecycleEventRecord[];
  readonly logText: () => string;
  readonly commands: () => Promise<string[]>;
  readonly stateDir: string;
  readonly commandLog: string;
}

async function harness(scenario: object, over: Partial<LifecycleOptions> = {}, vmSpec: VmSpec = spec()): Promise<Harness> {
  const dir = join(root, String(n++));
  const commandLog = join(dir, 'commands.jsonl');
  const stateDir = join(dir, 'state');
  let logged = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logged += chunk.toString('utf8');
      cb();
    },
  });
  const lifecycle = new VmLifecycle({
    spec: vmSpec,
    ...fakeQemuLaunch(scenario, commandLog),
    runDir: join(dir, 'run'),
    stateDir,
    powerdownTimeoutMs: 2000,
    logger: createLogger({ level: 'trace' }, sink),
    ...over,
  });
  lifecycles.push(lifecycle);
  const events: LifecycleEventRecord[] = [];
  lifecycle.onEvent((e) => events.push(e));
  return {
    lifecycle,
    events,
    stateDir,
    commandLog,
    logText: () => logged,
    commands: () => fakeQemuCommands(commandLog),
  };
}

describe('VmLifecycle: the SEV launch path', () => {
  it('checks, records, resumes, and stops gracefully', async () => {
    const h = await harness({});
    await h.lifecycle.start();
    expect(h.lifecycle.state).toBe('running');
    expect(names(h.events)).toEqual(['starting', 'spawned', 'checked', 'measured', 'resumed', 'running']);
    expect(h.events[2]).toMatchObject({ vm: 'vm1', policy: '0xb', sevType: 'sev', apiMajor: 1, apiMinor: 55, buildId: 21 });
    const record = await readLatestRecord(h.stateDir, 'vm1');
    expect(record).toMatchObject({
      vm: 'vm1',
      platform: 'simulated',
      sevType: 'sev',
      policy: 0xb,
      expectedPolicy: 0xb,
      state: 'launch-secret',
    });
    expect(record?.launch.qemuVersion).toBe('7.2.22 (fake)');
    expect(h.events[3]).toMatchObject({ record: h.lifecycle.status().record, measurement: Buffer.alloc(48, 0x5a).toString('base64') });
    const pid = h.lifecycle.pid;
    const outcome = await h.lifecycle.stop('test');
    expect(outcome).toEqual({ state: 'stopped', how: 'powerdown', ran: true });
    expect(names(h.events).slice(6)).toEqual(['stopping', 'stopped']);
    expect(await h.commands()).toEqual([
      'qmp_capabilities',
      'query-sev',
      'query-sev-launch-measure',
      'cont',
      'query-status',
      'system_powerdown',
    ]);
    expect(pid !== null && isPidAlive(pid)).toBe(false);
  });

  it('quits a guest that ignores system_powerdown', async () => {
    const h = await harness({ ignorePowerdown: true }, { powerdownTimeoutMs: 200 });
    await h.lifecycle.start();
    expect(await h.lifecycle.stop()).toEqual({ state: 'stopped', how: 'quit', ran: true });
  });

  it('runs a plain guest without SEV checks or a record', async () => {
    const { sev: _sev, ...plain } = spec();
    const h = await harness({}, {}, plain);
    await h.lifecycle.start();
    expect(names(h.events)).toEqual(['starting', 'spawned', 'resumed', 'running']);
    expect(h.lifecycle.status().record).toBeNull();
    expect(await h.commands()).toEqual(['qmp_capabilities', 'cont', 'query-status']);
  });

  it('records the CPU signature for SEV-ES', async () => {
    const h = await harness(
      { cpu: { family: 25, model: 1, stepping: 1 } },
      {},
      spec({ cores: 2, sev: { type: 'es', nodbg: false, noks: false, kernelHashes: false, key: 'amd_sev' } }),
    );
    await h.lifecycle.start();
    const record = await readLatestRecord(h.stateDir, 'vm1');
    if (record?.sevType !== 'sev-es') throw new Error(`expected an SEV-ES record, got ${record?.sevType}`);
    expect(record.validateArgs.slice(-8)).toEqual(['--num-cpus', '2', '--cpu-family', '25', '--cpu-model', '1', '--cpu-stepping', '1']);
  });
});

describe('VmLifecycle: fails closed', () => {
  it.each([
    [
      'SEV is not enabled',
      { sev: { enabled: false } },
      'SUP_ERR_CHECK_SEV_DISABLED',
      'VM vm1: QEMU reports SEV is not enabled (query-sev: enabled false), expected an SEV guest with policy 0xb (SEV, NODBG, NOKS, NOSEND); the guest was not resumed',
    ],
    [
      'the policy differs',
      { sev: { policy: 1 } },
      'SUP_ERR_CHECK_POLICY_MISMATCH',
      'VM vm1: QEMU applied SEV policy 0x1 (SEV, NODBG), but the config asks for 0xb (SEV, NODBG, NOKS, NOSEND); the guest was not resumed',
    ],
    [
      'sev-type is not sev',
      { sev: { sevType: 'sev-snp' } },
      'SUP_ERR_CHECK_SEV_TYPE_MISMATCH',
      'VM vm1: QEMU reports sev-type sev-snp, expected sev; the guest was not resumed',
    ],
    [
      'LAUNCH_MEASURE failed',
      { sev: { state: 'launch-update' } },
      'SUP_ERR_CHECK_STATE',
      'VM vm1: SEV state is launch-update, expected launch-secret: LAUNCH_MEASURE failed, so there is no measurement (QEMU logs the firmware error on its stderr); the guest was not resumed',
    ],
    [
      'there is no measurement',
      { measurement: null },
      'SUP_ERR_CHECK_MEASUREMENT',
      "VM vm1: QEMU gave no launch measurement: QMP command 'query-sev-launch-measure' failed (GenericError): SEV launch measurement is not available; the guest was not resumed",
    ],
    [
      'the measurement is short',
      { measurement: Buffer.alloc(32).toString('base64') },
      'SUP_ERR_CHECK_MEASUREMENT',
      'VM vm1: the launch measurement QEMU returned is 32 bytes, expected 48; the guest was not resumed',
    ],
  ])('when %s: never cont, QEMU quit, state failed', async (_name, scenario, code, message) => {
    const h = await harness(scenario);
    const error = await startFailure(h);
    expect(error.code).toBe(code);
    expect(error.message).toBe(message);
    expect(h.lifecycle.state).toBe('failed');
    const commands = await h.commands();
    expect(commands).not.toContain('cont');
    expect(commands.at(-1)).toBe('quit');
    expect(names(h.events).slice(-3)).toEqual(['stopping', 'stopped', 'failed']);
    expect(h.events.at(-2)).toMatchObject({ how: 'quit', exitCode: 0 });
    expect(h.events.at(-1)).toMatchObject({ code, message });
    expect(await h.lifecycle.finished).toMatchObject({ state: 'failed', ran: false });
    expect(h.lifecycle.status().error).toEqual({ code, message });
    expect(await readLatestRecord(h.stateDir, 'vm1')).toBeNull();
  });

  it('does not resume when the record cannot be written', async () => {
    const blocker = join(root, 'state-is-a-file');
    await writeFile(blocker, '');
    const h = await harness({}, { stateDir: join(blocker, 'state') });
    const error = await startFailure(h);
    expect(error.code).toBe('SUP_ERR_RECORD_WRITE');
    expect(error.message).toBe(
      `VM vm1: cannot create the measurement directory ${join(blocker, 'state', 'vm1', 'measurements')} of VM vm1: a component of the path is not a directory (ENOTDIR); the guest was not resumed`,
    );
    expect(await h.commands()).not.toContain('cont');
  });

  it('reports a start failure with QEMU stderr', async () => {
    const h = await harness({ exitAtStart: "-accel kvm: sev_kvm_init: Failed to open /dev/sev 'No such file or directory'" });
    const error = await startFailure(h);
    expect(error.code).toBe('SUP_ERR_LAUNCH_FAILED');
    expect(error.message).toBe(
      "QEMU exited with code 1 before it was ready: qemu-system-x86_64: -accel kvm: sev_kvm_init: Failed to open /dev/sev 'No such file or directory'",
    );
    expect(names(h.events)).toEqual(['starting', 'spawned', 'stopping', 'stopped', 'failed']);
  });

  it('names a crash at cont with QEMU stderr', async () => {
    const h = await harness({ crashOnCont: true });
    const error = await startFailure(h);
    expect(error.code).toBe('SUP_ERR_QEMU_EXITED');
    expect(error.message).toBe(
      'VM vm1: QEMU exited with code 1 during resume (cont): qemu-system-x86_64: sev_launch_finish: LAUNCH_FINISH ret=-1 fw_error=1 (fake crash)',
    );
    expect(await h.lifecycle.finished).toMatchObject({ state: 'failed', ran: true });
  });

  it('fails closed on a QMP timeout', async () => {
    const h = await harness({ delayMs: 400 }, { qmpTimeoutMs: 100 });
    const error = await startFailure(h);
    expect(error.code).toBe('SUP_ERR_QMP_TIMEOUT');
    expect(await h.commands()).not.toContain('cont');
  });

  it('refuses a guest that is not running after cont', async () => {
    const h = await harness({ statusAfterCont: 'paused' });
    const error = await startFailure(h);
    expect(error.message).toBe('VM vm1: QEMU reports status paused after cont, expected running');
  });
});

describe('VmLifecycle: the attestation hold', () => {
  it('stays paused until approved, then resumes', async () => {
    const h = await harness({}, { hold: true });
    const started = h.lifecycle.start();
    const held = await waitFor(h, 'held');
    expect(held).toMatchObject({ timeoutSeconds: 600 });
    expect(h.lifecycle.state).toBe('held');
    expect(await h.commands()).not.toContain('cont');
    expect(await h.lifecycle.approve()).toEqual({ vm: 'vm1', action: 'approve', state: 'running' });
    await started;
    expect(names(h.events)).toEqual(['starting', 'spawned', 'checked', 'measured', 'held', 'resumed', 'running']);
  });

  it('a rejected guest never runs', async () => {
    const h = await harness({}, { hold: true });
    const started = startFailure(h);
    await waitFor(h, 'held');
    expect(await h.lifecycle.reject()).toEqual({ vm: 'vm1', action: 'reject', state: 'failed' });
    const error = await started;
    expect(error.code).toBe('SUP_ERR_ATTEST_REJECTED');
    expect(error.message).toBe('VM vm1 was rejected by the guest owner; QEMU was stopped and the guest never ran');
    expect(await h.commands()).not.toContain('cont');
  });

  it('rejects when the hold times out', async () => {
    const h = await harness({}, { hold: true, holdTimeoutMs: 300 });
    const error = await startFailure(h);
    expect(error.code).toBe('SUP_ERR_ATTEST_TIMEOUT');
    expect(error.message).toBe(
      'VM vm1: nobody approved the guest within 0.3 s of holding it; it was rejected, QEMU was stopped and the guest never ran',
    );
    expect(await h.commands()).not.toContain('cont');
  });

  it('injects secrets (repeatedly) without ever logging them, then approves', async () => {
    const h = await harness({}, { hold: true });
    const started = h.lifecycle.start();
    await waitFor(h, 'held');
    const first = await h.lifecycle.injectSecret({ packetHeader: HEADER, secret: SECRET, gpa: 0x80b000 });
    expect(first).toEqual({ vm: 'vm1', action: 'inject-secret', state: 'held', gpa: 0x80b000, headerBytes: 38, secretBytes: 38 });
    await h.lifecycle.injectSecret({ packetHeader: HEADER, secret: SECRET, gpa: 0x80b000 });
    expect(h.lifecycle.status().secretsInjected).toBe(2);
    await h.lifecycle.approve();
    await started;
    const injected = h.events.filter((e) => e.event === 'secret-injected');
    expect(injected).toHaveLength(2);
    expect(injected[0]).toMatchObject({ gpa: 0x80b000, headerBytes: 38, secretBytes: 38 });
    expect(JSON.stringify(h.events)).not.toContain(SECRET);
    expect(h.logText()).not.toContain(SECRET);
    expect(h.logText()).not.toContain(HEADER);
    expect(h.logText()).toContain('launch secret injected');
  });

  it('refuses to inject without gpa when the firmware secret area is empty (a Debian-like OVMF)', async () => {
    const h = await harness({}, { hold: true });
    void h.lifecycle.start().catch(() => undefined);
    await waitFor(h, 'held');
    await expect(h.lifecycle.injectSecret({ packetHeader: HEADER, secret: SECRET })).rejects.toMatchObject({
      code: 'SUP_ERR_SECRET_NO_AREA',
      message: `VM vm1: no gpa given and the firmware ${OVMF} has no usable launch-secret area (secret area is empty (base=0x0 size=0x0): QEMU would inject at guest address 0x0; give an explicit gpa); give the guest physical address with --gpa, or use a firmware that declares one (an OVMF AmdSev build)`,
    });
    expect(await h.commands()).not.toContain('sev-inject-launch-secret');
  });

  it('uses the firmware secret area when it has one', async () => {
    const h = await harness(
      {},
      {
        hold: true,
        deps: {
          ...fakeQemuLaunch({}, join(root, 'area.jsonl')).deps,
          preflight: async (s) => {
            const p = await preflight(s);
            if (p.firmware === null) throw new Error('no firmware');
            return { ...p, firmware: { ...p.firmware, table: { ...p.firmware.table, secretArea: { base: 0x80b000, size: 0x1000 } } } };
          },
        },
      },
    );
    void h.lifecycle.start().catch(() => undefined);
    await waitFor(h, 'held');
    expect(await h.lifecycle.injectSecret({ packetHeader: HEADER, secret: SECRET })).toMatchObject({ gpa: 0x80b000 });
    const sent = (await readFile(join(root, 'area.jsonl'), 'utf8')).split('\n').filter((l) => l.includes('sev-inject-launch-secret'));
    expect(JSON.parse(sent[0] ?? '{}')).toMatchObject({ arguments: { gpa: 0x80b000 } });
  });

  it("reports the platform's refusal with QEMU's desc", async () => {
    const h = await harness({ refuseSecret: 'SEV: Failed to decode sequence header' }, { hold: true });
    void h.lifecycle.start().catch(() => undefined);
    await waitFor(h, 'held');
    await expect(h.lifecycle.injectSecret({ packetHeader: HEADER, secret: SECRET, gpa: 4096 })).rejects.toMatchObject({
      code: 'SUP_ERR_SECRET_REFUSED',
      message: 'VM vm1: the platform refused the launch secret: SEV: Failed to decode sequence header',
    });
    expect(h.lifecycle.state).toBe('held');
  });

  it('attest actions need a held guest', async () => {
    const h = await harness({});
    await h.lifecycle.start();
    await expect(h.lifecycle.approve()).rejects.toMatchObject({
      code: 'SUP_ERR_ATTEST_NOT_HELD',
      message: 'VM vm1 is running, not held for attestation; approve applies only to a held guest',
    });
    await expect(h.lifecycle.injectSecret({ packetHeader: HEADER, secret: SECRET, gpa: 1 })).rejects.toMatchObject({
      code: 'SUP_ERR_ATTEST_NOT_HELD',
    });
  });

  it('stop() before start() ends it at once; start() afterwards is refused', async () => {
    const h = await harness({});
    expect(await h.lifecycle.stop()).toEqual({ state: 'stopped', how: 'never started', ran: false });
    await expect(h.lifecycle.start()).rejects.toMatchObject({
      code: 'SUP_ERR_VM_STATE',
      message: 'VM vm1 is stopped; a lifecycle starts once (create a new one to launch again)',
    });
    expect(await h.commands()).toEqual([]);
  });

  it('stop() while held destroys the guest without running it', async () => {
    const h = await harness({}, { hold: true });
    const started = h.lifecycle.start();
    await waitFor(h, 'held');
    expect(await h.lifecycle.stop('SIGINT')).toEqual({ state: 'stopped', how: 'stopped before running', ran: false });
    await started;
    expect(names(h.events).slice(-2)).toEqual(['stopping', 'stopped']);
    expect(await h.commands()).not.toContain('cont');
  });
});

describe('VmLifecycle: attest: relay (the relay hook; src/relay/ is tested on its own)', () => {
  const RELAY_SPEC = spec({
    attest: 'relay',
    relay: { url: 'https://owner.example/attest', ca: '/ca.pem', identity: { kind: 'token', tokenFile: '/t' }, timeoutSeconds: 5 },
  });

  it("the relay's approval resumes the guest; the API's approve is refused unless forced", async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const seen: { recordPath: string; deadline: Date }[] = [];
    const h = await harness(
      {},
      {
        relay: async (hold) => {
          seen.push({ recordPath: hold.recordPath, deadline: hold.deadline });
          await gate;
          return { approved: true, injected: false };
        },
      },
      RELAY_SPEC,
    );
    const started = h.lifecycle.start();
    await waitFor(h, 'held');
    await expect(h.lifecycle.approve()).rejects.toMatchObject({ code: 'SUP_ERR_ATTEST_RELAYED' });
    await expect(h.lifecycle.injectSecret({ packetHeader: HEADER, secret: SECRET, gpa: 1 })).rejects.toMatchObject({
      code: 'SUP_ERR_ATTEST_RELAYED',
    });
    expect(await h.commands()).not.toContain('cont');
    release();
    await started;
    expect(h.lifecycle.state).toBe('running');
    expect(seen).toEqual([{ recordPath: h.lifecycle.status().record, deadline: expect.any(Date) }]);
  });

  it("the relay's rejection fails the launch with the relay's own error; QEMU never got cont", async () => {
    const h = await harness(
      {},
      {
        relay: async (hold) => ({
          approved: false,
          error: new SupervisorError('SUP_ERR_RELAY_REJECTED', `VM ${hold.vm} was rejected: the owner's service rejected it: bad kernel`),
        }),
      },
      RELAY_SPEC,
    );
    const error = await startFailure(h);
    expect({ code: error.code, message: error.message }).toEqual({
      code: 'SUP_ERR_RELAY_REJECTED',
      message: "VM vm1 was rejected: the owner's service rejected it: bad kernel",
    });
    expect(h.lifecycle.state).toBe('failed');
    expect(await h.commands()).not.toContain('cont');
  });

  it('a forced approve ends the hold and the relay (its signal aborts)', async () => {
    let aborted = false;
    const h = await harness(
      {},
      {
        relay: (hold) =>
          new Promise((resolve) => {
            hold.signal.addEventListener('abort', () => {
              aborted = true;
              resolve({ approved: false, error: new SupervisorError('SUP_ERR_ATTEST_TIMEOUT', 'ended') });
            });
          }),
      },
      RELAY_SPEC,
    );
    const started = h.lifecycle.start();
    await waitFor(h, 'held');
    expect(await h.lifecycle.attest({ action: 'approve', force: true, peer: 'uid=0 pid=1 comm=test' })).toMatchObject({ state: 'running' });
    await started;
    expect(aborted).toBe(true);
  });
});
