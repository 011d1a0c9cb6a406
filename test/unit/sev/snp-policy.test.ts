// SEV-SNP policy: encode/decode round trips (fast-check), the sense of every bit, refusals.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeSnpPolicy,
  describeSnpPolicy,
  encodeSnpPolicy,
  explainSnpPolicy,
  snpPolicyAllowsDebug,
  snpPolicyProblems,
  snpPolicyView,
  type SnpPolicyFields,
} from '../../../src/sev/snp-policy.js';

const fieldsArb: fc.Arbitrary<SnpPolicyFields> = fc.record({
  abiMajor: fc.integer({ min: 0, max: 255 }),
  abiMinor: fc.integer({ min: 0, max: 255 }),
  smt: fc.boolean(),
  migrateMa: fc.boolean(),
  debug: fc.boolean(),
  singleSocket: fc.boolean(),
  cxlAllow: fc.boolean(),
  memAes256Xts: fc.boolean(),
  raplDis: fc.boolean(),
  ciphertextHiding: fc.boolean(),
  pageSwapDisable: fc.boolean(),
});

describe('SNP policy', () => {
  it('decode(encode(fields)) gives the fields back, bit 17 set, nothing above bit 25', () => {
    fc.assert(
      fc.property(fieldsArb, (fields) => {
        const value = encodeSnpPolicy(fields);
        const d = decodeSnpPolicy(value);
        expect(d).toMatchObject(fields);
        expect(value & (1n << 17n)).toBe(1n << 17n);
        expect(value >> 26n).toBe(0n);
        expect(d.reservedHigh).toBe(0n);
        expect(snpPolicyProblems(value).length).toBe(fields.migrateMa ? 1 : 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('encode(decode(v)) is v for every u64 without reserved bits (bit 17 forced)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 26n) - 1n }), (v) => {
        expect(encodeSnpPolicy(decodeSnpPolicy(v))).toBe(v | (1n << 17n));
      }),
      { numRuns: 2000 },
    );
  });

  it('reports reserved bits and a clear bit 17 instead of dropping them', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }), (v) => {
        const d = decodeSnpPolicy(v);
        expect(d.reservedHigh).toBe(v & ~((1n << 26n) - 1n));
        const problems = snpPolicyProblems(v);
        expect(problems.some((p) => p.startsWith('bit 17'))).toBe((v & (1n << 17n)) === 0n);
        expect(problems.some((p) => p.startsWith('reserved bits'))).toBe(d.reservedHigh !== 0n);
      }),
      { numRuns: 2000 },
    );
  });

  it('uses the SNP sense: SMT and DEBUG are "allowed when set"', () => {
    expect(decodeSnpPolicy(0x30000n)).toMatchObject({ smt: true, debug: false, flags: ['SMT', 'RESERVED_MBO'] });
    expect(snpPolicyAllowsDebug(0xb0000n)).toBe(true);
    expect(snpPolicyAllowsDebug(0x30000n)).toBe(false);
    expect(describeSnpPolicy(0x30000n)).toBe('0x30000 (SNP, ABI >= 0.0, SMT allowed, no debugging)');
    expect(describeSnpPolicy(0xb0137n)).toBe('0xb0137 (SNP, ABI >= 1.55, SMT allowed, DEBUG allowed)');
    expect(describeSnpPolicy(0x2120000n)).toBe(
      '0x2120000 (SNP, ABI >= 0.0, SMT not allowed, no debugging, SINGLE_SOCKET, PAGE_SWAP_DISABLE)',
    );
    expect(describeSnpPolicy(0x4000000n)).toBe(
      '0x4000000 (SNP, ABI >= 0.0, SMT not allowed, no debugging, bit 17 CLEAR, reserved 0x4000000)',
    );
    // The verifier's JSON view (what issue 13's own decoder printed): bit 17 left out of the flags.
    expect(snpPolicyView(0x1b0137n)).toEqual({ value: '0x1b0137', abiMajor: 1, abiMinor: 0x37, flags: ['SMT', 'DEBUG', 'SINGLE_SOCKET'] });
    expect(explainSnpPolicy(0x80000n).find((b) => b.name === 'DEBUG')).toEqual({
      bit: 19,
      name: 'DEBUG',
      set: true,
      meaning: 'debugging allowed (the host can read and write guest memory through the PSP)',
    });
  });

  it('refuses the migration agent for the same reason as NOSEND', () => {
    expect(snpPolicyProblems(0x70000n)).toEqual([
      "bit 18 (MIGRATE_MA) allows a migration agent; sevsup never migrates an encrypted guest (as it always sets SEV's NOSEND)",
    ]);
  });

  it('throws on values outside u64 and ABI fields outside a byte', () => {
    expect(() => decodeSnpPolicy(-1n)).toThrow(RangeError);
    expect(() => decodeSnpPolicy(1n << 64n)).toThrow(RangeError);
    expect(() => encodeSnpPolicy({ ...decodeSnpPolicy(0x30000n), abiMajor: 256 })).toThrow(RangeError);
  });
});
