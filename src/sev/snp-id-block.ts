// SEV-SNP ID block (96 bytes) and ID authentication structure (4096 bytes), as QEMU's
// sev-snp-guest `id-block` / `id-auth` take them (base64) and sev-snp-measure's id_block.py builds
// them; with them, SNP_LAUNCH_FINISH fails unless the launch digest equals the block's (snp-facts §2.5).
// Owns: both layouts, AMD's ECDSA P-384 public-key (1028 bytes) and signature (512 bytes, R and S
// little-endian in 72 bytes each) encodings, and the key digests reports carry. Pure (node:crypto
// signing on KeyObjects); must not read key files (the CLI does) or put key bytes in messages.
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { SupervisorError } from '../errors.js';
import { SNP_LAUNCH_DIGEST_BYTES } from './snp-launch-digest.js';

export const ID_BLOCK_BYTES = 96;
export const ID_AUTH_BYTES = 4096;
export const SNP_KEY_BYTES = 1028;
export const SNP_SIGNATURE_BYTES = 512;
/** ID_BLOCK VERSION: the only one the firmware defines. */
const ID_BLOCK_VERSION = 1;
/** ID_KEY_ALGO / AUTH_KEY_ALGO: ECDSA P-384 with SHA-384. */
const ALGO_ECDSA_P384_SHA384 = 1;
/** The curve field of AMD's public-key structure: P-384. */
const CURVE_P384 = 2;
/** Coordinates and signature halves are 72-byte little-endian fields. */
const COMPONENT_BYTES = 72;
const P384_BYTES = 48;

const AUTH = { idKeyAlgo: 0x0, authorKeyAlgo: 0x4, idBlockSig: 0x40, idKey: 0x240, idKeySig: 0x680, authorKey: 0x880 } as const;

export interface IdBlockFields {
  /** The expected launch digest (48 bytes). */
  readonly launchDigest: Uint8Array;
  /** 16 bytes each; zeros by default (sev-snp-measure's defaults). */
  readonly familyId: Uint8Array;
  readonly imageId: Uint8Array;
  readonly guestSvn: number;
  /** Must equal the guest's SNP policy, or LAUNCH_FINISH fails. */
  readonly policy: bigint;
}

/**
 * LD[48] ‖ FAMILY_ID[16] ‖ IMAGE_ID[16] ‖ u32 VERSION (1) ‖ u32 GUEST_SVN ‖ u64 POLICY.
 * @throws SUP_ERR_USAGE for a field of the wrong size.
 */
export function buildIdBlock(f: IdBlockFields): Buffer {
  const bad = (what: string): never => {
    throw new SupervisorError('SUP_ERR_USAGE', `ID block: ${what}`);
  };
  if (f.launchDigest.length !== SNP_LAUNCH_DIGEST_BYTES)
    bad(`the launch digest is ${SNP_LAUNCH_DIGEST_BYTES} bytes, got ${f.launchDigest.length}`);
  if (f.familyId.length !== 16) bad(`the family ID is 16 bytes (32 hex digits), got ${f.familyId.length}`);
  if (f.imageId.length !== 16) bad(`the image ID is 16 bytes (32 hex digits), got ${f.imageId.length}`);
  if (!Number.isInteger(f.guestSvn) || f.guestSvn < 0 || f.guestSvn > 0xffffffff) bad(`the guest SVN is a u32, got ${f.guestSvn}`);
  if (f.policy < 0n || f.policy > 0xffffffffffffffffn) bad('the policy is a u64');
  const block = Buffer.alloc(ID_BLOCK_BYTES);
  block.set(f.launchDigest, 0);
  block.set(f.familyId, 48);
  block.set(f.imageId, 64);
  block.writeUInt32LE(ID_BLOCK_VERSION, 80);
  block.writeUInt32LE(f.guestSvn, 84);
  block.writeBigUInt64LE(f.policy, 88);
  return block;
}

/** A 48-byte big-endian value as AMD's 72-byte little-endian field. */
function toLe72(bigEndian: Buffer): Buffer {
  const out = Buffer.alloc(COMPONENT_BYTES);
  Buffer.from(bigEndian).reverse().copy(out, 0);
  return out;
}

/**
 * @throws SUP_ERR_USAGE unless `key` is an EC P-384 key (private or public, as `what` says).
 */
export function requireP384(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw new SupervisorError('SUP_ERR_USAGE', `${what} must be an ECDSA P-384 (secp384r1) key, as the SNP firmware requires`);
  }
}

/** AMD's public-key structure: u32 curve (2) ‖ Qx[72] LE ‖ Qy[72] LE ‖ zeros, 1028 bytes. */
export function snpPublicKey(key: KeyObject): Buffer {
  requireP384(key, 'the key');
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') throw new SupervisorError('SUP_ERR_USAGE', 'the key has no public point');
  const out = Buffer.alloc(SNP_KEY_BYTES);
  out.writeUInt32LE(CURVE_P384, 0);
  toLe72(Buffer.from(jwk.x, 'base64url')).copy(out, 4);
  toLe72(Buffer.from(jwk.y, 'base64url')).copy(out, 4 + COMPONENT_BYTES);
  return out;
}

