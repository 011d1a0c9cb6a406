// The SEV-SNP attestation report (0x4A0 bytes, versions 2, 3 (= 4) and 5) as bytes: decode every
// field, encode one (the simulated platform and the tests build reports), the TCB_VERSION layouts
// of Milan/Genoa and Turin, the structural rules a verifier applies (version, signature algorithm,
// must-be-zero ranges, policy bit 17), and the ECDSA P-384 signature over bytes [0, 0x2A0) with
// R and S little-endian. Facts: shared/docs/snp-facts.md §2.2–§2.3 (go-sev-guest abi.go and
// virtee/sev agree). Owns: that layout. Pure: no I/O. Must not: decide trust (attestation/
// verify-snp.ts), read certificates, or hold private keys beyond the call that signs.
import { sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { SNP_POLICY_MBO, SNP_POLICY_RESERVED_HIGH } from './snp-policy.js';

export const SNP_REPORT_SIZE = 0x4a0;
/** The signature covers bytes [0, SNP_SIGNED_LENGTH). */
export const SNP_SIGNED_LENGTH = 0x2a0;
const SIG_R = 0x2a0;
const SIG_S = 0x2e8;
const SIG_COMPONENT = 72;
const P384_BYTES = 48;

/** Versions whose layout we know: 3 and 4 share one (virtee/sev maps both to V3). */
export const SNP_REPORT_VERSIONS = [2, 3, 4, 5] as const;
export const SIG_ALGO_ECDSA_P384_SHA384 = 1;

export type SigningKey = 'vcek' | 'vlek' | 'none';
const SIGNING_KEY_CODES: Readonly<Record<SigningKey, number>> = { vcek: 0, vlek: 1, none: 7 };

// Section: TCB_VERSION ----------------------------------------------------------------------------

/** Which byte holds which SPL: Turin moved them (virtee/sev firmware/host/types/snp.rs). */
export type TcbLayout = 'milan-genoa' | 'turin';

export interface TcbParts {
  readonly bootloader: number;
  readonly tee: number;
  readonly snp: number;
  readonly microcode: number;
  /** Turin only (byte 0). */
  readonly fmc?: number;
}

const TCB_BYTES: Readonly<Record<TcbLayout, Readonly<Record<keyof TcbParts, number | null>>>> = {
  'milan-genoa': { bootloader: 0, tee: 1, snp: 6, microcode: 7, fmc: null },
  turin: { fmc: 0, bootloader: 1, tee: 2, snp: 3, microcode: 7 },
};

export function decodeTcb(raw: bigint, layout: TcbLayout): TcbParts {
  const byte = (i: number | null): number => (i === null ? 0 : Number((raw >> BigInt(8 * i)) & 0xffn));
  const b = TCB_BYTES[layout];
  const parts = { bootloader: byte(b.bootloader), tee: byte(b.tee), snp: byte(b.snp), microcode: byte(b.microcode) };
  return layout === 'turin' ? { ...parts, fmc: byte(b.fmc) } : parts;
}

export function encodeTcb(parts: TcbParts, layout: TcbLayout): bigint {
  let raw = 0n;
  for (const [name, at] of Object.entries(TCB_BYTES[layout]) as [keyof TcbParts, number | null][]) {
    const v = parts[name] ?? 0;
    if (at === null) continue;
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`TCB ${name} ${v} is not 0..255`);
    raw |= BigInt(v) << BigInt(8 * at);
  }
  return raw;
}

/** The bytes a layout does not use must be zero; else the TCB was read with the wrong layout. */
export function tcbUnusedBytes(raw: bigint, layout: TcbLayout): number[] {
  const used = new Set(Object.values(TCB_BYTES[layout]).filter((v): v is number => v !== null));
  const bad: number[] = [];
  for (let i = 0; i < 8; i++) if (!used.has(i) && ((raw >> BigInt(8 * i)) & 0xffn) !== 0n) bad.push(i);
  return bad;
}

export function formatTcb(p: TcbParts): string {
  const fmc = p.fmc === undefined ? '' : `fmc=${p.fmc} `;
  return `${fmc}bl=${p.bootloader} tee=${p.tee} snp=${p.snp} ucode=${p.microcode}`;
}

/** Every SPL of `have` at least that of `min` (a per-component minimum, go-sev-guest's rule). */
export function tcbAtLeast(have: TcbParts, min: Partial<TcbParts>): (keyof TcbParts)[] {
  const low: (keyof TcbParts)[] = [];
  for (const k of ['fmc', 'bootloader', 'tee', 'snp', 'microcode'] as const) {
    const want = min[k];
    if (want !== undefined && (have[k] ?? 0) < want) low.push(k);
  }
  return low;
}

