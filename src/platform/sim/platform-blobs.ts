// The simulated secure processor's public blobs: the PDH certificate, its chain (PEK, OCA, CEK),
// the chip id (GET_ID) and SEV attestation reports, laid out as the SEV API spec defines them.
// Owns: those layouts. Pure: no I/O; key material is derived from a fixed label (stable across
// runs, so caches keyed on them stay valid) and signatures are random: the simulated platform has
// no real keys, so nothing here verifies against AMD's roots, and it must never be made to.
import { createHash } from 'node:crypto';

/** SEV certificate (SEV API Appendix C.1): version 1, ECC P-384 key, two signature slots. */
const CERT_BYTES = 0x824;
const USAGE = { OCA: 0x1001, PEK: 0x1002, PDH: 0x1003, CEK: 0x1004, INVALID: 0x1000 } as const;
const ALGO = { ECDSA_SHA256: 0x2, ECDH_SHA256: 0x3, INVALID: 0 } as const;
const CURVE_P384 = 2;
/** GET_ID returns 64 bytes per socket; QEMU 7.x reports socket 0's as cpu0-id. */
const CHIP_ID_BYTES = 64;
/** SEV ATTESTATION report (SEV API 0.24 §6.8): mnonce, launch digest, policy, sig usage/algo, sig. */
export const ATTESTATION_REPORT_BYTES = 0xd0;
const ECDSA_SIG_BYTES = 144;

/** `n` deterministic bytes for `label` (SHA-256 in counter mode). */
function derivedBytes(label: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let block = 0, offset = 0; offset < n; block++, offset += 32) {
    createHash('sha256').update(`sevsup-sim:${label}:${block}`).digest().copy(out, offset);
  }
  return out;
}

function cert(name: string, usage: number, algo: number, apiMajor: number, apiMinor: number, signers: readonly number[]): Buffer {
  const c = Buffer.alloc(CERT_BYTES);
  c.writeUInt32LE(1, 0x0);
  c.writeUInt8(apiMajor, 0x4);
  c.writeUInt8(apiMinor, 0x5);
  c.writeUInt32LE(usage, 0x8);
  c.writeUInt32LE(algo, 0xc);
  c.writeUInt32LE(CURVE_P384, 0x10);
  derivedBytes(`${name}:qx`, 72).copy(c, 0x14);
  derivedBytes(`${name}:qy`, 72).copy(c, 0x14 + 72);
  for (const [slot, at] of [
    [0, 0x414],
    [1, 0x61c],
  ] as const) {
    const signer = signers[slot];
    c.writeUInt32LE(signer ?? USAGE.INVALID, at);
    c.writeUInt32LE(signer === undefined ? ALGO.INVALID : ALGO.ECDSA_SHA256, at + 4);
    if (signer !== undefined) derivedBytes(`${name}:sig${slot}`, ECDSA_SIG_BYTES).copy(c, at + 8);
  }
  return c;
}

export interface PlatformCapabilities {
  readonly pdh: string;
  readonly certChain: string;
  readonly cpu0Id: string;
}

/** query-sev-capabilities' blobs (base64): PDH signed by the PEK; chain PEK ‖ OCA ‖ CEK. */
export function platformCapabilities(apiMajor: number, apiMinor: number): PlatformCapabilities {
  const pdh = cert('pdh', USAGE.PDH, ALGO.ECDH_SHA256, apiMajor, apiMinor, [USAGE.PEK]);
  const pek = cert('pek', USAGE.PEK, ALGO.ECDSA_SHA256, apiMajor, apiMinor, [USAGE.OCA, USAGE.CEK]);
  const oca = cert('oca', USAGE.OCA, ALGO.ECDSA_SHA256, apiMajor, apiMinor, [USAGE.OCA]);
  const cek = cert('cek', USAGE.CEK, ALGO.ECDSA_SHA256, apiMajor, apiMinor, []);
  return {
    pdh: pdh.toString('base64'),
    certChain: Buffer.concat([pek, oca, cek]).toString('base64'),
    cpu0Id: derivedBytes('chip-id', CHIP_ID_BYTES).toString('base64'),
  };
}

/**
 * An SEV (not SNP) attestation report: MNONCE ‖ LAUNCH_DIGEST ‖ POLICY ‖ SIG_USAGE (PEK) ‖
 * SIG_ALGO ‖ reserved ‖ SIG1. The signature is `signature` (random bytes from the caller).
 */
export function attestationReport(mnonce: Buffer, launchDigest: Buffer, policy: number, signature: Buffer): Buffer {
  const r = Buffer.alloc(ATTESTATION_REPORT_BYTES);
  mnonce.copy(r, 0x0, 0, 16);
  launchDigest.copy(r, 0x10, 0, 32);
  r.writeUInt32LE(policy >>> 0, 0x30);
  r.writeUInt32LE(USAGE.PEK, 0x34);
  r.writeUInt32LE(ALGO.ECDSA_SHA256, 0x38);
  signature.copy(r, 0x40, 0, ECDSA_SIG_BYTES);
  return r;
}

export const ATTESTATION_SIGNATURE_BYTES = ECDSA_SIG_BYTES;
