import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import {
  describeHashesAreaProblem,
  describeSecretAreaProblem,
  describeSevEsProblem,
  isUsableHashesArea,
  parseOvmfTable,
} from '../../../src/sev/ovmf-table.js';
import { errorOf } from '../../support/sev-helpers.js';
import { buildImage, debianLikeEntries, guidLe, HASHES, SECRET, SEV_INFO, SNP_META, u32s } from '../../support/ovmf-images.js';

function expectInvalidSize(image: Buffer, size: number): void {
  const caught = errorOf(() => parseOvmfTable(image));
  expect(hasCode(caught, 'SUP_ERR_FIRMWARE_TABLE_INVALID')).toBe(true);
  expect((caught as Error).message).toBe(`OVMF table has invalid size ${size}`);
}

describe('parseOvmfTable on synthetic images', () => {
  it('reads every entry, the reset address and both areas of a valid table', () => {
    const image = buildImage(debianLikeEntries({ reset: 0x80b004, hashes: [0x80a000, 0x400], secret: [0x80b000, 0x1000] }));
    const t = parseOvmfTable(image);
    expect(t.found).toBe(true);
    expect(t.entries.map((e) => e.guid)).toEqual([SEV_INFO, SECRET, HASHES, SNP_META]);
    expect(t.entries.map((e) => e.length)).toEqual([4, 8, 8, 4]);
    // The first entry's data ends right before its 18-byte trailer, just before the footer.
    expect(t.entries[0]?.offset).toBe(image.length - 32 - 18 - 18 - 4);
    expect(t.sevResetAddress).toBe(0x80b004);
    expect(t.sevInfoSource).toBe('table');
    expect(t.hashesArea).toEqual({ base: 0x80a000, size: 0x400 });
    expect(t.secretArea).toEqual({ base: 0x80b000, size: 0x1000 });
    expect(t.snpMetadata).toBe(true);
    expect(t.badEntry).toBeNull();
  });

  it('finds nothing without the footer GUID, and in images too small for QEMU to look', () => {
    const plain = Buffer.alloc(8192, 0xff);
    expect(parseOvmfTable(plain)).toMatchObject({
      found: false,
      entries: [],
      sevResetAddress: null,
      hashesArea: null,
      secretArea: null,
      snpMetadata: false,
    });
    // A valid table in a 4095-byte image: QEMU skips flashes below TARGET_PAGE_SIZE.
    const small = buildImage(debianLikeEntries(), { size: 4095 });
    expect(parseOvmfTable(small).found).toBe(false);
    expect(parseOvmfTable(buildImage(debianLikeEntries(), { size: 4096 })).found).toBe(true);
  });

  it('treats truncated images as having no table', () => {
    for (const size of [0, 1, 17, 49, 50, 51, 100]) {
      expect(parseOvmfTable(Buffer.alloc(size, 0xff)).found).toBe(false);
    }
    const full = buildImage(debianLikeEntries());
    // Cutting the end off moves the footer away from where QEMU looks.
    expect(parseOvmfTable(full.subarray(0, full.length - 1)).found).toBe(false);
  });

  it("rejects footer lengths below its own size or reaching before the image, with QEMU's text", () => {
    expectInvalidSize(buildImage(debianLikeEntries(), { totalLen: 0 }), -18);
    expectInvalidSize(buildImage(debianLikeEntries(), { totalLen: 17 }), -1);
    expectInvalidSize(buildImage([], { size: 4096, totalLen: 4096 - 50 + 18 + 1 }), 4096 - 50 + 1);
    // Exactly up to the start of the image is still valid for QEMU.
    expect(parseOvmfTable(buildImage([], { size: 4096, totalLen: 4096 - 50 + 18 })).found).toBe(true);
  });

  it('accepts an empty table', () => {
    const t = parseOvmfTable(buildImage([]));
    expect(t).toMatchObject({ found: true, entries: [], hashesArea: null, secretArea: null, sevResetAddress: null });
  });

  it('stops at an entry whose length is below its trailer or beyond the table, never looping', () => {
    const zero = buildImage([
      { guid: SEV_INFO, data: u32s(0x80b004) },
      { guid: HASHES, data: u32s(1, 0x400), len: 0 },
    ]);
    const t = parseOvmfTable(zero);
    expect(t.entries.map((e) => e.guid)).toEqual([SEV_INFO]);
    expect(t.badEntry?.length).toBe(0);
    expect(t.hashesArea).toBeNull();

    const tooLong = buildImage([
      { guid: HASHES, data: u32s(1, 0x400), len: 0xffff },
      { guid: SECRET, data: u32s(2, 0x1000) },
    ]);
    const t2 = parseOvmfTable(tooLong);
    expect(t2.entries).toEqual([]);
    expect(t2.badEntry?.length).toBe(0xffff);
    expect(t2.secretArea).toBeNull();
  });

  it("reports missing entries as absent, with QEMU's refusal texts", () => {
    const t = parseOvmfTable(buildImage([{ guid: SNP_META, data: u32s(1) }]));
    expect(t.hashesArea).toBeNull();
    expect(t.secretArea).toBeNull();
    expect(t.sevResetAddress).toBeNull();
    expect(describeHashesAreaProblem(t.hashesArea)).toBe('SEV: kernel specified but guest firmware has no hashes table GUID');
    expect(describeSecretAreaProblem(t.secretArea)).toBe('SEV: no secret area found in OVMF, gpa must be specified.');
    expect(describeSevEsProblem(t)).toBe('SEV information block/Firmware GUID Table block not found in pflash rom');
  });

  it("takes the first match walking from the footer, as QEMU's lookup does", () => {
    const t = parseOvmfTable(
      buildImage([
        { guid: HASHES, data: u32s(0x1000, 0x400) },
        { guid: HASHES, data: u32s(0x2000, 0x800) },
      ]),
    );
    expect(t.hashesArea).toEqual({ base: 0x1000, size: 0x400 });
    expect(t.entries).toHaveLength(2);
  });

  it('does not read area entries shorter than {base, size}', () => {
    const t = parseOvmfTable(
      buildImage([
        { guid: HASHES, data: u32s(0x1000) },
        { guid: SEV_INFO, data: Buffer.of(1, 2) },
      ]),
    );
    expect(t.hashesArea).toBeNull();
    expect(t.sevResetAddress).toBeNull();
    expect(t.entries.map((e) => e.length)).toEqual([4, 2]);
  });

  it('says "reset address is zero" when the SEV info block holds 0', () => {
    const t = parseOvmfTable(buildImage(debianLikeEntries({ reset: 0 })));
    expect(t.sevResetAddress).toBeNull();
    expect(t.sevInfoResetAddress).toBe(0);
    expect(describeSevEsProblem(t)).toBe('SEV-ES reset address is zero');
  });

  it('falls back to the legacy SEV info block when there is no footer table', () => {
    // Legacy layout: reset address ‖ u16 len ‖ SEV info GUID, ending 32 bytes before the end.
    const image = Buffer.alloc(8192, 0xff);
    const block = Buffer.concat([u32s(0xffffe004), Buffer.from([22, 0]), guidLe(SEV_INFO)]);
    block.copy(image, image.length - 32 - block.length);
    const t = parseOvmfTable(image);
    expect(t.found).toBe(false);
    expect(t.sevInfoSource).toBe('legacy');
    expect(t.sevResetAddress).toBe(0xffffe004);
    expect(describeSevEsProblem(t)).toBe('');
    // A legacy length pointing before the image is ignored, not read out of bounds.
    const bad = Buffer.alloc(64, 0xff);
    Buffer.concat([Buffer.from([0xff, 0xff]), guidLe(SEV_INFO)]).copy(bad, 64 - 32 - 18);
    expect(parseOvmfTable(bad).sevInfoSource).toBeNull();
  });

  it('never throws anything but the invalid-size error on mutated images, and always terminates', () => {
    const base = buildImage(debianLikeEntries({ hashes: [0x80a000, 0x400] }), { size: 4096 + 256 });
    const tableStart = base.length - 32 - 200;
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(199 + 32), fc.nat(255)), { maxLength: 12 }), fc.nat(base.length), (edits, cut) => {
        const image = Buffer.from(base);
        for (const [at, value] of edits) image[tableStart + at] = value;
        for (const candidate of [image, image.subarray(0, cut)]) {
          try {
            const t = parseOvmfTable(candidate);
            for (const e of t.entries) {
              expect(e.offset).toBeGreaterThanOrEqual(0);
              expect(e.offset + e.length + 18).toBeLessThanOrEqual(candidate.length);
            }
          } catch (error) {
            expect(hasCode(error, 'SUP_ERR_FIRMWARE_TABLE_INVALID')).toBe(true);
          }
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe('hashes-area verdicts', () => {
  it('accepts base ≠ 0 and size ≥ 176 only', () => {
    expect(isUsableHashesArea({ base: 0x80a000, size: 176 })).toBe(true);
    expect(isUsableHashesArea({ base: 0x80a000, size: 175 })).toBe(false);
    expect(isUsableHashesArea({ base: 0, size: 0x400 })).toBe(false);
    expect(isUsableHashesArea(null)).toBe(false);
    expect(describeHashesAreaProblem({ base: 0x80a000, size: 0x400 })).toBe('');
    expect(describeHashesAreaProblem({ base: 0, size: 0 })).toBe('SEV: guest firmware hashes table area is invalid (base=0x0 size=0x0)');
    expect(describeHashesAreaProblem({ base: 0x80a000, size: 0xaf })).toBe(
      'SEV: guest firmware hashes table area is invalid (base=0x80a000 size=0xaf)',
    );
  });

  it('flags an empty secret area (QEMU would inject at GPA 0)', () => {
    expect(describeSecretAreaProblem({ base: 0, size: 0 })).toMatch(/guest address 0x0; give an explicit gpa/);
    expect(describeSecretAreaProblem({ base: 0x80b000, size: 0x1000 })).toBe('');
  });
});
