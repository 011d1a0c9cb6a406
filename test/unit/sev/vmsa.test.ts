import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { buildVmsas, cpuSignature, type SevEsParams } from '../../../src/sev/vmsa.js';
import { errorOf } from '../../support/sev-helpers.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const base: SevEsParams = { vcpus: 2, family: 25, model: 1, stepping: 1, resetAddress: 0x80b004, vmsaInit: 'legacy' };

/**
 * A second, independent description of the save area: sev-snp-measure's field list (names and
 * sizes in order, as in its ctypes SevEsSaveArea), turned into offsets here by summing sizes.
 */
const FIELDS: readonly (readonly [string, number])[] = [
  ...['es', 'cs', 'ss', 'ds', 'fs', 'gs', 'gdtr', 'ldtr', 'idtr', 'tr'].map((s) => [s, 16] as const),
  ['vmpl0_ssp', 8], ['vmpl1_ssp', 8], ['vmpl2_ssp', 8], ['vmpl3_ssp', 8], ['u_cet', 8], ['reserved_1', 2], ['vmpl', 1], ['cpl', 1],
  ['reserved_2', 4], ['efer', 8], ['reserved_3', 104], ['xss', 8], ['cr4', 8], ['cr3', 8], ['cr0', 8], ['dr7', 8], ['dr6', 8],
  ['rflags', 8], ['rip', 8], ['dr0', 8], ['dr1', 8], ['dr2', 8], ['dr3', 8], ['dr0m', 8], ['dr1m', 8], ['dr2m', 8], ['dr3m', 8],
  ['reserved_4', 24], ['rsp', 8], ['s_cet', 8], ['ssp', 8], ['isst_addr', 8], ['rax', 8], ['star', 8], ['lstar', 8], ['cstar', 8],
  ['sfmask', 8], ['kernel_gs_base', 8], ['sysenter_cs', 8], ['sysenter_esp', 8], ['sysenter_eip', 8], ['cr2', 8], ['reserved_5', 32],
  ['g_pat', 8], ['dbgctrl', 8], ['br_from', 8], ['br_to', 8], ['last_excp_from', 8], ['last_excp_to', 8], ['reserved_7', 80],
  ['pkru', 4], ['reserved_8', 20], ['reserved_9', 8], ['rcx', 8], ['rdx', 8], ['rbx', 8], ['reserved_10', 8], ['rbp', 8], ['rsi', 8],
  ['rdi', 8], ['r8', 8], ['r9', 8], ['r10', 8], ['r11', 8], ['r12', 8], ['r13', 8], ['r14', 8], ['r15', 8], ['reserved_11', 16],
  ['guest_exit_info_1', 8], ['guest_exit_info_2', 8], ['guest_exit_int_info', 8], ['guest_nrip', 8], ['sev_features', 8],
  ['vintr_ctrl', 8], ['guest_exit_code', 8], ['virtual_tom', 8], ['tlb_id', 8], ['pcpu_id', 8], ['event_inj', 8], ['xcr0', 8],
  ['reserved_12', 16], ['x87_dp', 8], ['mxcsr', 4], ['x87_ftw', 2], ['x87_fsw', 2], ['x87_fcw', 2],
];
const AT = new Map<string, number>();
let next = 0;
for (const [name, size] of FIELDS) {
  AT.set(name, next);
  next += size;
}
const at = (name: string): number => {
  const offset = AT.get(name);
  if (offset === undefined) throw new Error(`no field ${name}`);
  return offset;
};

/** The page sev-snp-measure builds for QEMU (its build_save_area), with x87/SSE words optional. */
function referencePage(eip: number, sig: number, features: bigint, fpu: boolean): Buffer {
  const page = Buffer.alloc(4096);
  const seg = (name: string, selector: number, attrib: number, limit: number, segBase: number): void => {
    page.writeUInt16LE(selector, at(name));
    page.writeUInt16LE(attrib, at(name) + 2);
    page.writeUInt32LE(limit, at(name) + 4);
    page.writeBigUInt64LE(BigInt(segBase), at(name) + 8);
  };
  for (const s of ['es', 'ss', 'ds', 'fs', 'gs']) seg(s, 0, 0x93, 0xffff, 0);
  seg('cs', 0xf000, 0x9b, 0xffff, eip - (eip % 0x10000));
  seg('gdtr', 0, 0, 0xffff, 0);
  seg('idtr', 0, 0, 0xffff, 0);
  seg('ldtr', 0, 0x82, 0xffff, 0);
  seg('tr', 0, 0x8b, 0xffff, 0);
  const q = (name: string, v: bigint): void => {
    page.writeBigUInt64LE(v, at(name));
  };
  q('efer', 0x1000n);
  q('cr4', 0x40n);
  q('cr0', 0x10n);
  q('dr7', 0x400n);
  q('dr6', 0xffff0ff0n);
  q('rflags', 2n);
  q('rip', BigInt(eip % 0x10000));
  q('g_pat', 0x7040600070406n);
  q('rdx', BigInt(sig));
  q('sev_features', features);
  q('xcr0', 1n);
  if (fpu) {
    page.writeUInt32LE(0x1f80, at('mxcsr'));
    page.writeUInt16LE(0x37f, at('x87_fcw'));
  }
  return page;
}

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
      expect(hasCode(errorOf(() => buildVmsas(params)), 'SUP_ERR_VERIFY_UNSUPPORTED'), JSON.stringify(bad, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).toBe(true);
    }
  });

  it('does not need an AP reset address for a single vCPU', () => {
    expect(buildVmsas({ ...base, vcpus: 1, resetAddress: 0 })).toHaveLength(1);
  });
});
