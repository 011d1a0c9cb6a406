// SNP firmware checks before spawn: each refusal with its words, on images built independently
// (ovmf-images.ts), and withSnpMetadata (the test firmware maker's module) read back by the parser.
import { describe, expect, it } from 'vitest';
import { parseOvmfTable } from '../../../src/sev/ovmf-table.js';
import { snpFirmwareProblems } from '../../../src/sev/snp-firmware-checks.js';
import { parseSnpMetadata, withSnpMetadata } from '../../../src/sev/snp-metadata.js';
import { buildImage, buildSnpImage, SEV_INFO, u32s } from '../../support/ovmf-images.js';

const GOOD: readonly (readonly [number, number, number])[] = [
  [0x800000, 0x9000, 1],
  [0x80d000, 0x1000, 2],
  [0x80e000, 0x1000, 3],
  [0x80f000, 0x1000, 0x10],
  [0x810000, 0x1000, 4],
];
const facts = (image: Buffer) => {
  const table = parseOvmfTable(image);
  return { size: image.length, table, metadata: parseSnpMetadata(image, table) };
};
const NONE = { kernel: false, kernelHashes: false };
const KH = { kernel: true, kernelHashes: true };

describe('snpFirmwareProblems', () => {
  it('accepts a firmware with every known section, with and without a measured kernel', () => {
    const f = facts(buildSnpImage({ sections: GOOD, hashes: [0x80fc00, 0x400] }));
    expect(snpFirmwareProblems(f, NONE)).toEqual([]);
    expect(snpFirmwareProblems(f, KH)).toEqual([]);
  });

  it.each([
    [
      'no metadata',
      buildImage([{ guid: SEV_INFO, data: u32s(0x80b004) }]),
      NONE,
      'the firmware has no SEV-SNP metadata: QEMU stops the guest at its first run with "sev_snp_launch_finish: Failed to locate SEV metadata header"',
    ],
    [
      'a bad signature',
      buildSnpImage({ sections: GOOD, signature: 'XSEV' }),
      NONE,
      'its SEV-SNP metadata is unusable (no "ASEV" signature at image offset 0xf000): QEMU stops the guest at its first run with "sev_snp_launch_finish: Failed to locate SEV metadata header"',
    ],
    [
      'version 2',
      buildSnpImage({ sections: GOOD, version: 2 }),
      NONE,
      'SNP metadata version 2 is not 1: QEMU does not check it, but no known firmware writes another; refused',
    ],
    [
      'an unknown section type',
      buildSnpImage({ sections: [...GOOD, [0x811000, 0x1000, 0x20]] }),
      NONE,
      'SNP metadata section type 0x20 at 0x811000 is of no known type: QEMU would measure it as ZERO pages',
    ],
    ['a zero AP reset address', buildSnpImage({ sections: GOOD, reset: 0 }), NONE, 'SEV-ES reset address is zero'],
    [
      'a size that is not a multiple of 64 KiB',
      buildSnpImage({ sections: GOOD, size: 0x18000 }),
      NONE,
      'the firmware is 98304 bytes, not a non-zero multiple of 64 KiB: QEMU refuses it as -bios ("could not load PC BIOS")',
    ],
    [
      'kernel-hashes=1 without a kernel',
      buildSnpImage({ sections: GOOD, hashes: [0x80fc00, 0x400] }),
      { kernel: false, kernelHashes: true },
      'kernel-hashes=1 without a kernel: QEMU 10 aborts (assert kernel_hashes_data) on a firmware with a KERNEL_HASHES section',
    ],
    [
      'a kernel without a KERNEL_HASHES section',
      buildSnpImage({ sections: GOOD.filter((s) => s[2] !== 0x10), hashes: [0x80fc00, 0x400] }),
      { kernel: true, kernelHashes: false },
      'a kernel is given, but the firmware has no KERNEL_HASHES section: QEMU launches and the kernel is never measured; use a firmware built with one (OvmfPkg/AmdSev)',
    ],
    [
      'a hashes area QEMU refuses',
      buildSnpImage({ sections: GOOD, hashes: [0x80fc00, 0x10] }),
      KH,
      'SEV: guest firmware hashes table area is invalid (base=0x80fc00 size=0x10)',
    ],
    [
      'a table crossing its page',
      buildSnpImage({ sections: GOOD, hashes: [0x80ffc0, 0x400] }),
      KH,
      'the kernel-hashes table at 0x80ffc0 would cross its page',
    ],
  ])('refuses %s', (_name, image, use, problem) => {
    expect(snpFirmwareProblems(facts(image), use)).toContain(problem);
  });
});

describe('withSnpMetadata', () => {
  it('writes metadata the parser reads back, in place when it fits, else into filler bytes', () => {
    const image = buildSnpImage({ sections: GOOD });
    const table = parseOvmfTable(image);
    const shorter = withSnpMetadata(image, table, [{ gpa: 0x800000, size: 0x1000, type: 1 }]);
    expect(parseSnpMetadata(shorter, table)).toMatchObject({
      status: 'found',
      offset: image.length - 0x1000,
      sections: [{ gpa: 0x800000, name: 'SEC_MEM' }],
    });
    const longer = [...GOOD, [0x811000, 0x1000, 0x20], [0x812000, 0x1000, 1]].map(([gpa, size, type]) => ({
      gpa: gpa ?? 0,
      size: size ?? 0,
      type: type ?? 0,
    }));
    const moved = withSnpMetadata(image, table, longer, 3);
    const md = parseSnpMetadata(moved, table);
    expect(md).toMatchObject({ status: 'found', version: 3 });
    expect(md.status === 'found' && md.sections.length).toBe(7);
    expect(md.status === 'found' && md.offset).not.toBe(image.length - 0x1000);
  });
});
