// The SNP launch digest against (1) sev-snp-measure-go's published known answers, (2) OpenSSL as an
// independent SHA-384 over the PAGE_INFO chain, (3) a reference chain written here from
// sev-snp-measure's gctx.py/guest.py, over generated firmware, sections, kernels and 1–64 vCPUs of
// several CPU models; and every refusal of inputs QEMU would not launch.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { CPU_MODELS } from '../../../src/sev/cpu-models.js';
import { parseOvmfTable } from '../../../src/sev/ovmf-table.js';
import {
  snpDigestProblems,
  snpFirmwareDigest,
  snpLaunchDigest,
  snpLaunchDigestWithVmsas,
  type SnpLaunchInputs,
} from '../../../src/sev/snp-launch-digest.js';
import { parseSnpMetadata, type SnpSection } from '../../../src/sev/snp-metadata.js';
import { buildSnpVmsas } from '../../../src/sev/snp-vmsa.js';
import { cpuSignature } from '../../../src/sev/vmsa.js';
import { buildSnpImage, SECTION } from '../../support/ovmf-images.js';
import { referencePage } from './vmsa-reference.js';

const sec = (gpa: number, size: number, type: number): SnpSection => ({ gpa, size, type, name: null });
/** The metadata of edk2's OvmfPkgX64 build (Debian's OVMF.fd, sev-snp-measure-go's testdata). */
const OVMF_SECTIONS = [
  sec(0x800000, 0x9000, 1),
  sec(0x80a000, 0x3000, 1),
  sec(0x80d000, 0x1000, 2),
  sec(0x80e000, 0x1000, 3),
  sec(0x80f000, 0x11000, 1),
];

// --- a reference chain, written from sev-snp-measure's gctx.py -------------------------------------
const sha384 = (b: Uint8Array): Buffer => createHash('sha384').update(b).digest();
function refChain(seed: Buffer, pages: readonly { type: number; gpa: bigint; contents: Buffer }[]): Buffer {
  let ld = seed;
  for (const p of pages) {
    const gpa = Buffer.alloc(8);
    gpa.writeBigUInt64LE(p.gpa);
    ld = sha384(Buffer.concat([ld, p.contents, Buffer.from([0x70, 0x00, p.type, 0, 0, 0, 0, 0]), gpa]));
  }
  return ld;
}
const Z = Buffer.alloc(48);
function refPages(i: { firmware: Buffer; sections: readonly SnpSection[]; table?: Buffer; base?: number; vmsas: Buffer[]; vmm: string }) {
  const pages: { type: number; gpa: bigint; contents: Buffer; raw?: Buffer }[] = [];
  const normal = (gpa: number, raw: Buffer): void => {
    pages.push({ type: 1, gpa: BigInt(gpa), contents: sha384(raw), raw });
  };
  const fwGpa = 0x100000000 - i.firmware.length;
  for (let o = 0; o < i.firmware.length; o += 4096) normal(fwGpa + o, i.firmware.subarray(o, o + 4096));
  const blank = (type: number, s: SnpSection): void => {
    for (let o = 0; o < s.size; o += 4096) pages.push({ type, gpa: BigInt(s.gpa + o), contents: Z });
  };
  for (const s of i.sections) {
    if (s.type === SECTION.SEC_MEM) blank(i.vmm === 'gce' ? 4 : 3, s);
    else if (s.type === SECTION.SECRETS) blank(5, s);
    else if (s.type === SECTION.CPUID) {
      if (i.vmm !== 'ec2') blank(6, s);
    } else if (s.type === SECTION.KERNEL_HASHES && i.table !== undefined) {
      const page = Buffer.alloc(s.size);
      i.table.copy(page, (i.base ?? 0) % 4096);
      for (let o = 0; o < s.size; o += 4096) normal(s.gpa + o, page.subarray(o, o + 4096));
    } else blank(3, s);
  }
  if (i.vmm === 'ec2') for (const s of i.sections) if (s.type === SECTION.CPUID) blank(6, s);
  for (const v of i.vmsas) pages.push({ type: 2, gpa: 0xfffffffff000n, contents: sha384(v), raw: v });
  return pages;
}

