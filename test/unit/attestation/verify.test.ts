import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  explainMismatch,
  isSevEsPolicy,
  recordCpuSignature,
  selectLaunchInputs,
  verifyLaunch,
  type ComputedWith,
  type OwnerLaunchInputs,
  type ReportedLaunch,
} from '../../../src/attestation/verify.js';
import { hasCode, type ErrorCode } from '../../../src/errors.js';
import { buildRecord, type MeasurementRecord, type RecordInputs } from '../../../src/vm/record.js';
import { errorOf as thrown } from '../../support/sev-helpers.js';

/** The SEV API's LAUNCH_MEASURE MAC, written out independently of src/sev/measurement.ts. */
function measure(tik: Buffer, r: Omit<ReportedLaunch, 'measurement'>, digest: Buffer, mnonce = randomBytes(16)): string {
  const head = Buffer.from([0x04, r.apiMajor, r.apiMinor, r.buildId, 0, 0, 0, 0]);
  head.writeUInt32LE(r.policy, 4);
  const mac = createHmac('sha256', tik).update(head).update(digest).update(mnonce).digest();
  return Buffer.concat([mac, mnonce]).toString('base64');
}

function expectCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  const e = thrown(fn);
  expect(hasCode(e, code), `expected ${code}, got ${String(e)}`).toBe(true);
  if (message) expect(e instanceof Error ? e.message : '').toMatch(message);
}

const tik = randomBytes(16);
const digest = randomBytes(32);
const host = { apiMajor: 1, apiMinor: 51, buildId: 3, policy: 0x7 };
const reported: ReportedLaunch = { ...host, measurement: measure(tik, host, digest) };

describe('verifyLaunch', () => {
  it('accepts the measurement of exactly these values', () => {
    expect(verifyLaunch({ reported, tik, launchDigest: digest })).toEqual({
      valid: true,
      exitCode: 0,
      checks: [{ name: 'measurement', ok: true, message: expect.stringContaining('matches') }],
    });
  });

  it('refuses when any bound value differs: digest, TIK, API version, build, policy, nonce', () => {
    const flipped = Buffer.from(digest);
    flipped[31] = (flipped[31] ?? 0) ^ 1;
    const raw = Buffer.from(reported.measurement, 'base64');
    raw[40] = (raw[40] ?? 0) ^ 0x80; // inside the mnonce
    const cases: [string, Parameters<typeof verifyLaunch>[0]][] = [
      ['digest', { reported, tik, launchDigest: flipped }],
      ['tik', { reported, tik: randomBytes(16), launchDigest: digest }],
      ['api-major', { reported: { ...reported, apiMajor: 2 }, tik, launchDigest: digest }],
      ['api-minor', { reported: { ...reported, apiMinor: 52 }, tik, launchDigest: digest }],
      ['build-id', { reported: { ...reported, buildId: 4 }, tik, launchDigest: digest }],
      ['policy', { reported: { ...reported, policy: 0x5 }, tik, launchDigest: digest }],
      ['mnonce', { reported: { ...reported, measurement: raw.toString('base64') }, tik, launchDigest: digest }],
    ];
    for (const [name, input] of cases) {
      const out = verifyLaunch(input);
      expect(out.valid, name).toBe(false);
      expect(out.exitCode, name).toBe(1);
      expect(out.checks[0]?.ok, name).toBe(false);
    }
  });

  it('refuses a measurement that is not base64 of 48 bytes as unsupported usage', () => {
    for (const bad of [
      Buffer.alloc(47).toString('base64'),
      Buffer.alloc(49).toString('base64'),
      'not base64!',
      '',
      `${reported.measurement}\n`,
    ]) {
      expectCode(
        () => verifyLaunch({ reported: { ...reported, measurement: bad }, tik, launchDigest: digest }),
        'SUP_ERR_VERIFY_UNSUPPORTED',
        /measurement/,
      );
    }
  });

  it("applies the owner's policy, API version and build id conditions after the MAC", () => {
    const run = (checks: Parameters<typeof verifyLaunch>[0]['checks']): boolean[] =>
      verifyLaunch({ reported, tik, launchDigest: digest, ...(checks === undefined ? {} : { checks }) }).checks.map((c) => c.ok);
    expect(run({ expectedPolicy: 0x7, minApi: { major: 1, minor: 51 }, allowedBuildIds: [1, 3] })).toEqual([true, true, true, true]);
    expect(run({ expectedPolicy: 0xf })).toEqual([true, false]);
    expect(run({ minApi: { major: 1, minor: 52 } })).toEqual([true, false]);
    expect(run({ minApi: { major: 0, minor: 99 } })).toEqual([true, true]);
    expect(run({ minApi: { major: 2, minor: 0 } })).toEqual([true, false]);
    expect(run({ allowedBuildIds: [4] })).toEqual([true, false]);
    expect(run({ allowedBuildIds: [] })).toEqual([true]);
    const out = verifyLaunch({ reported, tik, launchDigest: digest, checks: { expectedPolicy: 0xf } });
    expect(out).toMatchObject({ valid: false, exitCode: 1 });
    expect(out.checks[1]?.message).toBe('policy 0x7 is not the expected 0xf');
  });

  it('reads SEV-ES from policy bit 2', () => {
    expect([0x0, 0x4, 0x7, 0x8, 0xf, 0x3].map(isSevEsPolicy)).toEqual([false, true, true, false, true, false]);
  });
});

