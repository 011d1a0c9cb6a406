import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { checkMeasurement, checkSevInfo, checkSnpInfo, type ReportedSev } from '../../../src/vm/checks.js';

const GOOD: ReportedSev = { enabled: true, policy: 0xb, state: 'launch-secret', sevType: null };

function failure(fn: () => unknown): { code: string; message: string; details: Readonly<Record<string, unknown>> } {
  try {
    fn();
  } catch (error) {
    if (
      hasCode(
        error,
        'SUP_ERR_CHECK_SEV_DISABLED',
        'SUP_ERR_CHECK_SEV_TYPE_MISMATCH',
        'SUP_ERR_CHECK_POLICY_MISMATCH',
        'SUP_ERR_CHECK_STATE',
        'SUP_ERR_CHECK_MEASUREMENT',
      )
    ) {
      return { code: error.code, message: error.message, details: error.details };
    }
    throw error;
  }
  throw new Error('expected the check to fail');
}

describe('checkSevInfo', () => {
  it('accepts an enabled guest with the expected policy in launch-secret (7.2 and 9.1+ shapes)', () => {
    expect(() => checkSevInfo('demo', GOOD, { policy: 0xb })).not.toThrow();
    expect(() => checkSevInfo('demo', { ...GOOD, sevType: 'sev' }, { policy: 0xb })).not.toThrow();
  });

  it.each([
    [
      'SEV off (a plain VM)',
      { ...GOOD, enabled: false, policy: 0, state: 'uninit' },
      'SUP_ERR_CHECK_SEV_DISABLED',
      'VM demo: QEMU reports SEV is not enabled (query-sev: enabled false), expected an SEV guest with policy 0xb (SEV, NODBG, NOKS, NOSEND); the guest was not resumed',
    ],
    [
      'an SNP guest',
      { enabled: true, state: 'launch-update', sevType: 'sev-snp', snpPolicy: 0x30000n },
      'SUP_ERR_CHECK_SEV_TYPE_MISMATCH',
      'VM demo: QEMU reports sev-type sev-snp, expected sev; the guest was not resumed',
    ],
    [
      'another policy',
      { ...GOOD, policy: 0x1 },
      'SUP_ERR_CHECK_POLICY_MISMATCH',
      'VM demo: QEMU applied SEV policy 0x1 (SEV, NODBG), but the config asks for 0xb (SEV, NODBG, NOKS, NOSEND); the guest was not resumed',
    ],
    [
      'a failed LAUNCH_MEASURE',
      { ...GOOD, state: 'launch-update' },
      'SUP_ERR_CHECK_STATE',
      'VM demo: SEV state is launch-update, expected launch-secret: LAUNCH_MEASURE failed, so there is no measurement (QEMU logs the firmware error on its stderr); the guest was not resumed',
    ],
    [
      'a guest that already ran',
      { ...GOOD, state: 'running' },
      'SUP_ERR_CHECK_STATE',
      'VM demo: SEV state is running, expected launch-secret: the guest has already run (was QEMU started without -S?); the guest was not resumed',
    ],
  ] as [string, ReportedSev, string, string][])('refuses %s', (_name, seen, code, message) => {
    const f = failure(() => checkSevInfo('demo', seen, { policy: 0xb }));
    expect(f.code).toBe(code);
    expect(f.message).toBe(message);
    expect(f.details['vm']).toBe('demo');
  });

  it('checks enabled before anything else', () => {
    expect(
      failure(() => checkSevInfo('demo', { enabled: false, snpPolicy: 1n, state: 'launch-update', sevType: 'sev-snp' }, { policy: 8 }))
        .code,
    ).toBe('SUP_ERR_CHECK_SEV_DISABLED');
  });

  it('puts what it saw and expected in details', () => {
    expect(failure(() => checkSevInfo('demo', { ...GOOD, policy: 1 }, { policy: 0xb })).details).toEqual({
      vm: 'demo',
      check: 'policy',
      seen: 1,
      expected: 0xb,
    });
  });
});