// Section: product generations ---------------------------------------------------------------------

export type SnpProduct = 'Milan' | 'Genoa' | 'Turin';
export const SNP_PRODUCTS: readonly SnpProduct[] = ['Milan', 'Genoa', 'Turin'];

export function tcbLayoutOf(product: SnpProduct): TcbLayout {
  return product === 'Turin' ? 'turin' : 'milan-genoa';
}

/**
 * The product line from the report's CPUID fields (v3+): family 0x19 models 0x00–0x0F are Milan,
 * other 0x19 models (Genoa, Bergamo, Siena) use Genoa's keys; family 0x1A is Turin. Null when
 * unknown or absent (v2).
 */
export function productFromCpuid(c: { family: number; model: number } | null): SnpProduct | null {
  if (c === null) return null;
  if (c.family === 0x19) return c.model < 0x10 ? 'Milan' : 'Genoa';
  if (c.family === 0x1a) return 'Turin';
  return null;
}

// Section: the report -----------------------------------------------------------------------------

export interface FirmwareVersion {
  readonly major: number;
  readonly minor: number;
  readonly build: number;
}

/** Every field of a report; `parseSnpReport` fills it, `encodeSnpReport` writes it. */
export interface SnpReportFields {
  readonly version: number;
  readonly guestSvn: number;
  readonly policy: bigint;
  readonly familyId: Buffer;
  readonly imageId: Buffer;
  readonly vmpl: number;
  readonly signatureAlgo: number;
  readonly currentTcb: bigint;
  readonly platformInfo: bigint;
  readonly authorKeyEn: boolean;
  readonly maskChipKey: boolean;
  /** Bits 4:2 of 0x48, raw (0 VCEK, 1 VLEK, 7 none; others reserved). */
  readonly signingKeyCode: number;
  readonly reportData: Buffer;
  readonly measurement: Buffer;
  readonly hostData: Buffer;
  readonly idKeyDigest: Buffer;
  readonly authorKeyDigest: Buffer;
  readonly reportId: Buffer;
  readonly reportIdMa: Buffer;
  readonly reportedTcb: bigint;
  /** v3+ only. */
  readonly cpuid: { readonly family: number; readonly model: number; readonly stepping: number } | null;
  readonly chipId: Buffer;
  readonly committedTcb: bigint;
  readonly currentVersion: FirmwareVersion;
  readonly committedVersion: FirmwareVersion;
  readonly launchTcb: bigint;
  /** v5 only. */
  readonly launchMitVector: bigint | null;
  readonly currentMitVector: bigint | null;
}

export interface SnpReport extends SnpReportFields {
  /** R and S as 72-byte little-endian fields, exactly as in the report. */
  readonly signatureR: Buffer;
  readonly signatureS: Buffer;
  readonly raw: Buffer;
}

const FIELD_SIZES = {
  familyId: 16,
  imageId: 16,
  reportData: 64,
  measurement: 48,
  hostData: 32,
  idKeyDigest: 48,
  authorKeyDigest: 48,
  reportId: 32,
  reportIdMa: 32,
  chipId: 64,
} as const;

const OFFSETS = {
  familyId: 0x10,
  imageId: 0x20,
  reportData: 0x50,
  measurement: 0x90,
  hostData: 0xc0,
  idKeyDigest: 0xe0,
  authorKeyDigest: 0x110,
  reportId: 0x140,
  reportIdMa: 0x160,
  chipId: 0x1a0,
} as const;

export function signingKeyOf(code: number): SigningKey | null {
  const hit = (Object.entries(SIGNING_KEY_CODES) as [SigningKey, number][]).find(([, c]) => c === code);
  return hit === undefined ? null : hit[0];
}

export function signingKeyCode(key: SigningKey): number {
  return SIGNING_KEY_CODES[key];
}

/** The layout family of a version: 3 and 4 are one. */
function hasCpuid(version: number): boolean {
  return version >= 3;
}
function hasMitVectors(version: number): boolean {
  return version >= 5;
}

/**
 * Decode every field. Only the size is enforced here (nothing else can be read without it);
 * `structureProblems` lists what a verifier must refuse.
 * @throws RangeError when `buf` is not SNP_REPORT_SIZE bytes.
 */
