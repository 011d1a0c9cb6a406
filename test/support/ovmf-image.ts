// Synthetic OVMF images for tests: a zero-filled image whose last bytes hold a footer GUID table
// the way QEMU's pc_system_parse_ovmf_flash reads it. Shared by the preflight, showcmd and
// qemu-argv tests; no real firmware code, so never boot one.
import { guidToBytesLe } from '../../src/sev/guid.js';
import { OVMF_TABLE_FOOTER_GUID, SEV_HASH_TABLE_RV_GUID, SEV_INFO_BLOCK_GUID, SEV_SECRET_GUID } from '../../src/sev/ovmf-table.js';

export const IMAGE_BYTES = 64 * 1024;

/** One footer-table entry: data ‖ u16 length ‖ GUID (little-endian), as OVMF lays it out. */
function entry(guid: string, data: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16LE(data.length + 18);
  return Buffer.concat([data, length, guidToBytesLe(guid)]);
}

function u32s(...values: number[]): Buffer {
  const buffer = Buffer.alloc(4 * values.length);
  for (const [i, v] of values.entries()) buffer.writeUInt32LE(v, 4 * i);
  return buffer;
}

/** An image whose last 48 bytes end the table (`totalLengthOverride` corrupts its length). */
export function firmwareImage(entries: readonly Buffer[], totalLengthOverride?: number): Buffer {
  const image = Buffer.alloc(IMAGE_BYTES);
  const table = Buffer.concat(entries);
  const footerAt = IMAGE_BYTES - 48;
  table.copy(image, footerAt - 2 - table.length);
  image.writeUInt16LE(totalLengthOverride ?? table.length + 18, footerAt - 2);
  guidToBytesLe(OVMF_TABLE_FOOTER_GUID).copy(image, footerAt);
  return image;
}

export const sevInfo = (reset: number): Buffer => entry(SEV_INFO_BLOCK_GUID, u32s(reset));
export const hashes = (base: number, size: number): Buffer => entry(SEV_HASH_TABLE_RV_GUID, u32s(base, size));
export const secret = (base: number, size: number): Buffer => entry(SEV_SECRET_GUID, u32s(base, size));

/** Like Debian's OVMF: an SEV info block, and empty hashes and secret areas. */
export const DEBIAN_LIKE_IMAGE = firmwareImage([sevInfo(0x80b004), secret(0, 0), hashes(0, 0)]);
/** Like an OVMF AmdSev build of the 2022 era: areas at 0x80f000 (secret) and 0x80fc00 (hashes). */
export const AMDSEV_LIKE_IMAGE = firmwareImage([sevInfo(0x80b004), secret(0x80f000, 0xc00), hashes(0x80fc00, 0x400)]);
