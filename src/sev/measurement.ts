// The SEV launch measurement (SEV API LAUNCH_MEASURE): HMAC-SHA256 under the owner's TIK over
// 0x04 ‖ API major ‖ API minor ‖ build ‖ policy (u32 LE) ‖ launch digest ‖ mnonce, and the
// 48-byte blob QEMU returns base64-encoded (MAC ‖ mnonce).
// Pure: no I/O. Must not: log or put the TIK in any message or detail.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { SupervisorError } from '../errors.js';

export const TIK_BYTES = 16;
export const MEASUREMENT_MAC_BYTES = 32;
export const MNONCE_BYTES = 16;
export const MEASUREMENT_BLOB_BYTES = MEASUREMENT_MAC_BYTES + MNONCE_BYTES; // 48
/** The LAUNCH_MEASURE context byte that starts the HMAC message. */
const MEASURE_CONTEXT = 0x04;
const DIGEST_BYTES = 32;

export interface MeasurementInputs {
  readonly tik: Buffer;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
  readonly policy: number;
  readonly digest: Buffer;
  readonly mnonce: Buffer;
}

/**
 * The 32-byte measurement MAC the secure processor computes.
 * @throws SUP_ERR_VERIFY_UNSUPPORTED for a TIK that is not 16 bytes, API/build values outside a
 * byte, a policy outside u32, a digest not 32 bytes or an mnonce not 16 bytes.
 */
export function computeMeasurementMac(i: MeasurementInputs): Buffer {
  const bad = (what: string): never => {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', what);
  };
  if (i.tik.length !== TIK_BYTES) bad(`TIK must be ${TIK_BYTES} bytes, got ${i.tik.length}`);
  for (const [name, value] of [
    ['api-major', i.apiMajor],
    ['api-minor', i.apiMinor],
    ['build-id', i.buildId],
  ] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) bad(`${name} must be 0..255, got ${value}`);
  }
  if (!Number.isInteger(i.policy) || i.policy < 0 || i.policy > 0xffffffff) bad(`policy must be a u32, got ${i.policy}`);
  if (i.digest.length !== DIGEST_BYTES) bad(`launch digest must be ${DIGEST_BYTES} bytes, got ${i.digest.length}`);
  if (i.mnonce.length !== MNONCE_BYTES) bad(`mnonce must be ${MNONCE_BYTES} bytes, got ${i.mnonce.length}`);
  const header = Buffer.alloc(8);
  header.writeUInt8(MEASURE_CONTEXT, 0);
  header.writeUInt8(i.apiMajor, 1);
  header.writeUInt8(i.apiMinor, 2);
  header.writeUInt8(i.buildId, 3);
  header.writeUInt32LE(i.policy, 4);
  return createHmac('sha256', i.tik).update(header).update(i.digest).update(i.mnonce).digest();
}

/** base64 of MAC ‖ mnonce, as `query-sev-launch-measure` returns it. */
export function encodeMeasurement(mac: Buffer, mnonce: Buffer): string {
  if (mac.length !== MEASUREMENT_MAC_BYTES || mnonce.length !== MNONCE_BYTES) {
    throw new SupervisorError(
      'SUP_ERR_INTERNAL',
      `measurement needs a ${MEASUREMENT_MAC_BYTES}-byte MAC and a ${MNONCE_BYTES}-byte mnonce`,
    );
  }
  return Buffer.concat([mac, mnonce]).toString('base64');
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decode strict standard base64: no whitespace, no URL alphabet, canonical padding and bits.
 * Returns null for anything else (Node's decoder would silently skip garbage).
 */
export function decodeStrictBase64(text: string): Buffer | null {
  if (!BASE64_RE.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  // Non-zero unused bits in the last character decode the same as zero ones; refuse them.
  return bytes.toString('base64') === text ? bytes : null;
}

/** A measurement blob split into its parts (views into one 48-byte buffer). */
export interface MeasurementParts {
  readonly mac: Buffer;
  readonly mnonce: Buffer;
}

/** Why a text is not a measurement: not strict base64, or base64 of the wrong number of bytes. */
export type MeasurementProblem = { readonly problem: 'not-base64' } | { readonly problem: 'length'; readonly bytes: number };

/**
 * The one decoder of QEMU's measurement (base64 of MAC ‖ mnonce); callers word the refusal.
 * Returns the parts, or why the text is not a measurement.
 */
export function splitMeasurement(b64: string): MeasurementParts | MeasurementProblem {
  const bytes = decodeStrictBase64(b64);
  if (bytes === null) return { problem: 'not-base64' };
  if (bytes.length !== MEASUREMENT_BLOB_BYTES) return { problem: 'length', bytes: bytes.length };
  return { mac: bytes.subarray(0, MEASUREMENT_MAC_BYTES), mnonce: bytes.subarray(MEASUREMENT_MAC_BYTES) };
}

/**
 * Split QEMU's measurement into MAC and mnonce.
 * @throws SUP_ERR_CHECK_MEASUREMENT when it is not strict base64 of exactly 48 bytes.
 */
export function decodeMeasurement(b64: string): MeasurementParts {
  const parts = splitMeasurement(b64);
  if (!('problem' in parts)) return parts;
  if (parts.problem === 'not-base64') {
    throw new SupervisorError('SUP_ERR_CHECK_MEASUREMENT', 'launch measurement is not valid base64');
  }
  throw new SupervisorError('SUP_ERR_CHECK_MEASUREMENT', `launch measurement must be ${MEASUREMENT_BLOB_BYTES} bytes, got ${parts.bytes}`, {
    details: { length: parts.bytes },
  });
}

/** Constant-time equality for MACs; different lengths are simply unequal. */
export function macEquals(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