/** SHA-384 of the 1028-byte key structure: ID_KEY_DIGEST / AUTHOR_KEY_DIGEST in reports. */
export function snpKeyDigest(key: KeyObject): Buffer {
  return createHash('sha384').update(snpPublicKey(key)).digest();
}

/** ECDSA P-384 / SHA-384 over `data`, in AMD's 512-byte signature layout (R, S little-endian). */
export function snpSign(privateKey: KeyObject, data: Uint8Array): Buffer {
  requireP384(privateKey, 'the signing key');
  if (privateKey.type !== 'private') throw new SupervisorError('SUP_ERR_USAGE', 'signing needs a private key');
  const rs = sign('sha384', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const out = Buffer.alloc(SNP_SIGNATURE_BYTES);
  toLe72(rs.subarray(0, P384_BYTES)).copy(out, 0);
  toLe72(rs.subarray(P384_BYTES)).copy(out, COMPONENT_BYTES);
  return out;
}

export interface IdAuthResult {
  readonly idAuth: Buffer;
  readonly idKeyDigest: Buffer;
  readonly authorKeyDigest: Buffer | null;
}

/**
 * The 4096-byte ID auth for `idBlock`: the ID key's signature over the block and its public key;
 * with an author key, the author's signature over the ID key structure and the author's public key.
 * @throws SUP_ERR_USAGE for keys that are not P-384 private keys or a block that is not 96 bytes.
 */
export function buildIdAuth(idBlock: Uint8Array, idKey: KeyObject, authorKey?: KeyObject): IdAuthResult {
  if (idBlock.length !== ID_BLOCK_BYTES)
    throw new SupervisorError('SUP_ERR_USAGE', `the ID block is ${ID_BLOCK_BYTES} bytes, got ${idBlock.length}`);
  const auth = Buffer.alloc(ID_AUTH_BYTES);
  const idPublic = snpPublicKey(idKey);
  auth.writeUInt32LE(ALGO_ECDSA_P384_SHA384, AUTH.idKeyAlgo);
  snpSign(idKey, idBlock).copy(auth, AUTH.idBlockSig);
  idPublic.copy(auth, AUTH.idKey);
  let authorKeyDigest: Buffer | null = null;
  if (authorKey !== undefined) {
    const authorPublic = snpPublicKey(authorKey);
    auth.writeUInt32LE(ALGO_ECDSA_P384_SHA384, AUTH.authorKeyAlgo);
    snpSign(authorKey, idPublic).copy(auth, AUTH.idKeySig);
    authorPublic.copy(auth, AUTH.authorKey);
    authorKeyDigest = createHash('sha384').update(authorPublic).digest();
  }
  return { idAuth: auth, idKeyDigest: createHash('sha384').update(idPublic).digest(), authorKeyDigest };
}

/** Where the parts of an ID auth are, for verifiers and tests. */
export const ID_AUTH_OFFSETS = AUTH;

// Section: reading them back (the SNP launch record, the simulated firmware's LAUNCH_FINISH, verifiers) ----

/** The fields of a 96-byte ID block, as LAUNCH_FINISH reads them. */
export interface ParsedIdBlock extends IdBlockFields {
  readonly version: number;
}

/** @throws SUP_ERR_USAGE when `block` is not 96 bytes. */
export function parseIdBlock(block: Uint8Array): ParsedIdBlock {
  if (block.length !== ID_BLOCK_BYTES)
    throw new SupervisorError('SUP_ERR_USAGE', `the ID block is ${ID_BLOCK_BYTES} bytes, got ${block.length}`);
  const b = Buffer.from(block);
  return {
    launchDigest: b.subarray(0, 48),
    familyId: b.subarray(48, 64),
    imageId: b.subarray(64, 80),
    version: b.readUInt32LE(80),
    guestSvn: b.readUInt32LE(84),
    policy: b.readBigUInt64LE(88),
  };
}

/**
 * The key digests a report will carry for this ID auth: SHA-384 of the ID key structure, and of the
 * author key structure when one is present (AUTHOR_KEY_ALGO set). QEMU takes an ID auth of up to
 * 4096 bytes and zero-fills the rest, so a shorter one is read the same way.
 * @throws SUP_ERR_USAGE for an ID auth longer than 4096 bytes.
 */
export function idAuthKeyDigests(idAuth: Uint8Array): { readonly idKeyDigest: Buffer; readonly authorKeyDigest: Buffer | null } {
  if (idAuth.length > ID_AUTH_BYTES)
    throw new SupervisorError('SUP_ERR_USAGE', `the ID auth is at most ${ID_AUTH_BYTES} bytes, got ${idAuth.length}`);
  const auth = Buffer.alloc(ID_AUTH_BYTES);
  auth.set(idAuth, 0);
  const digest = (at: number): Buffer =>
    createHash('sha384')
      .update(auth.subarray(at, at + SNP_KEY_BYTES))
      .digest();
  return {
    idKeyDigest: digest(AUTH.idKey),
    authorKeyDigest: auth.readUInt32LE(AUTH.authorKeyAlgo) === 0 ? null : digest(AUTH.authorKey),
  };
}

/** A 72-byte little-endian field as a 48-byte big-endian value; null when its high bytes are not zero. */
function fromLe72(le: Uint8Array): Buffer | null {
  if (le.subarray(P384_BYTES, COMPONENT_BYTES).some((x) => x !== 0)) return null;
  return Buffer.from(le.subarray(0, P384_BYTES)).reverse();
}

/** AMD's 1028-byte public-key structure as a P-384 KeyObject; null unless curve 2 with a point on the curve. */
export function snpPublicKeyFromBytes(raw: Uint8Array): KeyObject | null {
  if (raw.length < SNP_KEY_BYTES) return null;
  const b = Buffer.from(raw.subarray(0, SNP_KEY_BYTES));
  if (b.readUInt32LE(0) !== CURVE_P384) return null;
  const x = fromLe72(b.subarray(4, 4 + COMPONENT_BYTES));
  const y = fromLe72(b.subarray(4 + COMPONENT_BYTES, 4 + 2 * COMPONENT_BYTES));
  if (x === null || y === null) return null;
  try {
    return createPublicKey({ key: { kty: 'EC', crv: 'P-384', x: x.toString('base64url'), y: y.toString('base64url') }, format: 'jwk' });
  } catch {
    return null; // not a point on P-384
  }
}

/** Whether `signature` (AMD's 512-byte layout, R and S little-endian) is `key`'s ECDSA P-384/SHA-384 over `data`. */
export function snpVerify(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length < 2 * COMPONENT_BYTES) return false;
  const r = fromLe72(signature.subarray(0, COMPONENT_BYTES));
  const s = fromLe72(signature.subarray(COMPONENT_BYTES, 2 * COMPONENT_BYTES));
  if (r === null || s === null) return false;
  try {
    return verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
  } catch {
    return false;
  }
}

