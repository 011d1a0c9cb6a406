import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { buildVmsas, cpuSignature, type SevEsParams } from '../../../src/sev/vmsa.js';
import { errorOf } from '../../support/sev-helpers.js';
import { referencePage } from './vmsa-reference.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const base: SevEsParams = { vcpus: 2, family: 25, model: 1, stepping: 1, resetAddress: 0x80b004, vmsaInit: 'legacy' };

describe('SEV-ES VMSAs (legacy KVM_SEV_ES_INIT)', () => {
  it("match the pages libvirt's validator builds (sha256 vectors for Debian OVMF, reset 0x80b004)", () => {
    const [bsp, ap] = buildVmsas(base);
    expect(sha(bsp ?? Buffer.alloc(0))).toBe('f8b52f775502472e5797d2674d9de21f6abc05dc05e9bc49cbb7b6a13688d5e7');
    expect(sha(ap ?? Buffer.alloc(0))).toBe('bcee5cb289f72882da17abd8dca5e8a7e9f8e2033e7ad96b4db0ab1a383a6487');
    const [bsp2, ap2] = buildVmsas({ ...base, family: 23, model: 49, stepping: 0 });
    expect(sha(bsp2 ?? Buffer.alloc(0))).toBe('c0ad5dc8305470b14945bf19c79b6b25ef0aeb1cbbda8318902f731078e2641b');
    expect(sha(ap2 ?? Buffer.alloc(0))).toBe('e66281015adf6958a619ec00d5b96ce5cbbca43b48d76b0778467bff07dd0118');
  });

  it('equal, byte for byte, a page laid out from the save-area field list with zero x87/SSE words', () => {
    const [bsp, ap] = buildVmsas({ ...base, family: 26, model: 0, stepping: 0, resetAddress: 0x808004 });
    expect(bsp?.equals(referencePage(0xfffffff0, 0xb00f00, 0n, false))).toBe(true);
    expect(ap?.equals(referencePage(0x808004, 0xb00f00, 0n, false))).toBe(true);
  });

  it('gives vCPU 0 the reset vector and every other vCPU the AP reset address', () => {
    const pages = buildVmsas({ ...base, vcpus: 4 });
    expect(pages).toHaveLength(4);
    const [bsp, ap] = pages;
    expect(bsp?.readBigUInt64LE(0x18)).toBe(0xffff0000n); // CS base
    expect(bsp?.readBigUInt64LE(0x178)).toBe(0xfff0n); // RIP
    expect(ap?.readBigUInt64LE(0x18)).toBe(0x800000n);
    expect(ap?.readBigUInt64LE(0x178)).toBe(0xb004n);
    expect(pages[3]?.equals(ap ?? Buffer.alloc(0))).toBe(true);
    expect(buildVmsas({ ...base, vcpus: 1 })).toHaveLength(1);
  });

  it('puts the CPU signature in RDX as CPUID 1 encodes it', () => {
    expect(cpuSignature(25, 1, 1)).toBe(0xa00f11); // EPYC Milan
    expect(cpuSignature(23, 49, 0)).toBe(0x830f10); // EPYC Rome
    expect(cpuSignature(6, 0x55, 4)).toBe(0x50654);
    expect(buildVmsas(base)[0]?.readBigUInt64LE(0x310)).toBe(0xa00f11n);
  });

  it('carries SEV features a DebugSwap host kernel set, and only them', () => {
    const plain = buildVmsas(base)[1] ?? Buffer.alloc(0);
    const swapped = buildVmsas({ ...base, sevFeatures: 0x20 })[1] ?? Buffer.alloc(0);
    expect(swapped.readBigUInt64LE(0x3b0)).toBe(0x20n);
    expect([...swapped.keys()].filter((i) => swapped[i] !== plain[i])).toEqual([0x3b0]);
    expect(swapped.equals(referencePage(0x80b004, 0xa00f11, 0x20n, false))).toBe(true);
  });
});

describe('SEV-ES VMSAs (KVM_SEV_INIT2)', () => {
  it('adds FCW 0x37f and MXCSR 0x1f80 and nothing else', () => {
    const legacy = buildVmsas(base)[1] ?? Buffer.alloc(0);
    const init2 = buildVmsas({ ...base, vmsaInit: 'init2' })[1] ?? Buffer.alloc(0);
    expect(init2.readUInt16LE(0x410)).toBe(0x37f);
    expect(init2.readUInt32LE(0x408)).toBe(0x1f80);
    const diff = [...init2.keys()].filter((i) => init2[i] !== legacy[i]);
    expect(diff).toEqual([0x408, 0x409, 0x410, 0x411]);
  });

  it("equal sev-snp-measure's QEMU pages (BSP and AP, with and without SEV features)", () => {
    for (const features of [0n, 0x1n, 0x21n]) {
      const [bsp, ap] = buildVmsas({ ...base, family: 25, model: 17, stepping: 0, vmsaInit: 'init2', sevFeatures: features });
      expect(bsp?.equals(referencePage(0xfffffff0, 0xa10f10, features, true)), `bsp ${features}`).toBe(true);
      expect(ap?.equals(referencePage(0x80b004, 0xa10f10, features, true)), `ap ${features}`).toBe(true);
    }
  });
});

describe('SEV-ES VMSA parameters', () => {
  it('refuses out-of-range values', () => {
    const bads: Partial<Record<keyof SevEsParams, unknown>>[] = [
      { vcpus: 0 },
      { vcpus: 1025 },
      { vcpus: 1.5 },
      { model: 256 },
      { stepping: 16 },
      { family: -1 },
      { family: 0x10f },
      { resetAddress: 0 },
      { resetAddress: 2 ** 32 },
      { sevFeatures: -1n },
      { sevFeatures: 2n ** 64n },
      { vmsaInit: 'init3' },
    ];
    for (const bad of bads) {
      const params = { ...base, ...bad } as SevEsParams; // deliberately wrong shapes
      expect(
        hasCode(
          errorOf(() => buildVmsas(params)),
          'SUP_ERR_VERIFY_UNSUPPORTED',
        ),
        JSON.stringify(bad, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
      ).toBe(true);
    }
  });

  it('does not need an AP reset address for a single vCPU', () => {
    expect(buildVmsas({ ...base, vcpus: 1, resetAddress: 0 })).toHaveLength(1);
  });
});
