// The firmware's SEV-SNP metadata: the footer-table entry `dc886566-…` holds a u32 offset from the
// image end to an `ASEV` header (u32 signature, u32 length, u32 version, u32 count) followed by
// `count` section descriptors {u32 gpa, u32 size, u32 type} (QEMU pc_system_parse_sev_metadata,
// edk2 OvmfPkg ResetVector; snp-facts §1.2). Section types: 1 SEC_MEM, 2 SECRETS, 3 CPUID,
// 4 SVSM_CAA (edk2), 0x10 KERNEL_HASHES; QEMU 10 measures any other type as ZERO pages.
// Owns: that layout, bounds-checked for hostile images, and the names of the section types.
// Pure: bytes in, description out. Must not: read files, judge a VM's config, or compute digests.
import type { OvmfTable } from './ovmf-table.js';
import { SEV_SNP_METADATA_GUID } from './ovmf-table.js';

export const SNP_SECTION = {
  SEC_MEM: 1,
  SECRETS: 2,
  CPUID: 3,
  SVSM_CAA: 4,
  KERNEL_HASHES: 0x10,
} as const;

export type SnpSectionName = keyof typeof SNP_SECTION;

const NAME_BY_TYPE: ReadonlyMap<number, SnpSectionName> = new Map(
  (Object.entries(SNP_SECTION) as [SnpSectionName, number][]).map(([name, type]) => [type, name]),
);

/** "ASEV" as the firmware stores it (little-endian u32 0x56455341). */
const ASEV = 0x56455341;
const HEADER_BYTES = 16;
const DESC_BYTES = 12;
/** edk2 writes version 1; sev-snp-measure refuses any other (QEMU 10 does not check). */
export const SNP_METADATA_VERSION = 1;

export interface SnpSection {
  readonly gpa: number;
  readonly size: number;
  readonly type: number;
  /** The type's name, or null for a type neither QEMU nor edk2 defines. */
  readonly name: SnpSectionName | null;
}

export type SnpMetadata =
  | { readonly status: 'absent' }
  /** The entry exists but QEMU would not use it (it then reports "Failed to locate SEV metadata header"). */
  | { readonly status: 'invalid'; readonly reason: string }
  | {
      readonly status: 'found';
      /** Image offset of the ASEV header. */
      readonly offset: number;
      readonly version: number;
      readonly sections: readonly SnpSection[];
    };

/** The name of a section type, or `type 0x…` for an unknown one. */
export function snpSectionLabel(type: number): string {
  return NAME_BY_TYPE.get(type) ?? `type 0x${type.toString(16)}`;
}

/**
 * Parse the SNP metadata of a whole image whose footer table is `table` (parseOvmfTable(image)).
 * Invalid metadata (entry too short, offset outside the image, wrong signature, length too short
 * for its descriptors) is what QEMU silently ignores: reported as `invalid` with why.
 */
export function parseSnpMetadata(image: Uint8Array, table: OvmfTable): SnpMetadata {
  const entry = table.entries.find((e) => e.guid === SEV_SNP_METADATA_GUID);
  if (entry === undefined) return { status: 'absent' };
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (entry.length < 4 || entry.offset + 4 > image.length)
    return { status: 'invalid', reason: 'the metadata entry is shorter than its u32 offset' };
  const back = view.getUint32(entry.offset, true);
  const offset = image.length - back;
  if (back === 0 || offset < 0 || offset + HEADER_BYTES > image.length) {
    return { status: 'invalid', reason: `the metadata offset 0x${back.toString(16)} points outside the image` };
  }
  if (view.getUint32(offset, true) !== ASEV)
    return { status: 'invalid', reason: `no "ASEV" signature at image offset 0x${offset.toString(16)}` };
  const length = view.getUint32(offset + 4, true);
  const version = view.getUint32(offset + 8, true);
  const count = view.getUint32(offset + 12, true);
  // QEMU: the header's length must cover the descriptors it announces.
  if (length < HEADER_BYTES + count * DESC_BYTES || offset + HEADER_BYTES + count * DESC_BYTES > image.length) {
    return { status: 'invalid', reason: `the metadata length ${length} does not hold its ${count} section descriptors` };
  }
  const sections: SnpSection[] = [];
  for (let i = 0; i < count; i++) {
    const at = offset + HEADER_BYTES + i * DESC_BYTES;
    const type = view.getUint32(at + 8, true);
    sections.push({ gpa: view.getUint32(at, true), size: view.getUint32(at + 4, true), type, name: NAME_BY_TYPE.get(type) ?? null });
  }
  return { status: 'found', offset, version, sections };
}

/** The `ASEV` header and descriptors for `sections` (what edk2's ResetVector carries). */
export function encodeSnpMetadata(sections: readonly Omit<SnpSection, 'name'>[], version = SNP_METADATA_VERSION): Buffer {
  const out = Buffer.alloc(HEADER_BYTES + DESC_BYTES * sections.length);
  out.writeUInt32LE(ASEV, 0);
  out.writeUInt32LE(out.length, 4);
  out.writeUInt32LE(version, 8);
  out.writeUInt32LE(sections.length, 12);
  sections.forEach((s, i) => {
    const at = HEADER_BYTES + i * DESC_BYTES;
    out.writeUInt32LE(s.gpa, at);
    out.writeUInt32LE(s.size, at + 4);
    out.writeUInt32LE(s.type, at + 8);
  });
  return out;
}

/**
 * A copy of `image` whose SNP metadata is `sections`: the header goes where the old one was when it
 * fits in the old header's length, else into the last run of filler bytes (all 0x00 or all 0xff,
 * 16-aligned) within the image's last 64 KiB before the footer table; the metadata entry's offset is rewritten. For test
 * firmware (scripts/make-test-firmware.mjs): the image must already have a metadata entry.
 * @throws RangeError when the image has no metadata entry or no room for the header.
 */
export function withSnpMetadata(
  image: Uint8Array,
  table: OvmfTable,
  sections: readonly Omit<SnpSection, 'name'>[],
  version = SNP_METADATA_VERSION,
): Buffer {
  const entry = table.entries.find((e) => e.guid === SEV_SNP_METADATA_GUID);
  if (entry === undefined || entry.length < 4) throw new RangeError('the image has no SEV-SNP metadata entry in its footer table');
  const out = Buffer.from(image);
  const header = encodeSnpMetadata(sections, version);
  const old = parseSnpMetadata(out, table);
  let at: number | undefined;
  if (old.status === 'found' && header.length <= out.readUInt32LE(old.offset + 4)) {
    at = old.offset;
  } else {
    const tableStart = Math.min(...table.entries.map((e) => e.offset), out.length - 64);
    const floor = Math.max(0, out.length - 0x10000);
    let run = 0;
    for (let i = tableStart - 1; i >= floor; i--) {
      const filler = out[i] === 0 || out[i] === 0xff;
      run = filler && (run === 0 || out[i] === out[i + 1]) ? run + 1 : filler ? 1 : 0;
      if (run >= header.length + 16 && i % 16 === 0) {
        at = i;
        break;
      }
    }
  }
  if (at === undefined) throw new RangeError(`no room for a ${header.length}-byte SNP metadata header in the image's last 64 KiB`);
  header.copy(out, at);
  out.writeUInt32LE(out.length - at, entry.offset);
  return out;
}
