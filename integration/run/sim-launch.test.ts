// (b) End to end on the simulated platform: kernel-hashes with a real kernel reaches running; the
// record has every field; libvirt's virt-qemu-sev-validate, given only the record's validateArgs
// and the platform's TIK/TEK, accepts the measurement (exit 0) and refuses it when one kernel byte
// differs (exit 1). Both query-sev reply shapes. (e) A record that cannot be written keeps the
// guest from ever being resumed.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEBIAN_OVMF,
  KERNEL,
  PYTHON,
  SIM,
  TEST_FIRMWARE,
  VALIDATOR,
  cleanupScope,
  missingPrerequisite,
  processesMentioning,
  runProcess,
  simRun,
  simStatus,
  writeConf,
  writeKey,
} from './harness.js';

const missing = missingPrerequisite(SIM, KERNEL, TEST_FIRMWARE, VALIDATOR, PYTHON);
const scope = cleanupScope();
const track = scope.track;

const CMDLINE = 'console=ttyS0 panic=-1';

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

async function setup(name: string, sev: string): Promise<{ dir: string; conf: string; tik: string; tek: string }> {
  const dir = await scope.dir();
  const conf = await writeConf(dir, { name, firmware: TEST_FIRMWARE, kernel: KERNEL, cmdline: CMDLINE, sev });
  return { dir, conf, tik: await writeKey(join(dir, 'tik.bin')), tek: await writeKey(join(dir, 'tek.bin')) };
}

function validate(args: readonly string[], tik: string, tek: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runProcess(PYTHON, [VALIDATOR, ...args, '--tik', tik, '--tek', tek]);
}

