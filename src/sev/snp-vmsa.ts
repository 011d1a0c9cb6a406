// SEV-SNP initial VMSA pages (one per vCPU, measured last), as sev-snp-measure builds them for its
// three VMM types (vmsa.py): QEMU (what QEMU 10 + KVM_SEV_INIT2 give: the SEV-ES reset state with
// FCW 0x37f and MXCSR 0x1f80); ec2 (no x87/SSE words, BSP CS attribute 0x9a, SS 0x92, TR 0x83, RDX
// 0x600 instead of the vCPU signature; sev-snp-measure releases before that change used RDX 0, and
// the known answers sev-snp-measure-go publishes for ec2 are from then); gce (no x87/SSE words, RDX
// 0x600, G_PAT 0x70106).
// Owns: those differences. Pure. Must not: duplicate the save-area layout (vmsa.ts owns it).
import { SupervisorError } from '../errors.js';
import { buildVmsa, OFF, SEG, MAX_VCPUS } from './vmsa.js';

export const SNP_VMM_TYPES = ['QEMU', 'ec2', 'gce'] as const;
export type SnpVmmType = (typeof SNP_VMM_TYPES)[number];

const BSP_RESET_ADDRESS = 0xfffffff0;
/** ec2's and gce's vCPUs start with RDX 0x600 (family 6), whatever the host (snp-facts §2.1). */
const CLOUD_RDX = 0x600;

export interface SnpVmsaParams {
  readonly vcpus: number;
  readonly resetAddress: number;
  readonly vcpuSignature: number;
  readonly guestFeatures: bigint;
  readonly vmmType: SnpVmmType;
}

/**
 * The VMSA pages in vCPU order: vCPU 0 at the reset vector, the others at the AP reset address.
 * @throws SUP_ERR_VERIFY_UNSUPPORTED for out-of-range parameters.
 */
export function buildSnpVmsas(p: SnpVmsaParams): Buffer[] {
  if (!Number.isInteger(p.vcpus) || p.vcpus < 1 || p.vcpus > MAX_VCPUS) {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `SNP VMSA: vcpus must be 1..${MAX_VCPUS}, got ${p.vcpus}`);
  }
  if (!Number.isInteger(p.vcpuSignature) || p.vcpuSignature < 0 || p.vcpuSignature > 0xffffffff) {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `SNP VMSA: the vCPU signature must be a u32, got ${p.vcpuSignature}`);
  }
  if (!(SNP_VMM_TYPES as readonly string[]).includes(p.vmmType)) {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `unknown VMM type '${String(p.vmmType)}' (QEMU, ec2 or gce; case-sensitive)`);
  }
  const bsp = buildSnpVmsa(p, BSP_RESET_ADDRESS);
  const ap = p.vcpus > 1 ? buildSnpVmsa(p, p.resetAddress) : bsp;
  return Array.from({ length: p.vcpus }, (_, i) => (i === 0 ? bsp : ap));
}

/** One SNP VMSA page for a vCPU starting at `resetAddress`. */
export function buildSnpVmsa(p: SnpVmsaParams, resetAddress: number): Buffer {
  const page = buildVmsa(
    {
      vcpus: 1,
      family: 0,
      model: 0,
      stepping: 0,
      resetAddress,
      vmsaInit: p.vmmType === 'QEMU' ? 'init2' : 'legacy',
      sevFeatures: p.guestFeatures,
    },
    resetAddress,
  );
  page.writeBigUInt64LE(BigInt(p.vmmType === 'QEMU' ? p.vcpuSignature : CLOUD_RDX), OFF.rdx);
  if (p.vmmType === 'ec2') {
    if (resetAddress === BSP_RESET_ADDRESS) page.writeUInt16LE(0x9a, SEG.cs + 2);
    page.writeUInt16LE(0x92, SEG.ss + 2);
    page.writeUInt16LE(0x83, SEG.tr + 2);
  } else if (p.vmmType === 'gce') {
    page.writeBigUInt64LE(0x70106n, OFF.gPat);
  }
  return page;
}
