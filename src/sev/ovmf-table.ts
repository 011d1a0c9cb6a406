// The OVMF footer GUID table, read exactly as QEMU 7.2 reads it (hw/i386/pc_sysfw_ovmf.c and
// target/i386/sev.c): SEV-ES reset address (with the legacy fallback), kernel-hashes area,
// launch-secret area, SNP metadata presence, and QEMU's refusal texts for them.
// Pure: works on bytes only; bounds-checked for hostile images (truncated, lengths pointing
// outside, zero lengths) and every loop strictly shrinks, so it always terminates.
// Must not: read files (firmware-file.ts does) or decide policy (preflight does).
import { SupervisorError } from '../errors.js';
import { GUID_BYTES, guidAt, guidFromBytesLe, guidToBytesLe } from './guid.js';

export const OVMF_TABLE_FOOTER_GUID = '96b582de-1fb2-45f7-baea-a366c55a082d';
export const SEV_INFO_BLOCK_GUID = '00f771de-1a7e-4fcb-890e-68c77e2fb44e';
export const SEV_HASH_TABLE_RV_GUID = '7255371f-3a3b-4b04-927b-1da6efa8d454';
export const SEV_SECRET_GUID = '4c2eb361-7d9b-4cc3-8081-127c90d3d294';
export const SEV_SNP_METADATA_GUID = 'dc886566-984a-4798-a75e-5585a7bf67cc';
export const TDX_METADATA_GUID = 'e47a6535-984a-4798-865e-4685a7bf8ec2';

/** Names shown by `sevsup inspect-firmware` for the GUIDs QEMU (or edk2) defines. */
export const OVMF_TABLE_GUID_NAMES: Readonly<Record<string, string>> = {
  [SEV_INFO_BLOCK_GUID]: 'SEV info block (SEV-ES AP reset address)',
  [SEV_HASH_TABLE_RV_GUID]: 'SEV kernel-hashes table area',
  [SEV_SECRET_GUID]: 'SEV launch-secret area',
  [SEV_SNP_METADATA_GUID]: 'SEV-SNP metadata',
  [TDX_METADATA_GUID]: 'TDX metadata',
};

/** QEMU parses no table in a flash smaller than this (TARGET_PAGE_SIZE). */
export const MIN_TABLE_IMAGE_BYTES = 4096;
/** The footer GUID ends 32 bytes before the end of the image. */
const BYTES_AFTER_FOOTER = 32;
/** Per entry: data ‖ u16 length of the whole entry ‖ 16-byte GUID. */
const ENTRY_TRAILER_BYTES = 2 + GUID_BYTES;
/** The footer itself: u16 total length ‖ GUID, ending 32 bytes before the end. */
const FOOTER_END_OFFSET = BYTES_AFTER_FOOTER + GUID_BYTES; // 48
const FOOTER_LENGTH_OFFSET = FOOTER_END_OFFSET + 2; // 50
/**
 * Everything QEMU reads lies in this many bytes at the end of the image: the table length is a
 * u16 (≤ 65535 bytes before the footer), and the legacy SEV info block sits at most a u16 before
 * the last 32 bytes. firmware-file.ts keeps only this tail while it streams the image.
 */
export const OVMF_TABLE_TAIL_BYTES = 0x10000 + 64;
/** sizeof(PaddedSevHashTable): the smallest hashes area QEMU accepts. */
export const PADDED_HASH_TABLE_BYTES = 176;

export interface Area {
  readonly base: number;
  readonly size: number;
}

export interface OvmfTableEntry {
  readonly guid: string;
  /** Known name of the GUID, or null. */
  readonly name: string | null;
  /** Offset of the entry's data in the image. */
  readonly offset: number;
  /** Length of the entry's data (the entry's u16 length minus its 18-byte trailer). */
  readonly length: number;
}

