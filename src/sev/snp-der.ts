// The little DER that SNP certificates need: read TLVs (to find the AMD extensions and the parts of a
// certificate Node's X509Certificate does not expose) and write them (the simulated chain maker).
// Owns: tag/length framing, OIDs, INTEGER/IA5String/OCTET STRING helpers. Pure: no I/O.
// Must not: interpret certificates (snp-certs.ts does) or accept BER (indefinite lengths, long-form
// lengths that fit short form): a certificate that is not strict DER is refused, not guessed at.

export interface Tlv {
  readonly tag: number;
  /** The value bytes (a view into the input). */
  readonly value: Buffer;
  /** The whole element, tag and length included. */
  readonly raw: Buffer;
}

export const TAG = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8: 0x0c,
  PRINTABLE: 0x13,
  IA5: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export class DerError extends Error {}

/** One TLV at `offset`; throws DerError on truncation or non-minimal lengths. */
export function readTlv(buf: Buffer, offset = 0): Tlv {
  if (offset + 2 > buf.length) throw new DerError('truncated DER element');
  const tag = buf[offset] ?? 0;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte DER tags are not supported');
  let len = buf[offset + 1] ?? 0;
  let at = offset + 2;
  if (len === 0x80) throw new DerError('indefinite length is not DER');
  if (len > 0x80) {
    const n = len & 0x7f;
    if (n > 4 || at + n > buf.length) throw new DerError('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[at + i] ?? 0);
    if (len < 0x80 || (buf[at] ?? 0) === 0) throw new DerError('non-minimal DER length');
    at += n;
  }
  if (at + len > buf.length) throw new DerError('truncated DER element');
  return { tag, value: buf.subarray(at, at + len), raw: buf.subarray(offset, at + len) };
}

/** The elements inside a constructed value (SEQUENCE, SET, [n]). */
export function children(value: Buffer): Tlv[] {
  const out: Tlv[] = [];
  let at = 0;
  while (at < value.length) {
    const t = readTlv(value, at);
    out.push(t);
    at += t.raw.length;
  }
  return out;
}

/** A whole buffer that is exactly one element. */
export function readOnly(buf: Buffer): Tlv {
  const t = readTlv(buf, 0);
  if (t.raw.length !== buf.length) throw new DerError('trailing bytes after DER element');
  return t;
}

export function decodeOid(value: Buffer): string {
  if (value.length === 0) throw new DerError('empty OID');
  const first = value[0] ?? 0;
  const parts: number[] = [Math.min(2, Math.floor(first / 40)), first - Math.min(2, Math.floor(first / 40)) * 40];
  let n = 0;
  for (let i = 1; i < value.length; i++) {
    const b = value[i] ?? 0;
    n = n * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      parts.push(n);
      n = 0;
    }
  }
  return parts.join('.');
}

/** A non-negative INTEGER as a number (SNP's SPLs and versions are small). */
export function decodeSmallUint(value: Buffer): number {
  if (value.length === 0 || value.length > 6 || ((value[0] ?? 0) & 0x80) !== 0) throw new DerError('not a small non-negative INTEGER');
  return value.readUIntBE(0, value.length);
}

// Section: writing -------------------------------------------------------------------------------

export function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const value = Buffer.concat(parts);
  const n = value.length;
  let head: Buffer;
  if (n < 0x80) head = Buffer.from([tag, n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    head = Buffer.from([tag, 0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([head, value]);
}

export const seq = (...parts: Buffer[]): Buffer => tlv(TAG.SEQUENCE, ...parts);

export function oid(dotted: string): Buffer {
  const nums = dotted.split('.').map(Number);
  const [a = 0, b = 0, ...rest] = nums;
  const bytes: number[] = [a * 40 + b];
  for (const n of rest) {
    const chunk: number[] = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(TAG.OID, Buffer.from(bytes));
}

/** INTEGER from a non-negative bigint or number (minimal two's complement). */
export function integer(v: bigint | number): Buffer {
  let hex = BigInt(v).toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  let bytes = Buffer.from(hex, 'hex');
  if (((bytes[0] ?? 0) & 0x80) !== 0) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(TAG.INTEGER, bytes);
}

export const octets = (b: Buffer): Buffer => tlv(TAG.OCTET_STRING, b);
export const ia5 = (s: string): Buffer => tlv(TAG.IA5, Buffer.from(s, 'ascii'));
export const utf8 = (s: string): Buffer => tlv(TAG.UTF8, Buffer.from(s, 'utf8'));
export const bitString = (b: Buffer): Buffer => tlv(TAG.BIT_STRING, Buffer.from([0]), b);
export const explicit = (n: number, ...parts: Buffer[]): Buffer => tlv(0xa0 | n, ...parts);

/** UTCTime before 2050, GeneralizedTime after (RFC 5280 §4.1.2.5). */
export function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return d.getUTCFullYear() < 2050 ? tlv(TAG.UTC_TIME, Buffer.from(`${iso.slice(2)}Z`)) : tlv(TAG.GENERALIZED_TIME, Buffer.from(`${iso}Z`));
}