describe.skipIf(missing !== null)(`sevsup run --platform sim, end to end${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it.each(['7.2', '9.1'])('kernel-hashes guest with query-sev shape %s: runs, and the record validates with libvirt', async (shape) => {
    const vm = `kh${shape.replace('.', '')}`;
    const { dir, conf, tik, tek } = await setup(vm, 'type=std,nodbg=1,noks=1,kernel-hashes=1');
    const run = track(simRun(dir, conf, ['--sim-tik', tik, '--sim-tek', tek, '--sim-reply-shape', shape]));
    const measured = await run.waitFor('measured');
    await run.waitFor('running');
    expect(run.names()).toEqual(['starting', 'spawned', 'checked', 'measured', 'resumed', 'running']);
    expect(run.events[0]).toMatchObject({ platform: 'simulated', sev: true });
    expect(run.events[2]).toMatchObject({ policy: '0xb', sevType: 'sev', apiMajor: 1, apiMinor: 55, buildId: 21 });

    const recordPath = String(measured['record']);
    expect(recordPath).toMatch(new RegExp(`^${dir}/state/${vm}/measurements/\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\d\\.\\d{3}Z\\.json$`));
    const record = JSON.parse(await readFile(recordPath, 'utf8')) as Record<string, unknown> & {
      launch: Record<string, unknown>;
      validateArgs: string[];
    };
    expect(JSON.parse(await readFile(join(dir, 'state', vm, 'measurements', 'latest.json'), 'utf8'))).toEqual(record);
    expect(Object.keys(record)).toEqual([
      'schema',
      'vm',
      'capturedAt',
      'platform',
      'sevType',
      'policy',
      'expectedPolicy',
      'apiMajor',
      'apiMinor',
      'buildId',
      'state',
      'measurement',
      'mnonce',
      'launch',
      'expectedLaunchDigest',
      'vmsaInit',
      'validateArgs',
    ]);
    // The host's own digest (a diagnostic for owners) equals what the platform measured.
    const platformDigest = (simStatus(dir, vm) as unknown as { launchDigest: string }).launchDigest;
    expect(record['expectedLaunchDigest']).toBe(platformDigest);
    const measurement = String(measured['measurement']);
    expect(record).toMatchObject({
      schema: 'sevsup.measurement/v1',
      vm,
      platform: 'simulated',
      sevType: 'sev',
      policy: 0xb,
      expectedPolicy: 0xb,
      apiMajor: 1,
      apiMinor: 55,
      buildId: 21,
      state: 'launch-secret',
      measurement,
      mnonce: Buffer.from(measurement, 'base64').subarray(32).toString('hex'),
    });
    expect(record.launch).toEqual({
      firmware: { path: TEST_FIRMWARE, sha256: await sha256(TEST_FIRMWARE) },
      kernel: { path: KERNEL, sha256: await sha256(KERNEL) },
      initrd: null,
      cmdline: CMDLINE,
      kernelHashes: true,
      vcpus: 1,
      cpuModel: 'EPYC-v3',
      qemuVersion: expect.stringMatching(/^7\.2\.\d+/) as unknown as string,
    });
    expect(record.validateArgs).toEqual([
      '--measurement',
      measurement,
      '--api-major',
      '1',
      '--api-minor',
      '55',
      '--build-id',
      '21',
      '--policy',
      '11',
      '--firmware',
      TEST_FIRMWARE,
      '--kernel',
      KERNEL,
      '--cmdline',
      CMDLINE,
    ]);
    // The sim's own view agrees, and it really ran the guest once.
    expect(simStatus(dir, vm)).toMatchObject({ measurement, contCount: 1 });

    const ok = await validate(record.validateArgs, tik, tek);
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });

    if (shape === '7.2') {
      // One kernel byte changed: the validator's kernel-hashes table differs, so must the digest.
      const tampered = join(dir, 'vmlinuz-tampered');
      await copyFile(KERNEL, tampered);
      const bytes = await readFile(tampered);
      bytes[bytes.length - 100] = (bytes[bytes.length - 100] ?? 0) ^ 0x01;
      await writeFile(tampered, bytes);
      const args = record.validateArgs.map((a) => (a === KERNEL ? tampered : a));
      expect((await validate(args, tik, tek)).code).toBe(1);
      // And a different TIK (someone else's platform) cannot reproduce the MAC either.
      expect((await validate(record.validateArgs, await writeKey(join(dir, 'other-tik.bin')), tek)).code).toBe(1);
    }

    run.signal('SIGTERM');
    const result = await run.done;
    expect(result.code).toBe(0);
    expect(run.names().slice(-2)).toEqual(['stopping', 'stopped']);
    expect(run.events.at(-2)).toMatchObject({ reason: 'signal SIGTERM' });
    expect(processesMentioning(dir)).toEqual([]);
  });

  it('SEV-ES: the record carries --num-cpus and the CPU signature, and it validates', async () => {
    const { dir, conf, tik, tek } = await setup('es1', 'type=es,nodbg=1,noks=1,kernel-hashes=1');
    const run = track(simRun(dir, conf, ['--sim-tik', tik, '--sim-tek', tek]));
    const measured = await run.waitFor('measured');
    const record = JSON.parse(await readFile(String(measured['record']), 'utf8')) as {
      sevType: string;
      policy: number;
      validateArgs: string[];
      expectedLaunchDigest: string;
      vmsaInit: string | null;
    };
    expect(record.sevType).toBe('sev-es');
    expect(record.policy).toBe(0xf);
    // The host's own digest, VMSAs included, equals what the platform measured.
    expect(record.vmsaInit).toBe('legacy');
    expect(record.expectedLaunchDigest).toBe((simStatus(dir, 'es1') as unknown as { launchDigest: string }).launchDigest);
    // EPYC-v3 is family 23, model 1, stepping 2 in QEMU's CPU table.
    expect(record.validateArgs.slice(-8)).toEqual(['--num-cpus', '1', '--cpu-family', '23', '--cpu-model', '1', '--cpu-stepping', '2']);
    const ok = await validate(record.validateArgs, tik, tek);
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    await run.cleanup();
    expect(processesMentioning(dir)).toEqual([]);
  });
});

describe.skipIf(missing !== null)(`(e) record write faults${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it('a state dir that cannot hold the record fails closed: exit 6, never resumed, nothing left', async () => {
    const dir = await scope.dir();
    // The state directory itself must be usable (sevsup run takes its lock there before spawning);
    // the VM's own directory inside it is a file, so the record cannot be written.
    const state = join(dir, 'state');
    await mkdir(state);
    const blocker = join(state, 'rec1');
    await writeFile(blocker, '');
    const conf = await writeConf(dir, { name: 'rec1', firmware: DEBIAN_OVMF });
    const run = track(simRun(dir, conf, ['--state-dir', state]));
    const result = await run.done;
    expect(result.code).toBe(6);
    expect(run.names()).toEqual(['starting', 'spawned', 'checked', 'stopping', 'stopped', 'failed']);
    expect(run.events.at(-1)).toMatchObject({
      code: 'SUP_ERR_RECORD_WRITE',
      message: `VM rec1: cannot create the measurement directory ${join(blocker, 'measurements')} of VM rec1: a component of the path is not a directory (ENOTDIR); the guest was not resumed`,
    });
    expect(simStatus(dir, 'rec1').contCount).toBe(0);
    expect(processesMentioning(dir)).toEqual([]);
  });
});