export interface OvmfTable {
  /** The footer GUID is present (and the image is large enough for QEMU to look). */
  readonly found: boolean;
  /** Entries in QEMU's walking order (from the footer backwards); QEMU's lookups take the first match. */
  readonly entries: readonly OvmfTableEntry[];
  /** Where the walk stopped on a corrupt entry (QEMU's lookups fail beyond it), else null. */
  readonly badEntry: { readonly offset: number; readonly length: number } | null;
  /** SEV-ES AP reset address; null when there is no SEV info block or it says 0 (QEMU refuses both). */
  readonly sevResetAddress: number | null;
  /** Where the SEV info block was found: in the table, at the legacy location, or nowhere. */
  readonly sevInfoSource: 'table' | 'legacy' | null;
  /** The raw reset address read from the SEV info block (may be 0), or null without a block. */
  readonly sevInfoResetAddress: number | null;
  readonly hashesArea: Area | null;
  readonly secretArea: Area | null;
  readonly snpMetadata: boolean;
}

const FOOTER_LE = guidToBytesLe(OVMF_TABLE_FOOTER_GUID);
const SEV_INFO_LE = guidToBytesLe(SEV_INFO_BLOCK_GUID);

/**
 * Parse the footer table of a whole firmware image (pflash unit 0 or -bios), as QEMU does.
 * @throws SUP_ERR_FIRMWARE_TABLE_INVALID "OVMF table has invalid size N" (QEMU's text).
 */
export function parseOvmfTable(image: Uint8Array): OvmfTable {
  return parseOvmfTableTail(image, image.length);
}

/**
 * Parse from the last bytes of an image of `imageSize` bytes; `tail` must hold at least
 * min(imageSize, OVMF_TABLE_TAIL_BYTES) bytes. Offsets in the result are image offsets.
 * @throws SUP_ERR_FIRMWARE_TABLE_INVALID on an invalid table length.
 */
export function parseOvmfTableTail(tail: Uint8Array, imageSize: number): OvmfTable {
  if (!Number.isSafeInteger(imageSize) || imageSize < tail.length) throw new RangeError('tail longer than the image');
  if (tail.length < Math.min(imageSize, OVMF_TABLE_TAIL_BYTES)) throw new RangeError('tail too short');
  const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  const shift = imageSize - tail.length; // image offset of tail[0]
  const at = (imageOffset: number): number => imageOffset - shift;
  const inTail = (imageOffset: number, len: number): boolean => imageOffset >= shift && imageOffset + len <= imageSize;
  const u16 = (imageOffset: number): number => view.getUint16(at(imageOffset), true);
  const u32 = (imageOffset: number): number => view.getUint32(at(imageOffset), true);

  const entries: OvmfTableEntry[] = [];
  let badEntry: OvmfTable['badEntry'] = null;
  let found = false;

  const footerGuidAt = imageSize - FOOTER_END_OFFSET;
  if (imageSize >= MIN_TABLE_IMAGE_BYTES && guidAt(tail, at(footerGuidAt), FOOTER_LE)) {
    found = true;
    const lengthAt = imageSize - FOOTER_LENGTH_OFFSET;
    const totLen = u16(lengthAt) - ENTRY_TRAILER_BYTES;
    // QEMU: invalid when negative or reaching before the start of the flash.
    if (totLen < 0 || totLen > lengthAt) {
      throw new SupervisorError('SUP_ERR_FIRMWARE_TABLE_INVALID', `OVMF table has invalid size ${totLen}`, {
        details: { tableSize: totLen },
      });
    }
    let foot = lengthAt; // image offset just past the current entry
    let remaining = totLen;
    while (remaining >= ENTRY_TRAILER_BYTES) {
      const len = u16(foot - ENTRY_TRAILER_BYTES);
      // Corrupt entry: a length shorter than its own trailer would never advance; one longer than
      // what is left would leave the table. QEMU stops its lookup at either.
      if (len < ENTRY_TRAILER_BYTES || len > remaining) {
        badEntry = { offset: foot - ENTRY_TRAILER_BYTES, length: len };
        break;
      }
      const guid = guidFromBytesLe(tail, at(foot - GUID_BYTES));
      entries.push({
        guid,
        name: OVMF_TABLE_GUID_NAMES[guid] ?? null,
        offset: foot - len,
        length: len - ENTRY_TRAILER_BYTES,
      });
      foot -= len;
      remaining -= len;
    }
  }

  const find = (guid: string): OvmfTableEntry | undefined => entries.find((e) => e.guid === guid);
  // Entries shorter than the structure QEMU reads are treated as malformed, not read past their end.
  const readArea = (guid: string): Area | null => {
    const entry = find(guid);
    return entry && entry.length >= 8 ? { base: u32(entry.offset), size: u32(entry.offset + 4) } : null;
  };

  let sevInfoSource: OvmfTable['sevInfoSource'] = null;
  let sevInfoResetAddress: number | null = null;
  const info = find(SEV_INFO_BLOCK_GUID);
  if (info) {
    if (info.length >= 4) {
      sevInfoSource = 'table';
      sevInfoResetAddress = u32(info.offset);
    }
  } else if (imageSize >= FOOTER_LENGTH_OFFSET && guidAt(tail, at(footerGuidAt), SEV_INFO_LE)) {
    // Legacy layout: the SEV info block itself where the table footer would be; its data sits
    // `len` bytes before the last 32 bytes of the image.
    const infoAt = imageSize - BYTES_AFTER_FOOTER - u16(imageSize - FOOTER_LENGTH_OFFSET);
    if (inTail(infoAt, 4)) {
      sevInfoSource = 'legacy';
      sevInfoResetAddress = u32(infoAt);
    }
  }

  return {
    found,
    entries,
    badEntry,
    sevResetAddress: sevInfoResetAddress === 0 ? null : sevInfoResetAddress,
    sevInfoSource,
    sevInfoResetAddress,
    hashesArea: readArea(SEV_HASH_TABLE_RV_GUID),
    secretArea: readArea(SEV_SECRET_GUID),
    snpMetadata: find(SEV_SNP_METADATA_GUID) !== undefined,
  };
}

