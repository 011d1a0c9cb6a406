import { createHmac, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import {
  computeMeasurementMac,
  decodeMeasurement,
  decodeStrictBase64,
  encodeMeasurement,
  macEquals,
} from '../../../src/sev/measurement.js';
import { createHash } from 'node:crypto';
import { errorOf } from '../../support/sev-helpers.js';

describe('measurement MAC', () => {
  const inputs = {
    tik: Buffer.from([...Array(16).keys()]),
    apiMajor: 1,
    apiMinor: 49,
    buildId: 3,
    policy: 0x8,
    digest: createHash('sha256')
      .update(Buffer.from('fw-bytes'.repeat(100)))
      .digest(),
    mnonce: Buffer.from([...Array(16).keys()].map((i) => 100 + i)),
  };

  it("matches a vector computed with libvirt's validator code", () => {
    const mac = computeMeasurementMac(inputs);
    expect(mac.toString('hex')).toBe('62b1a260ee43650e59948cd5907e4bfc26b8bc4a56c50c08a26dc746c262c0ff');
    expect(encodeMeasurement(mac, inputs.mnonce)).toBe('YrGiYO5DZQ5ZlIzVkH5L/Ca4vEpWxQwIom3HRsJiwP9kZWZnaGlqa2xtbm9wcXJz');
  });

  it('is HMAC-SHA256 over 0x04 ‖ major ‖ minor ‖ build ‖ policy LE ‖ digest ‖ mnonce', () => {
    fc.assert(
      fc.property(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(0xffffffff), (apiMajor, apiMinor, buildId, policy) => {
        const tik = randomBytes(16);
        const digest = randomBytes(32);
        const mnonce = randomBytes(16);
        const p = Buffer.alloc(4);
        p.writeUInt32LE(policy);
        const expected = createHmac('sha256', tik)
          .update(Buffer.concat([Buffer.of(4, apiMajor, apiMinor, buildId), p, digest, mnonce]))
          .digest();
        expect(computeMeasurementMac({ tik, apiMajor, apiMinor, buildId, policy, digest, mnonce }).equals(expected)).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it('refuses wrong key, digest and nonce sizes and out-of-range fields', () => {
    for (const bad of [
      { tik: Buffer.alloc(32) },
      { digest: Buffer.alloc(31) },
      { mnonce: Buffer.alloc(15) },
      { apiMajor: 256 },
      { buildId: -1 },
      { policy: 0x100000000 },
      { policy: 1.5 },
    ]) {
      expect(
        hasCode(
          errorOf(() => computeMeasurementMac({ ...inputs, ...bad })),
          'SUP_ERR_VERIFY_UNSUPPORTED',
        ),
      ).toBe(true);
    }
  });
});

describe('measurement blob', () => {
  it('round-trips MAC and mnonce', () => {
    const mac = randomBytes(32);
    const mnonce = randomBytes(16);
    const decoded = decodeMeasurement(encodeMeasurement(mac, mnonce));
    expect(decoded.mac.equals(mac) && decoded.mnonce.equals(mnonce)).toBe(true);
  });

  it('rejects garbage, whitespace, URL-safe letters, bad padding and wrong lengths', () => {
    const good = Buffer.alloc(48, 0xfb).toString('base64'); // contains '+' and '/'
    expect(good).toMatch(/[+/]/);
    const bads = [
      '',
      'not base64!',
      `${good} `,
      ` ${good}`,
      `${good.slice(0, 30)}\n${good.slice(30)}`,
      good.replaceAll('+', '-').replaceAll('/', '_'),
      Buffer.alloc(47).toString('base64'),
      Buffer.alloc(49).toString('base64'),
      `${good}====`,
      `${good.slice(0, -1)}=`,
    ];
    for (const b64 of bads) {
      const error = errorOf(() => decodeMeasurement(b64));
      expect(hasCode(error, 'SUP_ERR_CHECK_MEASUREMENT'), JSON.stringify(b64)).toBe(true);
    }
  });

  it('accepts only canonical base64 (no stray bits in the last character)', () => {
    expect(decodeStrictBase64('QQ==')?.toString()).toBe('A');
    expect(decodeStrictBase64('QR==')).toBeNull();
    expect(decodeStrictBase64('QUI=')?.toString()).toBe('AB');
    expect(decodeStrictBase64('QUJ=')).toBeNull();
    expect(decodeStrictBase64('QQ')).toBeNull();
  });

  it('compares MACs in constant time and treats length differences as unequal', () => {
    const a = randomBytes(32);
    expect(macEquals(a, Buffer.from(a))).toBe(true);
    const b = Buffer.from(a);
    b[31] = (b[31] ?? 0) ^ 1;
    expect(macEquals(a, b)).toBe(false);
    expect(macEquals(a, a.subarray(0, 31))).toBe(false);
  });
});
