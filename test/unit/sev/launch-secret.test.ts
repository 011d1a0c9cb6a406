import { createDecipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import {
  buildLaunchSecret,
  buildSecretTable,
  parseSecretTable,
  resolveSecretGuid,
  SECRET_ALIASES,
  verifyLaunchSecret,
} from '../../../src/sev/launch-secret.js';
import { guidLe } from '../../support/ovmf-images.js';
import { errorOf } from '../../support/sev-helpers.js';

const LUKS = '736869e5-84f0-4973-92ec-06879ce3da0b';
const range = (start: number, n: number): Buffer => Buffer.from([...Array(n).keys()].map((i) => start + i));
const keys = () => ({ tik: randomBytes(16), tek: randomBytes(16), measurementMac: randomBytes(32) });

describe('secret table', () => {
  it('is header GUID ‖ u32 len ‖ entries, padded with 16 - len % 16 zero bytes', () => {
    const data = Buffer.from('0123456789abcdef0123456789ab'); // 28 bytes: table length 20 + 20 + 28 = 68
    const table = buildSecretTable([{ guid: LUKS, data }]);
    const expected = Buffer.concat([
      guidLe('1e74f542-71dd-4d66-963e-ef4287ff173b'),
      Buffer.from([68, 0, 0, 0]),
      guidLe(LUKS),
      Buffer.from([48, 0, 0, 0]),
      data,
      Buffer.alloc(12),
    ]);
    expect(table.equals(expected)).toBe(true);
    // Already aligned (20 + 20 + 24 = 64): libvirt adds a whole block.
    expect(buildSecretTable([{ guid: LUKS, data: Buffer.alloc(24) }]).length).toBe(80);
  });

  it('refuses no secrets, duplicate or malformed GUIDs', () => {
    expect(
      hasCode(
        errorOf(() => buildSecretTable([])),
        'SUP_ERR_USAGE',
      ),
    ).toBe(true);
    expect(
      hasCode(
        errorOf(() =>
          buildSecretTable([
            { guid: LUKS, data: Buffer.alloc(1) },
            { guid: LUKS.toUpperCase(), data: Buffer.alloc(1) },
          ]),
        ),
        'SUP_ERR_USAGE',
      ),
    ).toBe(true);
    expect(
      hasCode(
        errorOf(() => buildSecretTable([{ guid: 'luks-key', data: Buffer.alloc(1) }])),
        'SUP_ERR_USAGE',
      ),
    ).toBe(true);
  });

  it('resolves aliases and GUIDs', () => {
    expect(SECRET_ALIASES['luks-key']).toBe(LUKS);
    expect(resolveSecretGuid('luks-key')).toBe(LUKS);
    expect(resolveSecretGuid(LUKS.toUpperCase())).toBe(LUKS);
    expect(resolveSecretGuid('toString')).toBeNull();
    expect(resolveSecretGuid('disk-key')).toBeNull();
  });

  it('parses tables and reports malformed ones', () => {
    const table = buildSecretTable([
      { guid: LUKS, data: Buffer.alloc(5) },
      { guid: '00000000-0000-0000-0000-000000000001', data: Buffer.alloc(0) },
    ]);
    expect(parseSecretTable(table)).toEqual([
      { guid: LUKS, length: 5 },
      { guid: '00000000-0000-0000-0000-000000000001', length: 0 },
    ]);
    const badLen = Buffer.from(table);
    badLen.writeUInt32LE(table.length + 1, 16);
    expect(parseSecretTable(badLen)).toMatch(/does not fit/);
    const badEntry = Buffer.from(table);
    badEntry.writeUInt32LE(3, 20 + 16);
    expect(parseSecretTable(badEntry)).toMatch(/invalid length 3/);
    expect(parseSecretTable(Buffer.alloc(80))).toMatch(/header GUID/);
    expect(parseSecretTable(Buffer.alloc(10))).toMatch(/shorter/);
  });
});

describe('launch secret packet', () => {
  it("matches a packet built by libvirt's validator code with a fixed IV", () => {
    const packet = buildLaunchSecret({
      tik: range(0, 16),
      tek: range(16, 16),
      measurementMac: Buffer.from('62b1a260ee43650e59948cd5907e4bfc26b8bc4a56c50c08a26dc746c262c0ff', 'hex'),
      secrets: [{ guid: LUKS, data: Buffer.from('correct horse battery staple') }],
      iv: range(200, 16),
    });
    expect(packet.header.toString('hex')).toBe(
      '00000000c8c9cacbcccdcecfd0d1d2d3d4d5d6d7b503167bc33fb897dd88e1a3d3cdd4b703a2397ed380396ef4398eb537c6b1c2',
    );
    expect(packet.payload.toString('hex')).toBe(
      '6bf687fb8be30f37ad2e54ec2d4d1dfad211dfcaece0fb3b5af31d53f1a34d6c7701ec9762b5626a51bc0c5333fc0a6dab462efcbf118f7cff5f6146348ffe770e2b9f6df54eda330016f2ffee16759a',
    );
  });

  it('encrypts the table with AES-128-CTR under the TEK with the header IV', () => {
    const k = keys();
    const secrets = [{ guid: LUKS, data: Buffer.from('pw') }];
    const { header, payload } = buildLaunchSecret({ ...k, secrets });
    const d = createDecipheriv('aes-128-ctr', k.tek, header.subarray(4, 20));
    expect(Buffer.concat([d.update(payload), d.final()]).equals(buildSecretTable(secrets))).toBe(true);
    expect(header.length).toBe(52);
    expect(header.readUInt32LE(0)).toBe(0);
  });

  it('verifies its own packets and lists the secrets with the TEK', () => {
    const k = keys();
    const packet = buildLaunchSecret({ ...k, secrets: [{ guid: LUKS, data: Buffer.from('secret') }] });
    expect(verifyLaunchSecret({ tik: k.tik, measurementMac: k.measurementMac, ...packet })).toEqual({ ok: true });
    expect(verifyLaunchSecret({ ...k, ...packet })).toEqual({ ok: true, secrets: [{ guid: LUKS, length: 6 }] });
  });

  it('refuses a wrong TIK, another measurement and any flipped bit', () => {
    const k = keys();
    const packet = buildLaunchSecret({ ...k, secrets: [{ guid: LUKS, data: Buffer.from('secret') }] });
    const refused = (o: Partial<Parameters<typeof verifyLaunchSecret>[0]>): boolean => !verifyLaunchSecret({ ...k, ...packet, ...o }).ok;
    expect(refused({ tik: randomBytes(16) })).toBe(true);
    expect(refused({ measurementMac: randomBytes(32) })).toBe(true);
    for (const part of ['header', 'payload'] as const) {
      for (let bit = 0; bit < packet[part].length * 8; bit += 7) {
        const flipped = Buffer.from(packet[part]);
        flipped[bit >> 3] = (flipped[bit >> 3] ?? 0) ^ (1 << (bit & 7));
        expect(refused({ [part]: flipped }), `${part} bit ${bit}`).toBe(true);
      }
    }
    expect(verifyLaunchSecret({ ...k, ...packet, header: packet.header.subarray(0, 51) })).toMatchObject({ ok: false, reason: /52 bytes/ });
    expect(verifyLaunchSecret({ ...k, ...packet, payload: Buffer.alloc(0) })).toMatchObject({ ok: false, reason: /empty/ });
  });

  it('passes the MAC but refuses the table with a wrong TEK', () => {
    const k = keys();
    const packet = buildLaunchSecret({ ...k, secrets: [{ guid: LUKS, data: Buffer.from('secret') }] });
    const result = verifyLaunchSecret({ ...k, tek: randomBytes(16), ...packet });
    expect(result).toMatchObject({ ok: false, reason: /header GUID/ });
  });

  it('never puts key or secret bytes in refusal reasons', () => {
    const k = keys();
    const packet = buildLaunchSecret({ ...k, secrets: [{ guid: LUKS, data: Buffer.from('hunter2') }] });
    const result = verifyLaunchSecret({ ...k, tik: randomBytes(16), ...packet });
    const text = JSON.stringify(result);
    for (const secret of [k.tik, k.tek, Buffer.from('hunter2')]) {
      expect(text).not.toContain(secret.toString('hex'));
      expect(text).not.toContain(secret.toString('base64'));
    }
    expect(text).not.toContain('hunter2');
  });

  it('refuses wrong key sizes as caller errors', () => {
    const k = keys();
    const secrets = [{ guid: LUKS, data: Buffer.from('x') }];
    expect(
      hasCode(
        errorOf(() => buildLaunchSecret({ ...k, tek: Buffer.alloc(32), secrets })),
        'SUP_ERR_VERIFY_UNSUPPORTED',
      ),
    ).toBe(true);
    expect(
      hasCode(
        errorOf(() => buildLaunchSecret({ ...k, iv: Buffer.alloc(12), secrets })),
        'SUP_ERR_VERIFY_UNSUPPORTED',
      ),
    ).toBe(true);
    expect(
      hasCode(
        errorOf(() => verifyLaunchSecret({ ...k, measurementMac: Buffer.alloc(48), header: Buffer.alloc(52), payload: Buffer.alloc(16) })),
        'SUP_ERR_VERIFY_UNSUPPORTED',
      ),
    ).toBe(true);
  });
});