function record(
  o: Partial<RecordInputs['launch']> & {
    cpuSignature?: RecordInputs['cpuSignature'];
    sevType?: 'sev' | 'sev-es';
    platform?: 'hardware' | 'simulated';
  } = {},
): MeasurementRecord {
  const { cpuSignature, sevType, platform, ...launch } = o;
  return buildRecord({
    vm: 'vm1',
    capturedAt: new Date('2026-11-26T10:00:00Z'),
    platform: platform ?? 'hardware',
    sevType: sevType ?? 'sev-es',
    reported: { ...host, state: 'launch-secret' },
    expectedPolicy: host.policy,
    expectedLaunchDigest: 'ab'.repeat(32),
    measurement: reported.measurement,
    mnonce: Buffer.alloc(16),
    launch: {
      firmware: { path: '/host/OVMF.fd', sha256: 'a'.repeat(64) },
      kernel: { path: '/host/vmlinuz', sha256: 'b'.repeat(64) },
      initrd: { path: '/host/initrd', sha256: 'c'.repeat(64) },
      cmdline: 'console=ttyS0',
      kernelHashes: true,
      vcpus: 4,
      cpuModel: 'EPYC-Rome',
      qemuVersion: '7.2.22',
      ...launch,
    },
    ...(cpuSignature === undefined ? (sevType === 'sev' ? {} : { cpuSignature: { family: 25, model: 1, stepping: 1 } }) : { cpuSignature }),
  });
}

const mine: OwnerLaunchInputs = {
  firmware: '/owner/OVMF.fd',
  kernel: '/owner/vmlinuz',
  initrd: '/owner/initrd',
  cmdline: 'console=ttyS0',
  vcpus: 4,
  cpu: { family: 25, model: 1, stepping: 1 },
};

