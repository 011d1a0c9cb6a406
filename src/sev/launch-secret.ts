// SEV launch secrets (SEV API LAUNCH_SECRET): the owner's secret table as OVMF and Linux's
// efi_secret read it, encrypted under the TEK, and the packet header whose MAC under the TIK binds
// it to the launch measurement. verifyLaunchSecret is the secure processor's side, used by the
// simulated platform to accept or refuse an injected packet.
// Pure: no I/O. Must not: put TIK, TEK or secret bytes in any message, detail or log.
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { SupervisorError } from '../errors.js';
import { guidFromBytesLe, guidToBytesLe, isGuid } from './guid.js';
import { macEquals, MEASUREMENT_MAC_BYTES, TIK_BYTES } from './measurement.js';

export const SECRET_TABLE_GUID = '1e74f542-71dd-4d66-963e-ef4287ff173b';
export const SECRET_ALIASES = { 'luks-key': '736869e5-84f0-4973-92ec-06879ce3da0b' } as const;

export const TEK_BYTES = 16;
export const SECRET_IV_BYTES = 16;
/** FLAGS (u32) ‖ IV ‖ MAC (SEV API "LAUNCH_SECRET packet header"). */
export const SECRET_HEADER_BYTES = 4 + SECRET_IV_BYTES + 32; // 52
/** GUID ‖ u32 length, for the table header and for each entry. */
const TABLE_HEADER_BYTES = 16 + 4;
/** The LAUNCH_SECRET context byte that starts the header MAC's message. */
const SECRET_CONTEXT = 0x01;
/** Sanity bound on one packet: OVMF's secret area is a single page, so this is generous. */
export const MAX_SECRET_PAYLOAD_BYTES = 64 * 1024;

export interface SecretEntry {
  readonly guid: string;
  readonly data: Buffer;
}

/** GUID for a GUID text or a known alias (`luks-key`); null when neither. */
export function resolveSecretGuid(aliasOrGuid: string): string | null {
  if (isGuid(aliasOrGuid)) return aliasOrGuid.toLowerCase();
  return Object.hasOwn(SECRET_ALIASES, aliasOrGuid) ? SECRET_ALIASES[aliasOrGuid as keyof typeof SECRET_ALIASES] : null;
}

/**
 * The plaintext secret table: header GUID ‖ u32 length ‖ entries (GUID ‖ u32 length ‖ data),
 * then `16 - len % 16` zero bytes (a whole block when already aligned), as libvirt pads it.
 * @throws SUP_ERR_USAGE for no secrets, a bad or duplicate GUID, or a table over the bound.
 */
export function buildSecretTable(secrets: readonly SecretEntry[]): Buffer {
  if (secrets.length === 0) throw new SupervisorError('SUP_ERR_USAGE', 'a launch secret needs at least one secret');
  const seen = new Set<string>();
  const parts: Buffer[] = [];
  for (const { guid, data } of secrets) {
    if (!isGuid(guid)) throw new SupervisorError('SUP_ERR_USAGE', `not a secret GUID: ${JSON.stringify(guid)}`);
    const key = guid.toLowerCase();
    if (seen.has(key)) throw new SupervisorError('SUP_ERR_USAGE', `secret for GUID ${key} given twice`);
    seen.add(key);
    const head = Buffer.alloc(TABLE_HEADER_BYTES);
    guidToBytesLe(key).copy(head, 0);
    head.writeUInt32LE(TABLE_HEADER_BYTES + data.length, 16);
    parts.push(head, data);
  }
  const body = Buffer.concat(parts);
  const length = TABLE_HEADER_BYTES + body.length;
  const padded = length + (16 - (length % 16));
  if (padded > MAX_SECRET_PAYLOAD_BYTES) {
    throw new SupervisorError('SUP_ERR_USAGE', `secret table is ${padded} bytes; at most ${MAX_SECRET_PAYLOAD_BYTES}`);
  }
  const table = Buffer.alloc(padded);
  guidToBytesLe(SECRET_TABLE_GUID).copy(table, 0);
  table.writeUInt32LE(length, 16);
  body.copy(table, TABLE_HEADER_BYTES);
  return table;
}

export interface LaunchSecretPacket {
  /** 52 bytes: flags ‖ IV ‖ MAC (QMP `packet-header`, base64). */
  readonly header: Buffer;
  /** The encrypted secret table (QMP `secret`, base64). */
  readonly payload: Buffer;
}

/**
 * Build the packet the owner gives `sev-inject-launch-secret`.
 * @throws SUP_ERR_VERIFY_UNSUPPORTED for keys not 16 bytes, a measurement MAC not 32 or an IV not
 * 16; SUP_ERR_USAGE for bad secrets (see buildSecretTable).
 */
export function buildLaunchSecret(i: {
  tik: Buffer;
  tek: Buffer;
  measurementMac: Buffer;
  secrets: readonly SecretEntry[];
  iv?: Buffer;
}): LaunchSecretPacket {
  checkKeys(i.tik, i.tek, i.measurementMac);
  const iv = i.iv ?? randomBytes(SECRET_IV_BYTES);
  if (iv.length !== SECRET_IV_BYTES) {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `IV must be ${SECRET_IV_BYTES} bytes, got ${iv.length}`);
  }
  const table = buildSecretTable(i.secrets);
  const payload = aesCtr(i.tek, iv, table);
  const flags = Buffer.alloc(4); // no flags: the payload is not compressed
  const mac = headerMac(i.tik, flags, iv, payload, i.measurementMac);
  return { header: Buffer.concat([flags, iv, mac]), payload };
}

