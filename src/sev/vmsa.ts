// SEV-ES initial VMSA pages (one per vCPU) as they are measured at LAUNCH_UPDATE_VMSA.
// Owns: the register state QEMU + KVM give each vCPU at reset, for two KVM interfaces:
//  - 'legacy' (KVM_SEV_ES_INIT, what QEMU 7.2 and 10.x's default use): as libvirt's
//    virt-qemu-sev-validate builds it; x87/SSE control words zero;
//  - 'init2' (KVM_SEV_INIT2, Linux >= 6.10): FCW 0x37f and MXCSR 0x1f80 as sev-snp-measure sets
//    them.
// Both carry the VMSA SEV_FEATURES word (default 0): hosts from Linux 6.5 until DebugSwap became
// opt-in in 2024 set DebugSwap there even for KVM_SEV_ES_INIT (kvm_amd.debug_swap, AMDSEV#195);
// KVM_SEV_INIT2 takes it from the VMM.
// Pure: no I/O. Offsets follow the AMD APM vol. 2 save-area layout (Linux struct sev_es_save_area).
import { SupervisorError } from '../errors.js';

export const VMSA_BYTES = 4096;
/** Sanity bound: every vCPU adds a 4 KiB page to the measurement; QEMU 7.2 q35 allows 288. */
export const MAX_VCPUS = 1024;

export interface SevEsParams {
  readonly vcpus: number;
  /**
   * The vCPU's signature (CPUID 1 EAX of QEMU's -cpu model; the host's with -cpu host), which QEMU
   * puts in RDX at reset. cpu-models.ts maps model names to it.
   */
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
  /** SEV-ES AP reset address from the firmware's SEV info block. */
  readonly resetAddress: number;
  readonly vmsaInit: 'legacy' | 'init2';
  /**
   * VMSA SEV_FEATURES word. KVM_SEV_INIT2 takes it from the VMM; with KVM_SEV_ES_INIT it is 0
   * except on hosts whose kvm_amd set DebugSwap (bit 5, Linux 6.5 until it became opt-in). @default 0
   */
  readonly sevFeatures?: bigint | number;
}

// Save-area offsets (bytes); snp-vmsa.ts patches the SNP variants at the same places.
export const SEG = { es: 0x00, cs: 0x10, ss: 0x20, ds: 0x30, fs: 0x40, gs: 0x50, gdtr: 0x60, ldtr: 0x70, idtr: 0x80, tr: 0x90 } as const;
export const OFF = {
  efer: 0xd0,
  cr4: 0x148,
  cr0: 0x158,
  dr7: 0x160,
  dr6: 0x168,
  rflags: 0x170,
  rip: 0x178,
  gPat: 0x268,
  rdx: 0x310,
  sevFeatures: 0x3b0,
  xcr0: 0x3e8,
  mxcsr: 0x408,
  x87Fcw: 0x410,
} as const;

// Segment attributes in the VMCB's packed 12-bit form, as QEMU's x86_cpu_reset sets them.
const ATTR_CODE = 0x9b; // present, code, readable, accessed
const ATTR_DATA = 0x93; // present, data, writable, accessed
const ATTR_LDT = 0x82; // present, LDT
const ATTR_TSS_BUSY = 0x8b; // present, busy 32-bit TSS

/** Reset vector of the boot CPU: CS base 0xffff0000, IP 0xfff0. */
const BSP_RESET_ADDRESS = 0xfffffff0;

/**
 * The VMSA pages QEMU measures for SEV-ES, in vCPU order (vCPU 0 starts at the reset vector,
 * the others at the firmware's AP reset address).
 * @throws SUP_ERR_VERIFY_UNSUPPORTED for out-of-range parameters.
 */
export function buildVmsas(p: SevEsParams): Buffer[] {
  checkParams(p);
  const bsp = buildVmsa(p, BSP_RESET_ADDRESS);
  const ap = p.vcpus > 1 ? buildVmsa(p, p.resetAddress) : bsp;
  return Array.from({ length: p.vcpus }, (_, i) => (i === 0 ? bsp : ap));
}

