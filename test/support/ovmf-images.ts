// Test helper: synthetic OVMF images with a footer GUID table, built independently of
// src/sev/ovmf-table.ts (own GUID byte order, own layout code) so the parser is checked against
// a second implementation of the format: entries are `data ‖ u16 len ‖ GUID(LE)`, the footer is
// `u16 total ‖ footer GUID` ending 32 bytes before the end of the image. The one builder of
// synthetic firmware for tests; no real firmware code in them, so never boot one, except
// haltingImage(), whose reset vector halts the vCPU (for lifecycle tests, where the guest's code is
// not the subject).

/** GUID text → little-endian bytes, written out by hand here on purpose. */
export function guidLe(guid: string): Buffer {
  const h = guid.replaceAll('-', '');
  const swap = (s: string): string => (s.match(/../g) ?? []).reverse().join('');
  return Buffer.from(swap(h.slice(0, 8)) + swap(h.slice(8, 12)) + swap(h.slice(12, 16)) + h.slice(16), 'hex');
}

export const FOOTER = '96b582de-1fb2-45f7-baea-a366c55a082d';
export const SEV_INFO = '00f771de-1a7e-4fcb-890e-68c77e2fb44e';
export const HASHES = '7255371f-3a3b-4b04-927b-1da6efa8d454';
export const SECRET = '4c2eb361-7d9b-4cc3-8081-127c90d3d294';
export const SNP_META = 'dc886566-984a-4798-a75e-5585a7bf67cc';

export interface EntrySpec {
  readonly guid: string;
  readonly data: Buffer;
  /** Override the entry's u16 length (to build corrupt tables). */
  readonly len?: number;
}

export function u32s(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  for (const [i, v] of values.entries()) b.writeUInt32LE(v, 4 * i);
  return b;
}

/** buildImage's default size. */
export const IMAGE_BYTES = 64 * 1024;

/**
 * An image of `size` bytes (`fill`: 0xff, as erased flash, unless told) whose table holds
 * `entries`, the first one nearest the footer (QEMU's walking order). `totalLen` overrides the
 * footer's u16.
 */
export function buildImage(entries: readonly EntrySpec[], options: { size?: number; totalLen?: number; fill?: number } = {}): Buffer {
  const size = options.size ?? IMAGE_BYTES;
  const image = Buffer.alloc(size, options.fill ?? 0xff);
  const parts: Buffer[] = [];
  // Build from the start of the table to the footer: the last entry in `entries` comes first.
  for (const e of [...entries].reverse()) {
    const len = Buffer.alloc(2);
    len.writeUInt16LE(e.len ?? e.data.length + 18);
    parts.push(e.data, len, guidLe(e.guid));
  }
  const body = Buffer.concat(parts);
  const total = Buffer.alloc(2);
  total.writeUInt16LE(options.totalLen ?? body.length + 18);
  const table = Buffer.concat([body, total, guidLe(FOOTER)]);
  table.copy(image, size - 32 - table.length);
  return image;
}

/** The usual Debian-like table: SEV info, secret, hashes, SNP metadata. */
export function debianLikeEntries(o: { reset?: number; hashes?: [number, number]; secret?: [number, number] } = {}): EntrySpec[] {
  return [
    { guid: SEV_INFO, data: u32s(o.reset ?? 0x80b004) },
    { guid: SECRET, data: u32s(...(o.secret ?? [0, 0])) },
    { guid: HASHES, data: u32s(...(o.hashes ?? [0, 0])) },
    { guid: SNP_META, data: u32s(0x52c) },
  ];
}

export const sevInfo = (reset: number): EntrySpec => ({ guid: SEV_INFO, data: u32s(reset) });
export const hashes = (base: number, size: number): EntrySpec => ({ guid: HASHES, data: u32s(base, size) });
export const secret = (base: number, size: number): EntrySpec => ({ guid: SECRET, data: u32s(base, size) });

/** Like Debian's OVMF (zero-filled): an SEV info block, and empty hashes and secret areas. */
export const DEBIAN_LIKE_IMAGE = buildImage([hashes(0, 0), secret(0, 0), sevInfo(0x80b004)], { fill: 0 });
/** Like an OVMF AmdSev build of the 2022 era: areas at 0x80f000 (secret) and 0x80fc00 (hashes). */
export const AMDSEV_LIKE_IMAGE = buildImage([hashes(0x80fc00, 0x400), secret(0x80f000, 0xc00), sevInfo(0x80b004)], { fill: 0 });

/** Real-mode code for the reset vector (0xFFFFFFF0: the image's last 16 bytes): `hlt; jmp short -3`. */
const HALT_FOREVER = Buffer.from([0xf4, 0xeb, 0xfd]);

/**
 * A bootable image that does nothing: the vCPU halts at its first instruction and stays halted
 * (interrupts are off at reset; the jump catches an NMI), so a guest that QEMU reports running
 * costs no CPU under TCG, where booting OVMF costs seconds. Its table is `entries` (Debian's SEV
 * info block and empty areas unless told), which is all sevsup and the simulator read of it.
 */
export function haltingImage(entries: readonly EntrySpec[] = [hashes(0, 0), secret(0, 0), sevInfo(0x80b004)]): Buffer {
  const image = buildImage(entries, { fill: 0 });
  HALT_FOREVER.copy(image, image.length - 16);
  return image;
}

/** SNP metadata section types, written out here (edk2 / QEMU pc.h numbering). */
export const SECTION = { SEC_MEM: 1, SECRETS: 2, CPUID: 3, SVSM_CAA: 4, KERNEL_HASHES: 0x10 } as const;

/**
 * An image whose table has an SEV info block, a hashes area and SNP metadata: the `ASEV` header
 * (signature, length, version, count) and one {gpa, size, type} per section, placed `metaBack`
 * bytes before the end of the image (an offset inside the table-free part, as edk2 puts it).
 */
export function buildSnpImage(o: {
  sections: readonly (readonly [number, number, number])[];
  size?: number;
  reset?: number;
  hashes?: [number, number];
  version?: number;
  signature?: string;
  metaBack?: number;
}): Buffer {
  const back = o.metaBack ?? 0x1000;
  const image = buildImage(
    [
      { guid: SEV_INFO, data: u32s(o.reset ?? 0x80b004) },
      { guid: HASHES, data: u32s(...(o.hashes ?? [0, 0])) },
      { guid: SNP_META, data: u32s(back) },
    ],
    { size: o.size ?? 64 * 1024 },
  );
  const header = Buffer.concat([
    Buffer.from(o.signature ?? 'ASEV', 'latin1'),
    u32s(16 + 12 * o.sections.length, o.version ?? 1, o.sections.length),
    ...o.sections.map(([gpa, size, type]) => u32s(gpa, size, type)),
  ]);
  if (back <= image.length) header.copy(image, image.length - back); // else: an offset pointing outside
  return image;
}