export type VerifyLaunchSecretResult = { ok: true; secrets?: { guid: string; length: number }[] } | { ok: false; reason: string };

/**
 * Accept or refuse a packet as the secure processor does: header shape, then the MAC under the
 * TIK over the encrypted data and the launch measurement. With the TEK it also decrypts and
 * checks the secret table (header GUID, lengths) and lists the secrets (GUID and data length).
 * Never throws for packet contents; bad keys (caller bugs) throw SUP_ERR_VERIFY_UNSUPPORTED.
 */
export function verifyLaunchSecret(i: {
  tik: Buffer;
  tek?: Buffer;
  measurementMac: Buffer;
  header: Buffer;
  payload: Buffer;
}): VerifyLaunchSecretResult {
  checkKeys(i.tik, i.tek ?? Buffer.alloc(TEK_BYTES), i.measurementMac);
  if (i.header.length !== SECRET_HEADER_BYTES) {
    return { ok: false, reason: `packet header must be ${SECRET_HEADER_BYTES} bytes, got ${i.header.length}` };
  }
  if (i.payload.length === 0) return { ok: false, reason: 'secret payload is empty' };
  if (i.payload.length > MAX_SECRET_PAYLOAD_BYTES) {
    return { ok: false, reason: `secret payload is ${i.payload.length} bytes; at most ${MAX_SECRET_PAYLOAD_BYTES}` };
  }
  const flags = i.header.subarray(0, 4);
  const iv = i.header.subarray(4, 4 + SECRET_IV_BYTES);
  const mac = i.header.subarray(4 + SECRET_IV_BYTES);
  if (flags.readUInt32LE(0) !== 0) return { ok: false, reason: `unsupported packet header flags 0x${flags.readUInt32LE(0).toString(16)}` };
  if (!macEquals(headerMac(i.tik, flags, iv, i.payload, i.measurementMac), mac)) {
    return { ok: false, reason: 'packet header MAC does not match (wrong TIK, measurement or data)' };
  }
  if (i.tek === undefined) return { ok: true };
  const parsed = parseSecretTable(aesCtr(i.tek, iv, i.payload));
  return typeof parsed === 'string' ? { ok: false, reason: parsed } : { ok: true, secrets: parsed };
}

/** Entries of a decrypted secret table, or the reason it is malformed. */
export function parseSecretTable(table: Buffer): { guid: string; length: number }[] | string {
  if (table.length < TABLE_HEADER_BYTES) return 'secret table is shorter than its header';
  if (!guidToBytesLe(SECRET_TABLE_GUID).equals(table.subarray(0, 16))) return 'secret table header GUID does not match (wrong TEK?)';
  const length = table.readUInt32LE(16);
  if (length < TABLE_HEADER_BYTES || length > table.length)
    return `secret table length ${length} does not fit the ${table.length}-byte payload`;
  const secrets: { guid: string; length: number }[] = [];
  let offset = TABLE_HEADER_BYTES;
  while (offset < length) {
    if (length - offset < TABLE_HEADER_BYTES) return `secret table entry at ${offset} is truncated`;
    const entryLength = table.readUInt32LE(offset + 16);
    if (entryLength < TABLE_HEADER_BYTES || entryLength > length - offset) {
      return `secret table entry at ${offset} has invalid length ${entryLength}`;
    }
    secrets.push({ guid: guidFromBytesLe(table, offset), length: entryLength - TABLE_HEADER_BYTES });
    offset += entryLength;
  }
  return secrets;
}

function headerMac(tik: Buffer, flags: Buffer, iv: Buffer, payload: Buffer, measurementMac: Buffer): Buffer {
  const lengths = Buffer.alloc(8);
  // GUEST_LENGTH and TRANS_LENGTH: QEMU passes the decoded payload length for both.
  lengths.writeUInt32LE(payload.length, 0);
  lengths.writeUInt32LE(payload.length, 4);
  return createHmac('sha256', tik)
    .update(Buffer.of(SECRET_CONTEXT))
    .update(flags)
    .update(iv)
    .update(lengths)
    .update(payload)
    .update(measurementMac)
    .digest();
}

function aesCtr(tek: Buffer, iv: Buffer, data: Buffer): Buffer {
  // The IV is the whole initial counter block, incremented big-endian (OpenSSL and pyca agree).
  const cipher = createCipheriv('aes-128-ctr', tek, iv);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

function checkKeys(tik: Buffer, tek: Buffer, measurementMac: Buffer): void {
  if (tik.length !== TIK_BYTES)
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `TIK must be ${TIK_BYTES} bytes, got ${tik.length}`);
  if (tek.length !== TEK_BYTES)
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `TEK must be ${TEK_BYTES} bytes, got ${tek.length}`);
  if (measurementMac.length !== MEASUREMENT_MAC_BYTES) {
    throw new SupervisorError(
      'SUP_ERR_VERIFY_UNSUPPORTED',
      `measurement MAC must be ${MEASUREMENT_MAC_BYTES} bytes, got ${measurementMac.length}`,
    );
  }
}
