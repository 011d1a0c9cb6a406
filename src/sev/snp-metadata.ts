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
  if (entry.length < 4 || entry.offset + 4 > image.length) return { status: 'invalid', reason: 'the metadata entry is shorter than its u32 offset' };
  const back = view.getUint32(entry.offset, true);
  const offset = image.length - back;
  if (back === 0 || offset < 0 || offset + HEADER_BYTES > image.length) {
    return { status: 'invalid', reason: `the metadata offset 0x${back.toString(16)} points outside the image` };
  }
  if (view.getUint32(offset, true) !== ASEV) return { status: 'invalid', reason: `no "ASEV" signature at image offset 0x${offset.toString(16)}` };
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
