// The SNP launch record: built from what a launch gathered (policy decoded, host data, the ID
// block's pinned digest and key digests read back from the bytes QEMU was given), its reference
// values identical to `measure --mode snp --reference-values`'s builder, and narrowed when read back
// (every malformed field refused; the SEV record's parser and this one never take each other's).
import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { snpLaunchReferenceValues, type SnpMeasuredInputs } from '../../../src/attestation/snp-reference-values.js';
import { buildIdAuth, buildIdBlock, idAuthKeyDigests, parseIdBlock, snpKeyDigest } from '../../../src/sev/snp-id-block.js';
import { parseLaunchRecord, parseRecord } from '../../../src/vm/record.js';
import { buildSnpRecord, parseSnpRecord, type SnpLaunchRecord, type SnpRecordInputs } from '../../../src/vm/snp-record.js';
import { snpMeasured } from '../../support/snp-measured.js';

const DIGEST = Buffer.alloc(48, 0x11);
const MEASURED: SnpMeasuredInputs = snpMeasured(DIGEST, { vcpus: 4 });

function inputs(over: Partial<SnpRecordInputs> = {}): SnpRecordInputs {
  return {
    vm: 'g1',
    capturedAt: new Date('2026-12-02T04:00:00.000Z'),
    platform: 'simulated',
    reported: { snpPolicy: 0x30000n, apiMajor: 1, apiMinor: 55, buildId: 21, state: 'launch-update' },
    measured: MEASURED,
    kernel: { path: '/k', sha256: 'cd'.repeat(32) },
    initrd: null,
    cmdline: 'console=ttyS0',
    kernelHashes: false,
    cpuModel: 'EPYC-Milan',
    qemuVersion: '10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)',
    hostData: null,
    idBlock: null,
    ...over,
  };
}

describe('buildSnpRecord', () => {
  it('holds the digest, the policy hex and decoded, the launch inputs, and the reference values of the one builder', () => {
    const r = buildSnpRecord(inputs());
    expect(r).toMatchObject({
      schema: 'sevsup.snp-launch/v1',
      vm: 'g1',
      capturedAt: '2026-12-02T04:00:00.000Z',
      platform: 'simulated',
      sevType: 'sev-snp',
      policy: {
        value: '0x30000',
        abiMajor: 0,
        abiMinor: 0,
        flags: ['SMT'],
        description: '0x30000 (SNP, ABI >= 0.0, SMT allowed, no debugging)',
      },
      state: 'launch-update',
      expectedLaunchDigest: DIGEST.toString('hex'),
      firmwareDigest: '22'.repeat(48),
      hostData: null,
      idBlock: null,
      launch: { vcpus: 4, vcpuSignature: '0xa00f11', guestFeatures: '0x1', vmmType: 'QEMU', kernelHashes: false, idBlock: null },
    });
    expect(r.referenceValues).toEqual(snpLaunchReferenceValues(MEASURED, { policy: 0x30000n }));
    expect(r.referenceValues.inputs).toMatchObject({ firmwareSha256: 'ab'.repeat(32), vcpus: 4, vcpuSignature: '0xa00f11' });
  });

  it('reads the ID block and ID auth QEMU was given: the pinned digest, whether it matches, the key digests', () => {
    const idKey = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    const authorKey = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    const block = buildIdBlock({
      launchDigest: DIGEST,
      familyId: Buffer.alloc(16, 1),
      imageId: Buffer.alloc(16, 2),
      guestSvn: 7,
      policy: 0x30000n,
    });
    const auth = buildIdAuth(block, idKey, authorKey);
    const hostData = Buffer.alloc(32, 0x5a);
    const r = buildSnpRecord(
      inputs({
        hostData: { base64: hostData.toString('base64'), path: '/vm/hd.bin' },
        idBlock: { block: block.toString('base64'), auth: auth.idAuth.toString('base64'), blockPath: '/vm/ib', authPath: '/vm/ia' },
      }),
    );
    expect(r.hostData).toBe(hostData.toString('hex'));
    expect(r.idBlock).toEqual({
      launchDigest: DIGEST.toString('hex'),
      matchesExpected: true,
      policy: '0x30000',
      familyId: '01'.repeat(16),
      imageId: '02'.repeat(16),
      guestSvn: 7,
      idKeyDigest: snpKeyDigest(idKey).toString('hex'),
      authorKeyDigest: snpKeyDigest(authorKey).toString('hex'),
    });
    expect(r.launch.idBlock).toEqual({ path: '/vm/ib', sha256: createHash('sha256').update(block).digest('hex') });
    expect(r.launch.hostDataFile).toEqual({ path: '/vm/hd.bin', sha256: createHash('sha256').update(hostData).digest('hex') });
    expect(r.referenceValues).toMatchObject({
      hostData: hostData.toString('hex'),
      idKeyDigest: snpKeyDigest(idKey).toString('hex'),
      authorKeyDigest: snpKeyDigest(authorKey).toString('hex'),
    });
  });

  it('says when the ID block pins another digest or policy (the platform will refuse the launch)', () => {
    const idKey = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    for (const [launchDigest, policy] of [
      [Buffer.alloc(48, 0x12), 0x30000n],
      [DIGEST, 0xb0000n],
    ] as const) {
      const block = buildIdBlock({ launchDigest, familyId: Buffer.alloc(16), imageId: Buffer.alloc(16), guestSvn: 0, policy });
      const auth = buildIdAuth(block, idKey).idAuth.toString('base64');
      const r = buildSnpRecord(inputs({ idBlock: { block: block.toString('base64'), auth, blockPath: '/b', authPath: '/a' } }));
      expect(r.idBlock?.matchesExpected).toBe(false);
    }
  });
});