/** One VMSA page for a vCPU that starts at `resetAddress`. */
export function buildVmsa(p: SevEsParams, resetAddress: number): Buffer {
  const page = Buffer.alloc(VMSA_BYTES);
  const seg = (at: number, selector: number, attrib: number, limit: number, base: number): void => {
    page.writeUInt16LE(selector, at);
    page.writeUInt16LE(attrib, at + 2);
    page.writeUInt32LE(limit, at + 4);
    page.writeBigUInt64LE(BigInt(base), at + 8);
  };
  seg(SEG.es, 0, ATTR_DATA, 0xffff, 0);
  seg(SEG.cs, 0xf000, ATTR_CODE, 0xffff, (resetAddress & 0xffff0000) >>> 0);
  seg(SEG.ss, 0, ATTR_DATA, 0xffff, 0);
  seg(SEG.ds, 0, ATTR_DATA, 0xffff, 0);
  seg(SEG.fs, 0, ATTR_DATA, 0xffff, 0);
  seg(SEG.gs, 0, ATTR_DATA, 0xffff, 0);
  seg(SEG.gdtr, 0, 0, 0xffff, 0);
  seg(SEG.ldtr, 0, ATTR_LDT, 0xffff, 0);
  seg(SEG.idtr, 0, 0, 0xffff, 0);
  seg(SEG.tr, 0, ATTR_TSS_BUSY, 0xffff, 0);
  const q = (at: number, value: bigint | number): void => {
    page.writeBigUInt64LE(BigInt(value), at);
  };
  q(OFF.efer, 0x1000); // KVM sets EFER.SVME
  q(OFF.cr4, 0x40); // KVM sets CR4.MCE
  q(OFF.cr0, 0x10); // CR0.ET after INIT
  q(OFF.dr7, 0x400);
  q(OFF.dr6, 0xffff0ff0);
  q(OFF.rflags, 0x2);
  q(OFF.rip, resetAddress & 0xffff);
  q(OFF.gPat, 0x0007040600070406n);
  q(OFF.rdx, cpuSignature(p.family, p.model, p.stepping));
  q(OFF.xcr0, 0x1);
  q(OFF.sevFeatures, BigInt(p.sevFeatures ?? 0));
  if (p.vmsaInit === 'init2') {
    page.writeUInt32LE(0x1f80, OFF.mxcsr);
    page.writeUInt16LE(0x37f, OFF.x87Fcw);
  }
  return page;
}

/** CPUID 1 EAX layout: stepping, model (low/extended), family (base 0xf plus extended). */
export function cpuSignature(family: number, model: number, stepping: number): number {
  let sig = stepping & 0xf;
  sig |= family > 0xf ? 0xf00 | ((family - 0xf) << 20) : family << 8;
  sig |= ((model & 0xf) << 4) | ((model >> 4) << 16);
  return sig >>> 0;
}

function checkParams(p: SevEsParams): void {
  const bad = (what: string): never => {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `SEV-ES VMSA: ${what}`);
  };
  const int = (v: number, min: number, max: number): boolean => Number.isInteger(v) && v >= min && v <= max;
  if (!int(p.vcpus, 1, MAX_VCPUS)) bad(`vcpus must be 1..${MAX_VCPUS}, got ${p.vcpus}`);
  if (!int(p.family, 0, 0x10e)) bad(`CPU family must be 0..0x10e, got ${p.family}`);
  if (!int(p.model, 0, 0xff)) bad(`CPU model must be 0..255, got ${p.model}`);
  if (!int(p.stepping, 0, 0xf)) bad(`CPU stepping must be 0..15, got ${p.stepping}`);
  if (p.vcpus > 1 && !int(p.resetAddress, 1, 0xffffffff)) bad(`AP reset address must be a non-zero u32, got ${p.resetAddress}`);
  const features = BigInt(p.sevFeatures ?? 0);
  if (features < 0n || features > 0xffffffffffffffffn) bad('SEV features must be a u64');
  if (p.vmsaInit !== 'legacy' && p.vmsaInit !== 'init2') bad(`VMSA init must be 'legacy' or 'init2', got ${String(p.vmsaInit)}`);
}