describe('selectLaunchInputs (the trust model)', () => {
  it("uses the owner's inputs whenever given, record or not", () => {
    for (const rec of [null, record()]) {
      const s = selectLaunchInputs({ owner: mine, record: rec, useRecordInputs: false, sevEs: true });
      expect(s).toMatchObject({ ...mine, insecure: [] });
      expect(Object.values(s.sources).every((v) => v === 'owner')).toBe(true);
    }
  });

  it('needs a firmware from somewhere', () => {
    expectCode(
      () => selectLaunchInputs({ owner: {}, record: null, useRecordInputs: false, sevEs: false }),
      'SUP_ERR_VERIFY_UNSUPPORTED',
      /--firmware is required/,
    );
  });

  it("refuses the record's launch paths without --use-record-inputs, naming the option to give", () => {
    const rec = record();
    const cases: [OwnerLaunchInputs, RegExp][] = [
      [{}, /firmware path \/host\/OVMF\.fd .*give --firmware/],
      [{ firmware: 'f' }, /kernel path .*give --kernel/],
      [{ firmware: 'f', kernel: 'k' }, /initrd path .*give --initrd/],
      [{ firmware: 'f', kernel: 'k', initrd: 'i' }, /kernel command line.*give --cmdline/],
      [{ firmware: 'f', kernel: 'k', initrd: 'i', cmdline: '' }, /vCPU count \(4\).*give --vcpus/],
      [{ firmware: 'f', kernel: 'k', initrd: 'i', cmdline: '', vcpus: 2 }, /vCPU signature \(CPU model EPYC-Rome\)/],
    ];
    for (const [owner, message] of cases) {
      expectCode(() => selectLaunchInputs({ owner, record: rec, useRecordInputs: false, sevEs: true }), 'SUP_ERR_VERIFY_INSECURE', message);
    }
  });

  it('takes them with --use-record-inputs and lists each one as insecure', () => {
    const s = selectLaunchInputs({ owner: { kernel: '/owner/vmlinuz' }, record: record(), useRecordInputs: true, sevEs: true });
    expect(s).toMatchObject({
      firmware: '/host/OVMF.fd',
      kernel: '/owner/vmlinuz',
      initrd: '/host/initrd',
      cmdline: 'console=ttyS0',
      vcpus: 4,
      cpu: { family: 25, model: 1, stepping: 1 }, // the record's validator arguments win over its model name
    });
    expect(s.sources).toEqual({ firmware: 'record', kernel: 'owner', initrd: 'record', cmdline: 'record', vcpus: 'record', cpu: 'record' });
    expect(s.insecure).toHaveLength(5);
    expect(s.insecure.join('\n')).toMatch(/firmware.*host's measurement record/);
  });

  it('takes no kernel, initrd or cmdline from a record that did not measure them', () => {
    const s = selectLaunchInputs({
      owner: { firmware: 'f' },
      record: record({ kernelHashes: false }),
      useRecordInputs: false,
      sevEs: false,
    });
    expect(s).toEqual({ firmware: 'f', sources: { firmware: 'owner' }, insecure: [] });
  });

  it("falls back to the record's CPU model, and refuses one it cannot map", () => {
    const noArgs = { ...record({ sevType: 'sev-es' }), validateArgs: [] };
    expect(recordCpuSignature(noArgs)).toEqual({ family: 23, model: 49, stepping: 0 });
    const host = { ...noArgs, launch: { ...noArgs.launch, cpuModel: 'host' } };
    expect(recordCpuSignature(host)).toBeNull();
    expectCode(
      () => selectLaunchInputs({ owner: { firmware: 'f', vcpus: 1 }, record: host, useRecordInputs: true, sevEs: true }),
      'SUP_ERR_VERIFY_CONFIG',
      /"host"/,
    );
  });

  it('asks for vCPUs and their signature for SEV-ES, and ignores them otherwise', () => {
    expectCode(
      () => selectLaunchInputs({ owner: { firmware: 'f' }, record: null, useRecordInputs: false, sevEs: true }),
      'SUP_ERR_VERIFY_UNSUPPORTED',
      /--vcpus/,
    );
    expectCode(
      () => selectLaunchInputs({ owner: { firmware: 'f', vcpus: 2 }, record: null, useRecordInputs: false, sevEs: true }),
      'SUP_ERR_VERIFY_UNSUPPORTED',
      /--vcpu-type/,
    );
    expect(
      selectLaunchInputs({
        owner: { firmware: 'f', vcpus: 2, cpu: mine.cpu ?? { family: 0, model: 0, stepping: 0 } },
        record: null,
        useRecordInputs: false,
        sevEs: false,
      }),
    ).toEqual({
      firmware: 'f',
      sources: { firmware: 'owner' },
      insecure: [],
    });
  });

  it('refuses --use-record-inputs without a record', () => {
    expectCode(
      () => selectLaunchInputs({ owner: mine, record: null, useRecordInputs: true, sevEs: false }),
      'SUP_ERR_VERIFY_UNSUPPORTED',
      /needs --record/,
    );
  });
});

describe('explainMismatch', () => {
  const computed: ComputedWith = {
    firmwareSha256: 'a'.repeat(64),
    kernelSha256: 'b'.repeat(64),
    initrdSha256: 'c'.repeat(64),
    cmdline: 'console=ttyS0',
    vcpus: 4,
    sevEs: true,
    vmsaInit: 'legacy',
    sevFeatures: 0n,
  };

  it('points at the inputs the record says differ, and at the SEV-ES host settings', () => {
    const hints = explainMismatch({ ...computed, firmwareSha256: 'f'.repeat(64), vcpus: 2, cmdline: 'quiet' }, record());
    expect(hints.join('\n')).toMatch(/firmware sha256 a{64}, you computed with f{64}/);
    expect(hints.join('\n')).toMatch(/4 vCPUs, you computed with 2/);
    expect(hints.join('\n')).toMatch(/command line "console=ttyS0" differs from yours "quiet"/);
    expect(hints.join('\n')).toMatch(/--vmsa-init init2/);
    expect(hints.join('\n')).toMatch(/--sev-features 0x20/);
    expect(hints.join('\n')).not.toMatch(/kernel sha256|initrd sha256/);
  });

  it('says nothing about inputs when there is no record, and suggests legacy to init2 users', () => {
    const hints = explainMismatch({ ...computed, vmsaInit: 'init2', sevFeatures: 0x20n }, null);
    expect(hints.join('\n')).toMatch(/--vmsa-init legacy/);
    expect(hints.join('\n')).not.toMatch(/record|sev-features/);
  });

  it('reminds of the simulated platform', () => {
    expect(explainMismatch({ ...computed, sevEs: false }, record({ platform: 'simulated' })).join('\n')).toMatch(/simulated platform/);
  });
});
