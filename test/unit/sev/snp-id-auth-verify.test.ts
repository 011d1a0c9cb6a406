import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildIdAuth, buildIdBlock, ID_AUTH_OFFSETS, parseIdBlock, snpKeyDigest, verifyIdAuth } from '../../../src/sev/snp-id-block.js';

const p384 = () => generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
const block = buildIdBlock({
  launchDigest: Buffer.alloc(48, 3),
  familyId: Buffer.alloc(16, 1),
  imageId: Buffer.alloc(16, 2),
  guestSvn: 9,
  policy: 0x30000n,
});

describe('verifyIdAuth (the firmware side of sevsup id-block)', () => {
  it('accepts what buildIdAuth makes and gives the key digests reports carry', () => {
    const idKey = p384();
    const authorKey = p384();
    const auth = buildIdAuth(block, idKey, authorKey);
    expect(verifyIdAuth(block, auth.idAuth, true)).toEqual({
      ok: true,
      idKeyDigest: snpKeyDigest(idKey),
      authorKeyDigest: snpKeyDigest(authorKey),
    });
    expect(verifyIdAuth(block, auth.idAuth, false)).toEqual({ ok: true, idKeyDigest: snpKeyDigest(idKey), authorKeyDigest: null });
    expect(parseIdBlock(block)).toMatchObject({ version: 1, guestSvn: 9, policy: 0x30000n });
  });

  it('refuses another block, a flipped signature byte, and author-key-enabled without an author signature', () => {
    const auth = buildIdAuth(block, p384()).idAuth;
    const other = Buffer.from(block);
    other[84] = 10; // guest SVN
    expect(verifyIdAuth(other, auth, false)).toMatchObject({
      ok: false,
      reason: "the ID block's signature does not verify with the ID key",
    });
    const flipped = Buffer.from(auth);
    flipped[ID_AUTH_OFFSETS.idBlockSig + 5] = (flipped[ID_AUTH_OFFSETS.idBlockSig + 5] as number) ^ 0x80;
    expect(verifyIdAuth(block, flipped, false).ok).toBe(false);
    expect(verifyIdAuth(block, auth, true)).toMatchObject({ ok: false, reason: 'the author key algorithm is not ECDSA P-384' });
    const forged = Buffer.from(buildIdAuth(block, p384(), p384()).idAuth);
    buildIdAuth(block, p384(), p384()).idAuth.copy(forged, ID_AUTH_OFFSETS.authorKey, ID_AUTH_OFFSETS.authorKey);
    expect(verifyIdAuth(block, forged, true)).toMatchObject({
      ok: false,
      reason: "the ID key's signature does not verify with the author key",
    });
  });
});
