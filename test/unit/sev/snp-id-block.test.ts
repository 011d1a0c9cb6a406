// SEV-SNP ID block and ID auth: sev-snp-measure's published known answers (its test keys), and
// every signature checked by OpenSSL (`openssl dgst -sha384 -verify`), an independent ECDSA, with
// the public key taken back out of the ID auth and the signature converted to DER.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { buildIdAuth, buildIdBlock, ID_AUTH_OFFSETS, snpKeyDigest } from '../../../src/sev/snp-id-block.js';
import { runCliCaptured } from '../../support/run-cli.js';
import { buildSnpImage } from '../../support/ovmf-images.js';

const KEYS = new URL('../../fixtures/snp-keys/', import.meta.url).pathname;
const idKeyPem = path.join(KEYS, 'id_key_test.pem');
const authorKeyPem = path.join(KEYS, 'author_key_test.pem');
const key = (file: string) => createPrivateKey(readFileSync(file));
const LD_B64 = 'B28FLQi9p6cAqipgjFyqawDrrSl7bWioWkWx5mmlWLZ+G5HShKMB/mPE+gdQRn7t';
const dir = mkdtempSync(path.join(tmpdir(), 'snp-idblock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Reverse a little-endian field (72 bytes) into a 48-byte big-endian integer. */
const be48 = (le72: Buffer): Buffer => {
  expect(le72.subarray(48).equals(Buffer.alloc(24))).toBe(true);
  return Buffer.from(le72.subarray(0, 48)).reverse();
};
/** DER INTEGER of an unsigned big-endian value. */
const derInt = (v: Buffer): Buffer => {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  let b = v.subarray(i);
  if ((b[0] ?? 0) & 0x80) b = Buffer.concat([Buffer.of(0), b]);
  return Buffer.concat([Buffer.of(0x02, b.length), b]);
};
/** AMD's 1028-byte key structure → a PEM SubjectPublicKeyInfo for OpenSSL. */
function pemOfSnpKey(k: Buffer): string {
  expect(k.readUInt32LE(0)).toBe(2);
  const point = Buffer.concat([Buffer.of(4), be48(k.subarray(4, 76)), be48(k.subarray(76, 148))]);
  const spki = Buffer.concat([Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex'), point]);
  return `-----BEGIN PUBLIC KEY-----\n${spki
    .toString('base64')
    .match(/.{1,64}/g)
    ?.join('\n')}\n-----END PUBLIC KEY-----\n`;
}
/** OpenSSL's verdict on an AMD-format signature over `data` by the AMD-format key. */
function opensslVerifies(snpKey: Buffer, signature: Buffer, data: Buffer, name: string): boolean {
  const r = be48(signature.subarray(0, 72));
  const s = be48(signature.subarray(72, 144));
  expect(signature.subarray(144).equals(Buffer.alloc(512 - 144))).toBe(true);
  const seq = Buffer.concat([derInt(r), derInt(s)]);
  const der = Buffer.concat([Buffer.of(0x30, seq.length), seq]);
  const files = { pub: path.join(dir, `${name}.pub.pem`), sig: path.join(dir, `${name}.sig`), data: path.join(dir, `${name}.bin`) };
  writeFileSync(files.pub, pemOfSnpKey(snpKey));
  writeFileSync(files.sig, der);
  writeFileSync(files.data, data);
  try {
    return execFileSync('openssl', ['dgst', '-sha384', '-verify', files.pub, '-signature', files.sig, files.data], {
      encoding: 'utf8',
    }).includes('Verified OK');
  } catch {
    return false;
  }
}

describe("sev-snp-measure's known answers (tests/test_id_block.py)", () => {
  it('gives its ID block, ID key hash and author key hash for its LD and keys', () => {
    const block = buildIdBlock({
      launchDigest: Buffer.from(LD_B64, 'base64'),
      familyId: Buffer.alloc(16),
      imageId: Buffer.alloc(16),
      guestSvn: 0,
      policy: 0x30000n,
    });
    expect(block.toString('base64')).toBe(
      'B28FLQi9p6cAqipgjFyqawDrrSl7bWioWkWx5mmlWLZ+G5HShKMB/mPE+gdQRn7tAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAwAAAAAA',
    );
    const auth = buildIdAuth(block, key(idKeyPem), key(authorKeyPem));
    expect(auth.idKeyDigest.toString('base64')).toBe('hwt+NcU/inLQ0yL3WrKvgmJ5Kq9leWIs5BMcPyHyied8sFYKXjuQs5MuZ07HCcsU');
    expect(auth.authorKeyDigest?.toString('base64')).toBe('YxEcNLv8Ckk4+aAJvQdJgNgXIyPmFZnJ/TNtqGcySOHcqY0L6PdjdqEGuK/UwKBX');
  });
});

describe('ID auth signatures, verified by OpenSSL', () => {
  it.each([
    ['with an author key', true],
    ['without an author key', false],
  ])('%s', (_name, withAuthor) => {
    const idKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const authorKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const block = buildIdBlock({
      launchDigest: Buffer.alloc(48, 0x5a),
      familyId: Buffer.alloc(16, 1),
      imageId: Buffer.alloc(16, 2),
      guestSvn: 7,
      policy: 0x30000n,
    });
    const { idAuth, idKeyDigest, authorKeyDigest } = buildIdAuth(block, idKey, withAuthor ? authorKey : undefined);
    expect(idAuth.length).toBe(4096);
    const o = ID_AUTH_OFFSETS;
    expect(idAuth.readUInt32LE(o.idKeyAlgo)).toBe(1);
    expect(idAuth.readUInt32LE(o.authorKeyAlgo)).toBe(withAuthor ? 1 : 0);
    const idPublic = idAuth.subarray(o.idKey, o.idKey + 1028);
    expect(opensslVerifies(idPublic, idAuth.subarray(o.idBlockSig, o.idBlockSig + 512), block, 'block')).toBe(true);
    // A changed block fails: the check is real.
    const other = Buffer.from(block);
    other[0] = (other[0] ?? 0) ^ 1;
    expect(opensslVerifies(idPublic, idAuth.subarray(o.idBlockSig, o.idBlockSig + 512), other, 'other')).toBe(false);
    expect(idKeyDigest.equals(snpKeyDigest(idKey))).toBe(true);
    if (withAuthor) {
      const authorPublic = idAuth.subarray(o.authorKey, o.authorKey + 1028);
      expect(opensslVerifies(authorPublic, idAuth.subarray(o.idKeySig, o.idKeySig + 512), Buffer.from(idPublic), 'idkey')).toBe(true);
      expect(authorKeyDigest?.equals(snpKeyDigest(authorKey))).toBe(true);
    } else {
      expect(idAuth.subarray(o.idKeySig).equals(Buffer.alloc(4096 - o.idKeySig))).toBe(true);
      expect(authorKeyDigest).toBeNull();
    }
  });

  it('refuses keys that are not P-384', () => {
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const block = Buffer.alloc(96);
    let caught: unknown;
    try {
      buildIdAuth(block, p256);
    } catch (error) {
      caught = error;
    }
    expect(hasCode(caught, 'SUP_ERR_USAGE')).toBe(true);
  });
});

describe('sevsup id-block', () => {
  it("prints snp-create-id-block's format with its option names", async () => {
    const r = await runCliCaptured('id-block', '--measurement', LD_B64, '--idkey', idKeyPem, '--authorkey', authorKeyPem);
    expect(r.code).toBe(0);
    const [first, second, third] = r.out.trimEnd().split('\n');
    expect(first).toMatch(
      /^id-block=B28FLQi9p6cAqipgjFyqawDrrSl7bWioWkWx5mmlWLZ\+G5HShKMB\/mPE\+gdQRn7tAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAwAAAAAA,id-auth=[A-Za-z0-9+/]{5462}==$/,
    );
    expect(second).toBe('id_key_hash: hwt+NcU/inLQ0yL3WrKvgmJ5Kq9leWIs5BMcPyHyied8sFYKXjuQs5MuZ07HCcsU');
    expect(third).toBe('author_key: YxEcNLv8Ckk4+aAJvQdJgNgXIyPmFZnJ/TNtqGcySOHcqY0L6PdjdqEGuK/UwKBX');
  });

  it('--summary: what was signed and with which keys, not the 4 KiB ID auth', async () => {
    const r = await runCliCaptured('id-block', '--summary', '--measurement', LD_B64, '--idkey', idKeyPem, '--authorkey', authorKeyPem);
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toBe(`signed an SEV-SNP ID block (96 bytes) and ID auth (4096 bytes) with the ID key ${idKeyPem}`);
    expect(lines).toContain(`launch digest:     ${Buffer.from(LD_B64, 'base64').toString('hex')}`);
    expect(lines).toContain('policy:            0x30000');
    const idKeyHash = Buffer.from('hwt+NcU/inLQ0yL3WrKvgmJ5Kq9leWIs5BMcPyHyied8sFYKXjuQs5MuZ07HCcsU', 'base64');
    expect(lines).toContain(
      `ID key digest:     ${idKeyHash.toString('hex')} (ID_KEY_DIGEST in every report; base64 ${idKeyHash.toString('base64')})`,
    );
    const authorKey = Buffer.from('YxEcNLv8Ckk4+aAJvQdJgNgXIyPmFZnJ/TNtqGcySOHcqY0L6PdjdqEGuK/UwKBX', 'base64').toString('hex');
    expect(lines).toContain(`author key digest: ${authorKey} (AUTHOR_KEY_DIGEST; ${authorKeyPem})`);
    expect(lines).toContain('ID auth file:      not written (--id-auth-file FILE writes it; --json prints it)');
    // No base64 blob: the longest line is the ID key digest's.
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(300);
    expect(r.out).not.toMatch(/id-auth=[A-Za-z0-9+/]{100}/);
  });

  it('--summary names the files it wrote', async () => {
    const files = { block: path.join(dir, 's.idblock'), auth: path.join(dir, 's.idauth') };
    const r = await runCliCaptured(
      'id-block',
      '--summary',
      '--measurement',
      LD_B64,
      '--id-key',
      idKeyPem,
      '--id-block-file',
      files.block,
      '--id-auth-file',
      files.auth,
    );
    expect(r.code).toBe(0);
    expect(r.out).toContain(`ID block file:     ${files.block} (base64, as the config's id-block= takes it)\n`);
    expect(r.out).toContain(`ID auth file:      ${files.auth} (base64, as the config's id-auth= takes it)\n`);
    expect(r.out).toContain('author key:        none\n');
    expect(Buffer.from(readFileSync(files.auth, 'utf8').trim(), 'base64')).toHaveLength(4096);
  });

  it('--json, the policy and IDs, and the files the config takes', async () => {
    const files = { block: path.join(dir, 'g.idblock'), auth: path.join(dir, 'g.idauth') };
    const ld = 'ab'.repeat(48);
    const r = await runCliCaptured(
      'id-block',
      '--launch-digest',
      ld,
      '--id-key',
      idKeyPem,
      '--policy',
      '0x30000',
      '--svn',
      '3',
      '--family-id',
      '11'.repeat(16),
      '--image-id',
      '22'.repeat(16),
      '--id-block-file',
      files.block,
      '--id-auth-file',
      files.auth,
      '--json',
    );
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as Record<string, string | null>;
    const block = Buffer.from(j['idBlock'] ?? '', 'base64');
    expect(block.toString('hex')).toBe(`${ld}${'11'.repeat(16)}${'22'.repeat(16)}01000000030000000000030000000000`);
    expect(j).toMatchObject({
      idKeyDigest: Buffer.from('hwt+NcU/inLQ0yL3WrKvgmJ5Kq9leWIs5BMcPyHyied8sFYKXjuQs5MuZ07HCcsU', 'base64').toString('hex'),
      authorKeyDigest: null,
    });
    expect(readFileSync(files.block, 'utf8')).toBe(`${j['idBlock']}\n`);
    expect(readFileSync(files.auth, 'utf8')).toBe(`${j['idAuth']}\n`);
  });

  it('computes the digest from the inputs as measure --mode snp does', async () => {
    const fw = path.join(dir, 'fw.fd');
    writeFileSync(
      fw,
      buildSnpImage({
        sections: [
          [0x800000, 0x1000, 1],
          [0x801000, 0x1000, 2],
          [0x802000, 0x1000, 3],
        ],
      }),
    );
    const inputs = ['--ovmf', fw, '--vcpus', '2', '--vcpu-type', 'EPYC-Genoa'];
    const measured = (await runCliCaptured('measure', '--mode', 'snp', ...inputs)).out.trim();
    const fromInputs = JSON.parse((await runCliCaptured('id-block', ...inputs, '--idkey', idKeyPem, '--json')).out) as Record<
      string,
      string
    >;
    expect(fromInputs['launchDigest']).toBe(measured);
    expect(
      Buffer.from(fromInputs['idBlock'] ?? '', 'base64')
        .subarray(0, 48)
        .toString('hex'),
    ).toBe(measured);
    const both = await runCliCaptured('id-block', ...inputs, '--launch-digest', measured, '--idkey', idKeyPem);
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/not both/);
  });

  it.each([
    [['--measurement', LD_B64, '--idkey', idKeyPem, '--policy', '0x70000'], /bit 18 \(MIGRATE_MA\)/],
    [['--measurement', LD_B64, '--idkey', idKeyPem, '--policy', '0x10000'], /bit 17 \(reserved, must be one\) is clear/],
    [['--measurement', 'AAAA', '--idkey', idKeyPem], /--measurement takes 48 bytes in base64/],
    [['--measurement', LD_B64], /--id-key PEM \(alias --idkey\) is required/],
    [
      ['--measurement', LD_B64, '--idkey', authorKeyPem, '--id-key', idKeyPem],
      /--id-key and its alias --idkey were given different values/,
    ],
  ])('refuses %j', async (args, message) => {
    const r = await runCliCaptured('id-block', ...args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });
});