describe('ID block and ID auth read back', () => {
  it('parseIdBlock inverts buildIdBlock; idAuthKeyDigests agrees with buildIdAuth, also for a short ID auth', () => {
    const fields = { launchDigest: DIGEST, familyId: Buffer.alloc(16, 3), imageId: Buffer.alloc(16, 4), guestSvn: 9, policy: 0xb0000n };
    const block = buildIdBlock(fields);
    expect(parseIdBlock(block)).toEqual({ ...fields, version: 1 });
    const idKey = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    const auth = buildIdAuth(block, idKey);
    expect(idAuthKeyDigests(auth.idAuth)).toEqual({ idKeyDigest: auth.idKeyDigest, authorKeyDigest: null });
    // QEMU zero-fills an ID auth shorter than 4096 bytes: the same digests.
    expect(idAuthKeyDigests(auth.idAuth.subarray(0, 0x680))).toEqual({ idKeyDigest: auth.idKeyDigest, authorKeyDigest: null });
    expect(() => parseIdBlock(block.subarray(1))).toThrow('the ID block is 96 bytes, got 95');
    expect(() => idAuthKeyDigests(Buffer.alloc(4097))).toThrow('the ID auth is at most 4096 bytes, got 4097');
  });
});

describe('parseSnpRecord', () => {
  const good = (): Record<string, unknown> => JSON.parse(JSON.stringify(buildSnpRecord(inputs()))) as Record<string, unknown>;

  it('round-trips through JSON, and parseLaunchRecord tells the two kinds apart', () => {
    const record: SnpLaunchRecord = buildSnpRecord(inputs());
    expect(parseSnpRecord(good())).toEqual(record);
    expect(parseLaunchRecord(good())).toEqual(record);
    expect(parseRecord(good())).toBeNull();
  });

  it.each([
    ['another schema', (r: Record<string, unknown>) => ({ ...r, schema: 'sevsup.snp-launch/v2' })],
    ['a measurement-record schema', (r: Record<string, unknown>) => ({ ...r, schema: 'sevsup.measurement/v1' })],
    ['an unknown platform', (r: Record<string, unknown>) => ({ ...r, platform: 'cloud' })],
    ['a short digest', (r: Record<string, unknown>) => ({ ...r, expectedLaunchDigest: 'ab'.repeat(32) })],
    ['an upper-case digest', (r: Record<string, unknown>) => ({ ...r, expectedLaunchDigest: 'AB'.repeat(48) })],
    ['a policy without its value', (r: Record<string, unknown>) => ({ ...r, policy: { ...(r['policy'] as object), value: 196608 } })],
    ['host data of 31 bytes', (r: Record<string, unknown>) => ({ ...r, hostData: 'ab'.repeat(31) })],
    ['a launch without vCPUs', (r: Record<string, unknown>) => ({ ...r, launch: { ...(r['launch'] as object), vcpus: '4' } })],
    ['another VMM type', (r: Record<string, unknown>) => ({ ...r, launch: { ...(r['launch'] as object), vmmType: 'ec2' } })],
    [
      'a firmware digest that is not sha256',
      (r: Record<string, unknown>) => ({ ...r, launch: { ...(r['launch'] as object), firmware: { path: '/fw', sha256: 'x' } } }),
    ],
    ['an ID block that is not an object', (r: Record<string, unknown>) => ({ ...r, idBlock: 'yes' })],
    ['no reference values', (r: Record<string, unknown>) => ({ ...r, referenceValues: null })],
    ['a non-integer API version', (r: Record<string, unknown>) => ({ ...r, apiMinor: 1.5 })],
  ])('refuses %s', (_name, change) => {
    expect(parseSnpRecord(change(good()))).toBeNull();
    expect(parseLaunchRecord(change(good()))).toBeNull();
  });
});