describe("sev-snp-measure-go's known answers (ovmf_img_1/2.json: ec2, 2 vCPUs, guest features 0x1)", () => {
  const cases = [
    [
      'a58211791a556a630a4319dc9e2ea96cc0e9784dd9f20a4fadf81b26c98d163fcdcb6703884bbbb80d7b1de45b3d84d0',
      '4c6e33087d08fa770259484dddbef367086a15c3e2cf10038dc97229d39c942671c2e22b300178f8de594a3f2fa59303',
    ],
    [
      '2027a27bb9f7acfd280e4c7bd68a73973b94bf0756e5b282e004b9395f597b8d0eb4defa7d8f6549375aa4d2b146f0f3',
      'c2c84b9364fc9f0f54b04534768c860c6e0e386ad98b96e8b98eca46ac8971d05c531ba48373f054c880cfd1f4a0a84e',
    ],
  ] as const;
  const inputs = (seed: string): SnpLaunchInputs => ({
    firmwareDigest: Buffer.from(seed, 'hex'),
    sections: OVMF_SECTIONS,
    resetAddress: 0x80b004,
    vcpus: 2,
    vcpuSignature: 0,
    guestFeatures: 1n,
    vmmType: 'ec2',
  });
  it.each(cases)('seed %s… → %s… exactly, with the ec2 VMSAs of that release (RDX 0)', (seed, expected) => {
    // Those answers predate sev-snp-measure's ec2 RDX 0x600; everything else in the chain is today's.
    const vmsas = buildSnpVmsas({ vcpus: 2, resetAddress: 0x80b004, vcpuSignature: 0, guestFeatures: 1n, vmmType: 'ec2' }).map((v) => {
      const page = Buffer.from(v);
      page.writeBigUInt64LE(0n, 0x310);
      return page;
    });
    expect(vmsas[0]?.equals(referencePage(0xfffffff0, 0, 1n, false, 'ec2'))).toBe(true);
    expect(snpLaunchDigestWithVmsas(inputs(seed), vmsas).toString('hex')).toBe(expected);
    // Today's ec2 VMSA (RDX 0x600) gives another digest, as sev-snp-measure's does.
    expect(snpLaunchDigest(inputs(seed)).toString('hex')).not.toBe(expected);
  });
});

describe('the chain against OpenSSL (an independent SHA-384)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'snp-ossl-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const opensslSha384 = (bytes: Buffer): Buffer => {
    const file = path.join(dir, 'in.bin');
    writeFileSync(file, bytes);
    return Buffer.from(execFileSync('openssl', ['dgst', '-sha384', '-binary', file]));
  };
  it('a 64 KiB firmware with every section type and 2 vCPUs', () => {
    const sections = [
      sec(0x800000, 0x2000, 1),
      sec(0x802000, 0x1000, 4),
      sec(0x803000, 0x1000, 2),
      sec(0x804000, 0x1000, 3),
      sec(0x805000, 0x1000, 0x10),
      sec(0x806000, 0x1000, 0x77),
    ];
    const image = buildSnpImage({ sections: sections.map((s) => [s.gpa, s.size, s.type] as const), hashes: [0x805c00, 0x400] });
    const table = Buffer.alloc(176, 0xa5);
    const vmsas = buildSnpVmsas({ vcpus: 2, resetAddress: 0x80b004, vcpuSignature: 0xa00f11, guestFeatures: 1n, vmmType: 'QEMU' });
    let ld: Buffer = Buffer.alloc(48);
    for (const p of refPages({ firmware: image, sections, table, base: 0x805c00, vmsas, vmm: 'QEMU' })) {
      // Every hash here is OpenSSL's: the page contents (NORMAL, VMSA) and each chain step.
      const contents = p.raw === undefined ? Z : opensslSha384(p.raw);
      const gpa = Buffer.alloc(8);
      gpa.writeBigUInt64LE(p.gpa);
      ld = opensslSha384(Buffer.concat([ld, contents, Buffer.from([0x70, 0, p.type, 0, 0, 0, 0, 0]), gpa]));
    }
    const got = snpLaunchDigest({
      firmware: image,
      sections,
      kernelHashesTable: table,
      kernelHashesBase: 0x805c00,
      resetAddress: 0x80b004,
      vcpus: 2,
      vcpuSignature: 0xa00f11,
      guestFeatures: 1n,
    });
    expect(got.toString('hex')).toBe(ld.toString('hex'));
  });
});