export function parseSnpReport(buf: Buffer): SnpReport {
  if (buf.length !== SNP_REPORT_SIZE) {
    throw new RangeError(`an SNP attestation report is ${SNP_REPORT_SIZE} (0x4a0) bytes, this is ${buf.length}`);
  }
  const raw = Buffer.from(buf);
  const slice = (k: keyof typeof OFFSETS): Buffer => Buffer.from(raw.subarray(OFFSETS[k], OFFSETS[k] + FIELD_SIZES[k]));
  const version = raw.readUInt32LE(0x00);
  const flags = raw.readUInt32LE(0x48);
  const ver = (at: number): FirmwareVersion => ({ build: raw[at] ?? 0, minor: raw[at + 1] ?? 0, major: raw[at + 2] ?? 0 });
  return {
    version,
    guestSvn: raw.readUInt32LE(0x04),
    policy: raw.readBigUInt64LE(0x08),
    familyId: slice('familyId'),
    imageId: slice('imageId'),
    vmpl: raw.readUInt32LE(0x30),
    signatureAlgo: raw.readUInt32LE(0x34),
    currentTcb: raw.readBigUInt64LE(0x38),
    platformInfo: raw.readBigUInt64LE(0x40),
    authorKeyEn: (flags & 1) !== 0,
    maskChipKey: (flags & 2) !== 0,
    signingKeyCode: (flags >>> 2) & 7,
    reportData: slice('reportData'),
    measurement: slice('measurement'),
    hostData: slice('hostData'),
    idKeyDigest: slice('idKeyDigest'),
    authorKeyDigest: slice('authorKeyDigest'),
    reportId: slice('reportId'),
    reportIdMa: slice('reportIdMa'),
    reportedTcb: raw.readBigUInt64LE(0x180),
    cpuid: hasCpuid(version) ? { family: raw[0x188] ?? 0, model: raw[0x189] ?? 0, stepping: raw[0x18a] ?? 0 } : null,
    chipId: slice('chipId'),
    committedTcb: raw.readBigUInt64LE(0x1e0),
    currentVersion: ver(0x1e8),
    committedVersion: ver(0x1ec),
    launchTcb: raw.readBigUInt64LE(0x1f0),
    launchMitVector: hasMitVectors(version) ? raw.readBigUInt64LE(0x1f8) : null,
    currentMitVector: hasMitVectors(version) ? raw.readBigUInt64LE(0x200) : null,
    signatureR: Buffer.from(raw.subarray(SIG_R, SIG_R + SIG_COMPONENT)),
    signatureS: Buffer.from(raw.subarray(SIG_S, SIG_S + SIG_COMPONENT)),
    raw,
  };
}

/** Reserved ranges [start, end) that must be zero for a version (go-sev-guest rejects otherwise). */
export function reservedRanges(version: number): [number, number][] {
  const ranges: [number, number][] = [
    [0x4c, 0x50],
    [hasCpuid(version) ? 0x18b : 0x188, 0x1a0],
    [0x1eb, 0x1ec],
    [0x1ef, 0x1f0],
    [hasMitVectors(version) ? 0x208 : 0x1f8, SNP_SIGNED_LENGTH],
    [SIG_S + SIG_COMPONENT, SNP_REPORT_SIZE],
  ];
  return ranges;
}

/** What makes a report malformed, one line each; empty when well-formed. */
export function structureProblems(r: SnpReport): string[] {
  const out: string[] = [];
  if (!(SNP_REPORT_VERSIONS as readonly number[]).includes(r.version)) {
    out.push(`version ${r.version} is not one of ${SNP_REPORT_VERSIONS.join(', ')}`);
    return out; // the rest of the layout is unknown
  }
  if (r.signatureAlgo !== SIG_ALGO_ECDSA_P384_SHA384)
    out.push(`signature algorithm ${r.signatureAlgo} is not 1 (ECDSA P-384 with SHA-384)`);
  if (signingKeyOf(r.signingKeyCode) === null) out.push(`signing key ${r.signingKeyCode} is reserved (0 VCEK, 1 VLEK, 7 none)`);
  const flags = r.raw.readUInt32LE(0x48);
  if (flags >>> 5 !== 0) out.push(`reserved bits of the key flags (0x48) are set: 0x${flags.toString(16)}`);
  if ((r.policy & SNP_POLICY_MBO) === 0n) out.push('policy bit 17 (reserved, must be one) is zero');
  if ((r.policy & SNP_POLICY_RESERVED_HIGH) !== 0n) out.push(`policy 0x${r.policy.toString(16)} sets reserved bits 63:26`);
  if (r.vmpl > 3) out.push(`VMPL ${r.vmpl} is not 0..3`);
  for (const [start, end] of reservedRanges(r.version)) {
    const bad = r.raw.subarray(start, end).findIndex((b) => b !== 0);
    if (bad >= 0) out.push(`reserved byte 0x${(start + bad).toString(16)} is not zero`);
  }
  for (const [name, c] of [
    ['R', r.signatureR],
    ['S', r.signatureS],
  ] as const) {
    if (c.subarray(P384_BYTES).some((b) => b !== 0)) out.push(`signature ${name} has non-zero bytes beyond 48`);
  }
  return out;
}

