import { describe, expect, it } from 'vitest';
import { buildRecord, parseRecord, recordFileStem, type RecordInputs } from '../../../src/vm/record.js';

const MEASUREMENT = Buffer.alloc(48, 7);
MEASUREMENT.fill(0xab, 32);

function inputs(over: Partial<RecordInputs> = {}): RecordInputs {
  return {
    vm: 'demo',
    capturedAt: new Date('2026-11-26T10:25:20.123Z'),
    platform: 'simulated',
    sevType: 'sev',
    reported: { policy: 0xb, apiMajor: 1, apiMinor: 55, buildId: 21, state: 'launch-secret' },
    expectedPolicy: 0xb,
    expectedLaunchDigest: 'ab'.repeat(32),
    measurement: MEASUREMENT.toString('base64'),
    mnonce: MEASUREMENT.subarray(32),
    launch: {
      firmware: { path: '/fw/OVMF.fd', sha256: 'aa'.repeat(32) },
      kernel: { path: '/k/vmlinuz', sha256: 'bb'.repeat(32) },
      initrd: null,
      cmdline: 'console=ttyS0 panic=-1',
      kernelHashes: true,
      vcpus: 2,
      cpuModel: 'EPYC',
      qemuVersion: '7.2.22',
    },
    ...over,
  };
}

describe('buildRecord', () => {
  it('has exactly the schema fields, in order', () => {
    const record = buildRecord(inputs());
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
    expect(record.expectedLaunchDigest).toBe('ab'.repeat(32));
    expect(record.vmsaInit).toBeNull();
    expect(Object.keys(record.launch)).toEqual([
      'firmware',
      'kernel',
      'initrd',
      'cmdline',
      'kernelHashes',
      'vcpus',
      'cpuModel',
      'qemuVersion',
    ]);
    expect(record.schema).toBe('sevsup.measurement/v1');
    expect(record.capturedAt).toBe('2026-11-26T10:25:20.123Z');
    expect(record.mnonce).toBe('ab'.repeat(16));
    expect(record.measurement).toBe(MEASUREMENT.toString('base64'));
  });

  it('gives the validator decimal numbers and the measured kernel inputs', () => {
    expect(buildRecord(inputs()).validateArgs).toEqual([
      '--measurement',
      MEASUREMENT.toString('base64'),
      '--api-major',
      '1',
      '--api-minor',
      '55',
      '--build-id',
      '21',
      '--policy',
      '11',
      '--firmware',
      '/fw/OVMF.fd',
      '--kernel',
      '/k/vmlinuz',
      '--cmdline',
      'console=ttyS0 panic=-1',
    ]);
  });

  it('passes --initrd when there is one, and no kernel at all without kernel-hashes', () => {
    const base = inputs();
    const withInitrd = buildRecord(
      inputs({ launch: { ...base.launch, initrd: { path: '/k/initrd', sha256: 'cc'.repeat(32) }, cmdline: null } }),
    );
    expect(withInitrd.validateArgs.slice(12)).toEqual(['--kernel', '/k/vmlinuz', '--initrd', '/k/initrd']);
    const unmeasured = buildRecord(inputs({ launch: { ...base.launch, kernelHashes: false } }));
    expect(unmeasured.validateArgs).not.toContain('--kernel');
    expect(unmeasured.validateArgs).not.toContain('--cmdline');
  });

  it('adds the vCPU count and CPU signature for SEV-ES', () => {
    const record = buildRecord(inputs({ sevType: 'sev-es', cpuSignature: { family: 23, model: 1, stepping: 2 } }));
    expect(record.validateArgs.slice(-8)).toEqual(['--num-cpus', '2', '--cpu-family', '23', '--cpu-model', '1', '--cpu-stepping', '2']);
    expect(() => buildRecord(inputs({ sevType: 'sev-es' }))).toThrow(
      'an SEV-ES record needs the guest CPU signature (family, model, stepping)',
    );
  });

  it('never includes --tik or --tek', () => {
    const args = buildRecord(inputs({ sevType: 'sev-es', cpuSignature: { family: 25, model: 1, stepping: 1 } })).validateArgs;
    expect(args.filter((a) => /^--t[ei]k$|^--tk$/.test(a))).toEqual([]);
  });

  it('refuses an mnonce that is not 16 bytes', () => {
    expect(() => buildRecord(inputs({ mnonce: Buffer.alloc(15) }))).toThrow('mnonce must be 16 bytes, got 15');
  });
});

describe('parseRecord', () => {
  it('round-trips through JSON', () => {
    const record = buildRecord(inputs());
    expect(parseRecord(JSON.parse(JSON.stringify(record)))).toEqual(record);
  });

  it.each([
    ['another schema', { schema: 'sevsup.measurement/v2' }],
    ['a string policy', { policy: '0xb' }],
    ['a bad platform', { platform: 'cloud' }],
    ['a non-string validate arg', { validateArgs: ['--policy', 11] }],
    ['a launch without sha256', { launch: { ...buildRecord(inputs()).launch, firmware: { path: '/x' } } }],
    ['a fractional vCPU count', { launch: { ...buildRecord(inputs()).launch, vcpus: 1.5 } }],
    ['a missing vm', { vm: undefined }],
  ])('rejects %s', (_name, patch) => {
    expect(parseRecord({ ...JSON.parse(JSON.stringify(buildRecord(inputs()))), ...patch })).toBeNull();
  });

  it('rejects non-objects', () => {
    expect(parseRecord(null)).toBeNull();
    expect(parseRecord([])).toBeNull();
    expect(parseRecord('x')).toBeNull();
  });
});

describe('recordFileStem', () => {
  it('drops colons only', () => {
    expect(recordFileStem('2026-11-26T10:25:20.123Z')).toBe('2026-11-26T10-25-20.123Z');
  });
});