describe('checkSnpInfo', () => {
  const SNP: ReportedSev = { enabled: true, state: 'launch-update', sevType: 'sev-snp', snpPolicy: 0xb0000n };

  it('accepts an enabled SEV-SNP guest with exactly the expected 64-bit policy in launch-update', () => {
    expect(() => checkSnpInfo('demo', SNP, { policy: 0xb0000n })).not.toThrow();
  });

  it.each([
    [
      'SEV off',
      { ...SNP, enabled: false, state: 'uninit' },
      'SUP_ERR_CHECK_SEV_DISABLED',
      'VM demo: QEMU reports SEV is not enabled (query-sev: enabled false), expected an SEV-SNP guest with policy 0xb0000 (SNP, ABI >= 0.0, SMT allowed, DEBUG allowed); the guest was not resumed',
    ],
    [
      'an SEV guest (9.1+ shape)',
      { enabled: true, state: 'launch-secret', sevType: 'sev', policy: 0xb0000 },
      'SUP_ERR_CHECK_SEV_TYPE_MISMATCH',
      'VM demo: QEMU reports sev-type sev (SEV or SEV-ES), expected sev-snp; the guest was not resumed',
    ],
    [
      'a 7.2 reply',
      { enabled: true, state: 'launch-secret', sevType: null, policy: 0xb0000 },
      'SUP_ERR_CHECK_SEV_TYPE_MISMATCH',
      'VM demo: QEMU reports the QEMU 7.2 reply (no sev-type: plain SEV or SEV-ES), expected sev-snp; the guest was not resumed',
    ],
    [
      'another policy',
      { ...SNP, snpPolicy: 0x30000n },
      'SUP_ERR_CHECK_POLICY_MISMATCH',
      'VM demo: QEMU applied SEV-SNP policy 0x30000 (SNP, ABI >= 0.0, SMT allowed, no debugging), but the config asks for 0xb0000 (SNP, ABI >= 0.0, SMT allowed, DEBUG allowed); the guest was not resumed',
    ],
    [
      'a policy that differs only above bit 32',
      { ...SNP, snpPolicy: 0xb0000n | (1n << 40n) },
      'SUP_ERR_CHECK_POLICY_MISMATCH',
      'VM demo: QEMU applied SEV-SNP policy 0x100000b0000 (SNP, ABI >= 0.0, SMT allowed, DEBUG allowed, reserved 0x10000000000), but the config asks for 0xb0000 (SNP, ABI >= 0.0, SMT allowed, DEBUG allowed); the guest was not resumed',
    ],
    [
      'a guest that already ran',
      { ...SNP, state: 'running' },
      'SUP_ERR_CHECK_STATE',
      'VM demo: SEV-SNP state is running, expected launch-update: the guest has already run, so its launch was finished without sevsup (was QEMU started without -S?); the guest was not resumed',
    ],
  ] as [string, ReportedSev, string, string][])('refuses %s', (_name, seen, code, message) => {
    const f = failure(() => checkSnpInfo('demo', seen, { policy: 0xb0000n }));
    expect(f.code).toBe(code);
    expect(f.message).toBe(message);
  });

  it('puts the policies in details as hex (JSON has no bigint)', () => {
    const f = failure(() => checkSnpInfo('demo', { ...SNP, snpPolicy: 0x30000n }, { policy: 0xb0000n }));
    expect(f.details).toEqual({ vm: 'demo', check: 'policy', seen: '0x30000', expected: '0xb0000' });
    expect(() => JSON.stringify(f.details)).not.toThrow();
  });
});

describe('checkMeasurement', () => {
  it('returns the 48 decoded bytes as MAC (32) and mnonce (16)', () => {
    const raw = Buffer.concat([Buffer.alloc(32, 9), Buffer.alloc(16, 7)]);
    expect(checkMeasurement('demo', raw.toString('base64'))).toEqual({ mac: Buffer.alloc(32, 9), mnonce: Buffer.alloc(16, 7) });
  });

  it.each([
    [undefined, 'VM demo: QEMU returned no launch measurement, expected base64 of 48 bytes; the guest was not resumed'],
    ['', 'VM demo: QEMU returned no launch measurement, expected base64 of 48 bytes; the guest was not resumed'],
    [
      Buffer.alloc(32).toString('base64'),
      'VM demo: the launch measurement QEMU returned is 32 bytes, expected 48; the guest was not resumed',
    ],
    [
      `${Buffer.alloc(48).toString('base64')}AA==`,
      'VM demo: the launch measurement QEMU returned is 49 bytes, expected 48; the guest was not resumed',
    ],
    [
      'not base64!',
      'VM demo: the launch measurement QEMU returned is not base64 (11 characters), expected base64 of 48 bytes; the guest was not resumed',
    ],
    [
      ` ${Buffer.alloc(48).toString('base64')}`,
      'VM demo: the launch measurement QEMU returned is not base64 (65 characters), expected base64 of 48 bytes; the guest was not resumed',
    ],
  ])('refuses %j', (value, message) => {
    const f = failure(() => checkMeasurement('demo', value));
    expect(f.code).toBe('SUP_ERR_CHECK_MEASUREMENT');
    expect(f.message).toBe(message);
  });
});