/** QEMU's acceptance test for `kernel-hashes=on`: base ≠ 0 and room for the padded table. */
export function isUsableHashesArea(area: Area | null): boolean {
  return area !== null && area.base !== 0 && area.size >= PADDED_HASH_TABLE_BYTES;
}

/**
 * QEMU's refusal text for kernel-hashes with this area (7.2 sev_add_kernel_loader_hashes), or ''
 * when QEMU would accept it.
 */
export function describeHashesAreaProblem(area: Area | null): string {
  if (area === null) return 'SEV: kernel specified but guest firmware has no hashes table GUID';
  if (isUsableHashesArea(area)) return '';
  return `SEV: guest firmware hashes table area is invalid (base=${hex(area.base)} size=${hex(area.size)})`;
}

/**
 * What happens to `sev-inject-launch-secret` without a `gpa` for this area, or '' when the area
 * is usable. QEMU only checks the GUID's presence, so a zero base silently targets GPA 0.
 */
export function describeSecretAreaProblem(area: Area | null): string {
  if (area === null) return 'SEV: no secret area found in OVMF, gpa must be specified.';
  if (area.base === 0 || area.size === 0) {
    return `secret area is empty (base=${hex(area.base)} size=${hex(area.size)}): QEMU would inject at guest address ${hex(area.base)}; give an explicit gpa`;
  }
  return '';
}

/** QEMU's refusal text for SEV-ES with this image (sev_es_find_reset_vector), or '' when usable. */
export function describeSevEsProblem(table: OvmfTable): string {
  if (table.sevInfoSource === null) return 'SEV information block/Firmware GUID Table block not found in pflash rom';
  if (table.sevResetAddress === null) return 'SEV-ES reset address is zero';
  return '';
}

/** `0x%x` as QEMU prints a uint32. */
export function hex(value: number): string {
  return `0x${value.toString(16)}`;
}