/** Why an ID auth does not authenticate `idBlock` (the firmware answers BAD_SIGNATURE), or null. */
export type IdAuthVerdict =
  | { readonly ok: true; readonly idKeyDigest: Buffer; readonly authorKeyDigest: Buffer | null }
  | { readonly ok: false; readonly reason: string };

/**
 * The firmware's LAUNCH_FINISH check of an ID auth (zero-padded to 4096 bytes): the ID key's
 * algorithm and signature over the block, and with `authorKeyEnabled` the author key's over the ID key.
 */
export function verifyIdAuth(idBlock: Uint8Array, idAuth: Uint8Array, authorKeyEnabled: boolean): IdAuthVerdict {
  const auth = Buffer.alloc(ID_AUTH_BYTES);
  Buffer.from(idAuth).copy(auth, 0, 0, Math.min(idAuth.length, ID_AUTH_BYTES));
  const idPublic = auth.subarray(AUTH.idKey, AUTH.idKey + SNP_KEY_BYTES);
  if (auth.readUInt32LE(AUTH.idKeyAlgo) !== ALGO_ECDSA_P384_SHA384) return { ok: false, reason: 'the ID key algorithm is not ECDSA P-384' };
  const idKey = snpPublicKeyFromBytes(idPublic);
  if (idKey === null) return { ok: false, reason: 'the ID key is not a P-384 point' };
  if (!snpVerify(idKey, idBlock, auth.subarray(AUTH.idBlockSig, AUTH.idBlockSig + SNP_SIGNATURE_BYTES))) {
    return { ok: false, reason: "the ID block's signature does not verify with the ID key" };
  }
  let authorKeyDigest: Buffer | null = null;
  if (authorKeyEnabled) {
    const authorPublic = auth.subarray(AUTH.authorKey, AUTH.authorKey + SNP_KEY_BYTES);
    if (auth.readUInt32LE(AUTH.authorKeyAlgo) !== ALGO_ECDSA_P384_SHA384)
      return { ok: false, reason: 'the author key algorithm is not ECDSA P-384' };
    const authorKey = snpPublicKeyFromBytes(authorPublic);
    if (authorKey === null) return { ok: false, reason: 'the author key is not a P-384 point' };
    if (!snpVerify(authorKey, idPublic, auth.subarray(AUTH.idKeySig, AUTH.idKeySig + SNP_SIGNATURE_BYTES))) {
      return { ok: false, reason: "the ID key's signature does not verify with the author key" };
    }
    authorKeyDigest = createHash('sha384').update(authorPublic).digest();
  }
  return { ok: true, idKeyDigest: createHash('sha384').update(idPublic).digest(), authorKeyDigest };
}