describe('generated inputs against the reference chain', () => {
  const models = ['EPYC', 'EPYC-Rome', 'EPYC-Milan', 'EPYC-Genoa', 'EPYC-Turin'] as const;
  it('firmware, every section type, kernel table, 1–64 vCPUs, five CPU models, three VMM types', () => {
    const sectionArb = fc.array(fc.record({ pages: fc.integer({ min: 1, max: 3 }), type: fc.constantFrom(1, 2, 3, 4, 0x10, 0x99) }), {
      minLength: 1,
      maxLength: 6,
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        sectionArb,
        fc.integer({ min: 1, max: 64 }),
        fc.constantFrom(...models),
        fc.constantFrom('QEMU' as const, 'ec2' as const, 'gce' as const),
        fc.boolean(),
        fc.constantFrom(1n, 0x21n, 0x5n),
        fc.integer({ min: 0, max: 4096 - 176 }),
        (units, secs, vcpus, model, vmm, kernel, features, inPage) => {
          let gpa = 0x800000;
          const sections = secs.map((s) => {
            const out = sec(gpa, s.pages * 4096, s.type);
            gpa += s.pages * 4096;
            return out;
          });
          const firmware = Buffer.alloc(units * 0x10000);
          for (let i = 0; i < firmware.length; i += 997) firmware[i] = (i * 31) & 0xff;
          const hashes = sections.find((s) => s.type === 0x10);
          const withKernel = kernel && hashes !== undefined;
          const base = hashes === undefined ? 0 : hashes.gpa + inPage;
          const table = Buffer.alloc(176, vcpus);
          const cpu = CPU_MODELS.get(model);
          if (cpu === undefined) throw new Error(model);
          const sig = cpuSignature(cpu.family, cpu.model, cpu.stepping);
          const fpu = vmm === 'QEMU';
          const rdx = vmm === 'QEMU' ? sig : 0x600;
          const bsp = referencePage(0xfffffff0, rdx, features, fpu, vmm);
          const ap = referencePage(0x80b004, rdx, features, fpu, vmm);
          const vmsas = Array.from({ length: vcpus }, (_, i) => (i === 0 ? bsp : ap));
          const expected = refChain(Z, refPages({ firmware, sections, ...(withKernel ? { table, base } : {}), vmsas, vmm }));
          const rest = {
            sections,
            ...(withKernel ? { kernelHashesTable: table, kernelHashesBase: base } : {}),
            resetAddress: 0x80b004,
            vcpus,
            vcpuSignature: sig,
            guestFeatures: features,
            vmmType: vmm,
          };
          const got = snpLaunchDigest({ firmware, ...rest });
          expect(got.toString('hex')).toBe(expected.toString('hex'));
          // The firmware part precomputes: seeding the chain with it gives the same digest.
          expect(snpLaunchDigest({ firmwareDigest: snpFirmwareDigest(firmware), ...rest }).equals(got)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('the firmware image: metadata as the chain reads it', () => {
  it('parses every section type and measures unknown ones as ZERO (as QEMU 10)', () => {
    const image = buildSnpImage({
      sections: [
        [0x800000, 0x1000, 1],
        [0x801000, 0x1000, 4],
        [0x802000, 0x1000, 0x20],
      ],
    });
    const md = parseSnpMetadata(image, parseOvmfTable(image));
    expect(md).toEqual({
      status: 'found',
      offset: image.length - 0x1000,
      version: 1,
      sections: [
        { gpa: 0x800000, size: 0x1000, type: 1, name: 'SEC_MEM' },
        { gpa: 0x801000, size: 0x1000, type: 4, name: 'SVSM_CAA' },
        { gpa: 0x802000, size: 0x1000, type: 0x20, name: null },
      ],
    });
  });
  it.each([
    ['a wrong signature', { signature: 'XSEV' }, 'no "ASEV" signature at image offset 0xf000'],
    ['an offset outside the image', { metaBack: 0x20000 }, 'the metadata offset 0x20000 points outside the image'],
  ])('reports %s as QEMU would ignore it', (_n, o, reason) => {
    const image = buildSnpImage({ sections: [[0x800000, 0x1000, 1]], ...o });
    expect(parseSnpMetadata(image, parseOvmfTable(image))).toEqual({ status: 'invalid', reason });
  });
});

describe('refusals: what sev-snp-measure measures and QEMU never launches', () => {
  const ok: SnpLaunchInputs = {
    firmware: Buffer.alloc(0x10000),
    sections: [sec(0x800000, 0x1000, 1), sec(0x801000, 0x1000, 0x10)],
    kernelHashesTable: Buffer.alloc(176),
    kernelHashesBase: 0x801c00,
    resetAddress: 0x80b004,
    vcpus: 1,
    vcpuSignature: 0xa00f11,
    guestFeatures: 1n,
  };
  it('accepts the good inputs', () => {
    expect(snpDigestProblems(ok)).toEqual([]);
  });
  it.each([
    [
      'no metadata',
      { sections: [] },
      'the firmware has no SEV-SNP metadata: QEMU stops the guest at its first run ("Failed to locate SEV metadata header")',
    ],
    [
      'a size not a multiple of 64 KiB',
      { firmware: Buffer.alloc(0x11000) },
      'the firmware is 69632 bytes, not a non-zero multiple of 64 KiB: QEMU refuses it as -bios ("could not load PC BIOS")',
    ],
    [
      'a kernel without a KERNEL_HASHES section',
      { sections: [sec(0x800000, 0x1000, 1)] },
      'a kernel is given, but the firmware has no KERNEL_HASHES section: QEMU would launch without measuring the kernel',
    ],
    [
      'a hashes area with base 0',
      { kernelHashesBase: 0 },
      'the firmware declares no kernel-hashes area (base 0): QEMU refuses -kernel with kernel-hashes ("hashes table area is invalid")',
    ],
    ['a table crossing its page', { kernelHashesBase: 0x801f80 }, 'the kernel-hashes table at 0x801f80 would cross its page'],
    ['0 vCPUs', { vcpus: 0 }, 'vCPUs must be 1..1024 (QEMU has no guest without a vCPU), got 0'],
    ['guest features 0', { guestFeatures: 0n }, 'guest features must set bit 0 (SNPActive): KVM always sets it for an SNP guest'],
    [
      'no AP reset address',
      { resetAddress: 0 },
      'the firmware has no AP reset address (SEV info block): QEMU refuses it ("SEV-ES reset address is zero")',
    ],
    [
      'a section that is not whole pages',
      { sections: [sec(0x800000, 0x800, 1), sec(0x801000, 0x1000, 0x10)] },
      'SEC_MEM section at 0x800000 (size 0x800) is not page-aligned',
    ],
  ])('refuses %s', (_name, change, problem) => {
    const inputs = { ...ok, ...change } as SnpLaunchInputs;
    expect(snpDigestProblems(inputs)).toContain(problem);
    let caught: unknown;
    try {
      snpLaunchDigest(inputs);
    } catch (error) {
      caught = error;
    }
    expect(hasCode(caught, 'SUP_ERR_VERIFY_UNSUPPORTED')).toBe(true);
  });
});