// Section: encoding and signing -------------------------------------------------------------------

/** Write every field into a fresh 0x4A0-byte report with a zero signature. */
export function encodeSnpReport(f: SnpReportFields): Buffer {
  const b = Buffer.alloc(SNP_REPORT_SIZE);
  b.writeUInt32LE(f.version, 0x00);
  b.writeUInt32LE(f.guestSvn, 0x04);
  b.writeBigUInt64LE(f.policy, 0x08);
  b.writeUInt32LE(f.vmpl, 0x30);
  b.writeUInt32LE(f.signatureAlgo, 0x34);
  b.writeBigUInt64LE(f.currentTcb, 0x38);
  b.writeBigUInt64LE(f.platformInfo, 0x40);
  b.writeUInt32LE((f.authorKeyEn ? 1 : 0) | (f.maskChipKey ? 2 : 0) | ((f.signingKeyCode & 7) << 2), 0x48);
  for (const k of Object.keys(OFFSETS) as (keyof typeof OFFSETS)[]) {
    const v = f[k];
    if (v.length !== FIELD_SIZES[k]) throw new RangeError(`${k} must be ${FIELD_SIZES[k]} bytes, not ${v.length}`);
    v.copy(b, OFFSETS[k]);
  }
  b.writeBigUInt64LE(f.reportedTcb, 0x180);
  if (hasCpuid(f.version) && f.cpuid !== null) {
    b[0x188] = f.cpuid.family;
    b[0x189] = f.cpuid.model;
    b[0x18a] = f.cpuid.stepping;
  }
  b.writeBigUInt64LE(f.committedTcb, 0x1e0);
  const ver = (at: number, v: FirmwareVersion): void => {
    b[at] = v.build;
    b[at + 1] = v.minor;
    b[at + 2] = v.major;
  };
  ver(0x1e8, f.currentVersion);
  ver(0x1ec, f.committedVersion);
  b.writeBigUInt64LE(f.launchTcb, 0x1f0);
  if (hasMitVectors(f.version)) {
    b.writeBigUInt64LE(f.launchMitVector ?? 0n, 0x1f8);
    b.writeBigUInt64LE(f.currentMitVector ?? 0n, 0x200);
  }
  return b;
}

/** The bytes the signature covers. */
export function signedBytes(report: Buffer): Buffer {
  return report.subarray(0, SNP_SIGNED_LENGTH);
}

/** R ‖ S big-endian, 48 bytes each (Node's 'ieee-p1363' encoding), from the report's LE fields. */
export function signatureP1363(r: Pick<SnpReport, 'signatureR' | 'signatureS'>): Buffer {
  const be = (le: Buffer): Buffer => Buffer.from(le.subarray(0, P384_BYTES)).reverse();
  return Buffer.concat([be(r.signatureR), be(r.signatureS)]);
}

/**
 * Sign a report with a P-384 private key (the platform's VCEK/VLEK; the simulator's): returns a
 * copy with R and S written little-endian at 0x2A0 / 0x2E8 and the rest of the signature zero.
 */
export function signSnpReport(report: Buffer, key: KeyObject): Buffer {
  if (report.length !== SNP_REPORT_SIZE) throw new RangeError(`report must be ${SNP_REPORT_SIZE} bytes`);
  const sig = cryptoSign('sha384', signedBytes(report), { key, dsaEncoding: 'ieee-p1363' });
  const out = Buffer.from(report);
  out.fill(0, SIG_R);
  Buffer.from(sig.subarray(0, P384_BYTES)).reverse().copy(out, SIG_R);
  Buffer.from(sig.subarray(P384_BYTES)).reverse().copy(out, SIG_S);
  return out;
}

/** A report with every field as given, signed: what the simulated platform answers a guest with. */
export function buildSignedReport(fields: SnpReportFields, key: KeyObject): Buffer {
  return signSnpReport(encodeSnpReport(fields), key);
}

/** ECDSA P-384/SHA-384 over [0, 0x2A0) with the report's LE R/S, against `publicKey`. */
export function verifySnpReportSignature(r: SnpReport, publicKey: KeyObject): boolean {
  try {
    return cryptoVerify('sha384', signedBytes(r.raw), { key: publicKey, dsaEncoding: 'ieee-p1363' }, signatureP1363(r));
  } catch {
    return false; // a key that is not EC, or a malformed signature: not a valid signature
  }
}
