// The SEV-SNP launch digest (MEASUREMENT in the attestation report, LD in the ID block), exactly as
// sev-snp-measure computes it (gctx.py, guest.py) and as QEMU 10 + KVM feed it to the PSP: a chain
// LD = SHA-384(LD ‖ PAGE_INFO) over (1) every 4 KiB page of the firmware mapped to end at 4 GiB,
// (2) the metadata sections in table order, (3) one VMSA per vCPU (snp-facts §2.1).
// Owns: the PAGE_INFO record, page types, section → page-type mapping per VMM type, and the
// refusals of inputs QEMU would refuse ("where ssm and QEMU differ"). Pure: bytes in, digest out.
// Must not: read files (cli/actions/measure-snp.ts does), or import config/.
import { createHash } from 'node:crypto';
import { SupervisorError } from '../errors.js';
import { PADDED_HASH_TABLE_BYTES } from './ovmf-table.js';
import { SNP_SECTION, snpSectionLabel, type SnpSection } from './snp-metadata.js';
import { buildSnpVmsas, type SnpVmmType } from './snp-vmsa.js';

export const SNP_LAUNCH_DIGEST_BYTES = 48;
export const PAGE_BYTES = 4096;
const PAGE_INFO_BYTES = 0x70;
/** The firmware ends at 4 GiB (x86_bios_rom_init). */
const FOUR_GIB = 0x1_0000_0000;
/** QEMU's -bios size rule (x86_bios_rom_init): a non-zero multiple of 64 KiB. */
export const BIOS_SIZE_UNIT = 0x10000;
/** The RMP records a VMSA at GPA -1, page-aligned and cut to 52 bits. */
const VMSA_GPA = 0xfffffffff000n;
const ZEROS48 = Buffer.alloc(SNP_LAUNCH_DIGEST_BYTES);

export const PAGE_TYPE = { NORMAL: 1, VMSA: 2, ZERO: 3, UNMEASURED: 4, SECRETS: 5, CPUID: 6 } as const;

/** The running GCTX.LD. Start from 48 zero bytes, or from a precomputed firmware part (`--snp-ovmf-hash`). */
export class SnpGctx {
  #ld: Buffer;
  readonly #info = Buffer.alloc(PAGE_INFO_BYTES);

  constructor(seed: Uint8Array = ZEROS48) {
    if (seed.length !== SNP_LAUNCH_DIGEST_BYTES) {
      throw new SupervisorError(
        'SUP_ERR_USAGE',
        `a launch digest seed is ${SNP_LAUNCH_DIGEST_BYTES} bytes (96 hex digits), got ${seed.length}`,
      );
    }
    this.#ld = Buffer.from(seed);
  }

  get ld(): Buffer {
    return Buffer.from(this.#ld);
  }

  /** One PAGE_INFO: LD ‖ contents ‖ u16 0x70 ‖ u8 type ‖ u8 is_imi 0 ‖ vmpl3/2/1 perms 0 ‖ u8 0 ‖ u64 gpa. */
  update(pageType: number, gpa: bigint, contents: Uint8Array): void {
    const info = this.#info;
    this.#ld.copy(info, 0);
    info.set(contents, 48);
    info.writeUInt16LE(PAGE_INFO_BYTES, 96);
    info.writeUInt8(pageType, 98);
    info.fill(0, 99, 104);
    info.writeBigUInt64LE(gpa, 104);
    this.#ld = createHash('sha384').update(info).digest();
  }

  /** NORMAL pages: each page's SHA-384 at its own GPA. */
  updateNormalPages(gpa: number, data: Uint8Array): void {
    for (let off = 0; off < data.length; off += PAGE_BYTES) {
      const page = data.subarray(off, off + PAGE_BYTES);
      this.update(PAGE_TYPE.NORMAL, BigInt(gpa + off), createHash('sha384').update(page).digest());
    }
  }

  /** Pages whose contents are not hashed (ZERO, UNMEASURED, SECRETS, CPUID), one per 4 KiB. */
  updateBlankPages(pageType: number, gpa: number, size: number): void {
    for (let off = 0; off < size; off += PAGE_BYTES) this.update(pageType, BigInt(gpa + off), ZEROS48);
  }

  updateVmsa(page: Uint8Array): void {
    this.update(PAGE_TYPE.VMSA, VMSA_GPA, createHash('sha384').update(page).digest());
  }
}

/** The firmware part of the chain (`--mode snp:ovmf-hash`): every page of the image at 4 GiB − size. */
export function snpFirmwareDigest(firmware: Uint8Array): Buffer {
  checkFirmwareSize(firmware.length);
  const gctx = new SnpGctx();
  gctx.updateNormalPages(FOUR_GIB - firmware.length, firmware);
  return gctx.ld;
}

export interface SnpLaunchInputs {
  /** The -bios image; or give `firmwareDigest` (its snpFirmwareDigest) instead. */
  readonly firmware?: Uint8Array;
  readonly firmwareDigest?: Uint8Array;
  /** The firmware's SNP metadata sections, in table order (snp-metadata.ts). */
  readonly sections: readonly SnpSection[];
  /** The padded 176-byte kernel-hashes table when a kernel is measured (kernel-hashes=on), else absent. */
  readonly kernelHashesTable?: Buffer;
  /** The firmware's hashes-area base (footer table): the table goes at its in-page offset. */
  readonly kernelHashesBase?: number;
  /** AP reset address from the SEV info block (needed for more than one vCPU). */
  readonly resetAddress: number;
  readonly vcpus: number;
  /** CPUID 1 EAX of the vCPU model (QEMU puts it in RDX). */
  readonly vcpuSignature: number;
  /** VMSA SEV_FEATURES; bit 0 (SNPActive) must be set. QEMU 10 + KVM: 0x1. */
  readonly guestFeatures: bigint;
  /** @default 'QEMU' */
  readonly vmmType?: SnpVmmType;
}

/**
 * The SNP launch digest (48 bytes) for `inputs`, as the PSP computes it at SNP_LAUNCH_FINISH for a
 * QEMU 10 guest and as sev-snp-measure prints it.
 * @throws SUP_ERR_VERIFY_UNSUPPORTED for inputs QEMU would refuse or that cannot be measured
 *   (snpDigestProblems), SUP_ERR_USAGE for a malformed firmware digest seed.
 */
export function snpLaunchDigest(inputs: SnpLaunchInputs): Buffer {
  return snpLaunchDigestWithVmsas(
    inputs,
    buildSnpVmsas({
      vcpus: inputs.vcpus,
      resetAddress: inputs.resetAddress,
      vcpuSignature: inputs.vcpuSignature,
      guestFeatures: inputs.guestFeatures,
      vmmType: inputs.vmmType ?? 'QEMU',
    }),
  );
}

/**
 * As snpLaunchDigest, with the VMSA pages given (e.g. pages dumped from a real launch, or another
 * tool's `vmsaN.bin`); `vcpus`, the signature and the guest features of `inputs` are then only checked.
 * @throws as snpLaunchDigest; SUP_ERR_VERIFY_UNSUPPORTED when a page is not 4096 bytes.
 */
export function snpLaunchDigestWithVmsas(inputs: SnpLaunchInputs, vmsas: readonly Uint8Array[]): Buffer {
  checkVmsaPages(vmsas);
  return continueWithVmsas(snpDigestBeforeVmsas(inputs), vmsas);
}

/**
 * The chain up to the VMSAs: the firmware pages and the metadata sections, everything a launch
 * measures that does not depend on the vCPU signature QEMU reports. A launch computes it while QEMU
 * starts and ends it with continueWithVmsas once the signature is known. `inputs` are checked
 * (snpDigestProblems) as snpLaunchDigest checks them.
 * @throws SUP_ERR_VERIFY_UNSUPPORTED (snpDigestProblems), SUP_ERR_USAGE for a malformed firmware digest seed.
 */
export function snpDigestBeforeVmsas(inputs: SnpLaunchInputs): Buffer {
  const problems = snpDigestProblems(inputs);
  if (problems.length > 0) {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `cannot compute the SNP launch digest: ${problems.join('; ')}`, {
      details: { problems },
    });
  }
  const vmm = inputs.vmmType ?? 'QEMU';
  let gctx: SnpGctx;
  if (inputs.firmwareDigest !== undefined) {
    gctx = new SnpGctx(inputs.firmwareDigest);
  } else {
    const firmware = inputs.firmware ?? new Uint8Array(0);
    gctx = new SnpGctx();
    gctx.updateNormalPages(FOUR_GIB - firmware.length, firmware);
  }
  for (const section of inputs.sections) {
    if (section.type === SNP_SECTION.CPUID && vmm === 'ec2') continue; // ec2 measures it last
    measureSection(gctx, section, inputs, vmm);
  }
  if (vmm === 'ec2') {
    for (const s of inputs.sections) if (s.type === SNP_SECTION.CPUID) gctx.updateBlankPages(PAGE_TYPE.CPUID, s.gpa, s.size);
  }
  return gctx.ld;
}

/**
 * The launch digest: `ld` (snpDigestBeforeVmsas) continued with one VMSA page per vCPU, in order.
 * @throws SUP_ERR_VERIFY_UNSUPPORTED when a page is not 4096 bytes; SUP_ERR_USAGE when `ld` is not 48 bytes.
 */
export function continueWithVmsas(ld: Uint8Array, vmsas: readonly Uint8Array[]): Buffer {
  checkVmsaPages(vmsas);
  const gctx = new SnpGctx(ld);
  for (const vmsa of vmsas) gctx.updateVmsa(vmsa);
  return gctx.ld;
}

function checkVmsaPages(vmsas: readonly Uint8Array[]): void {
  if (vmsas.some((v) => v.length !== PAGE_BYTES)) {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `a VMSA page is ${PAGE_BYTES} bytes`);
  }
}

function measureSection(gctx: SnpGctx, s: SnpSection, inputs: SnpLaunchInputs, vmm: SnpVmmType): void {
  switch (s.type) {
    case SNP_SECTION.SEC_MEM:
      gctx.updateBlankPages(vmm === 'gce' ? PAGE_TYPE.UNMEASURED : PAGE_TYPE.ZERO, s.gpa, s.size);
      return;
    case SNP_SECTION.SECRETS:
      gctx.updateBlankPages(PAGE_TYPE.SECRETS, s.gpa, s.size);
      return;
    case SNP_SECTION.CPUID:
      gctx.updateBlankPages(PAGE_TYPE.CPUID, s.gpa, s.size);
      return;
    case SNP_SECTION.KERNEL_HASHES:
      if (inputs.kernelHashesTable === undefined) {
        gctx.updateBlankPages(PAGE_TYPE.ZERO, s.gpa, s.size);
      } else {
        // QEMU zero-fills the whole section and copies the table to the hashes area's in-page offset.
        const pages = Buffer.alloc(s.size);
        inputs.kernelHashesTable.copy(pages, (inputs.kernelHashesBase ?? 0) & (PAGE_BYTES - 1));
        gctx.updateNormalPages(s.gpa, pages);
      }
      return;
    default:
      // SVSM_CAA and any type QEMU does not know: ZERO pages (snp_metadata_desc_to_page_type).
      gctx.updateBlankPages(PAGE_TYPE.ZERO, s.gpa, s.size);
  }
}

/** Sections QEMU cannot map: sizes and addresses must be whole pages inside 32-bit space. */
function sectionProblem(s: SnpSection): string | null {
  const label = `${snpSectionLabel(s.type)} section at 0x${s.gpa.toString(16)}`;
  if (s.size === 0) return `${label} is empty`;
  if (s.gpa % PAGE_BYTES !== 0 || s.size % PAGE_BYTES !== 0) return `${label} (size 0x${s.size.toString(16)}) is not page-aligned`;
  if (s.gpa + s.size > FOUR_GIB) return `${label} (size 0x${s.size.toString(16)}) reaches beyond 4 GiB`;
  return null;
}

function checkFirmwareSize(size: number): void {
  const problem = firmwareSizeProblem(size);
  if (problem !== null) throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `cannot compute the SNP launch digest: ${problem}`);
}

/** QEMU's -bios rule, or null when the size is fine. */
export function firmwareSizeProblem(size: number): string | null {
  if (size === 0 || size % BIOS_SIZE_UNIT !== 0 || size > FOUR_GIB / 2) {
    return `the firmware is ${size} bytes, not a non-zero multiple of 64 KiB: QEMU refuses it as -bios ("could not load PC BIOS")`;
  }
  return null;
}

/**
 * Why QEMU 10 would refuse (or abort on) these inputs, or why they cannot be measured; empty when
 * fine. This is the list where sev-snp-measure gives a digest and QEMU never launches.
 */
export function snpDigestProblems(i: SnpLaunchInputs): string[] {
  const problems: string[] = [];
  if ((i.firmware === undefined) === (i.firmwareDigest === undefined))
    problems.push('give the firmware or its precomputed digest, not both or neither');
  if (i.firmware !== undefined) {
    const size = firmwareSizeProblem(i.firmware.length);
    if (size !== null) problems.push(size);
  }
  if (i.sections.length === 0) {
    problems.push('the firmware has no SEV-SNP metadata: QEMU stops the guest at its first run ("Failed to locate SEV metadata header")');
  }
  for (const s of i.sections) {
    const p = sectionProblem(s);
    if (p !== null) problems.push(p);
  }
  const hashes = i.sections.filter((s) => s.type === SNP_SECTION.KERNEL_HASHES);
  if (i.kernelHashesTable !== undefined) {
    if (i.kernelHashesTable.length !== PADDED_HASH_TABLE_BYTES)
      problems.push(`the kernel-hashes table must be ${PADDED_HASH_TABLE_BYTES} bytes`);
    if (hashes.length === 0) {
      problems.push('a kernel is given, but the firmware has no KERNEL_HASHES section: QEMU would launch without measuring the kernel');
    }
    const base = i.kernelHashesBase;
    if (base === undefined || base === 0) {
      problems.push(
        'the firmware declares no kernel-hashes area (base 0): QEMU refuses -kernel with kernel-hashes ("hashes table area is invalid")',
      );
    } else {
      const inPage = base & (PAGE_BYTES - 1);
      if (inPage + PADDED_HASH_TABLE_BYTES > PAGE_BYTES) {
        problems.push(`the kernel-hashes table at 0x${base.toString(16)} would cross its page`);
      }
      for (const s of hashes) {
        if (inPage + PADDED_HASH_TABLE_BYTES > s.size)
          problems.push('the kernel-hashes table would cross the end of the KERNEL_HASHES section (QEMU aborts)');
      }
    }
  }
  if (!Number.isInteger(i.vcpus) || i.vcpus < 1 || i.vcpus > 1024)
    problems.push(`vCPUs must be 1..1024 (QEMU has no guest without a vCPU), got ${i.vcpus}`);
  // QEMU looks for the AP reset address whatever the vCPU count (sev_es_find_reset_vector).
  if (!Number.isInteger(i.resetAddress) || i.resetAddress <= 0 || i.resetAddress > 0xffffffff) {
    problems.push('the firmware has no AP reset address (SEV info block): QEMU refuses it ("SEV-ES reset address is zero")');
  }
  if (i.guestFeatures < 0n || i.guestFeatures > 0xffffffffffffffffn) problems.push('guest features must be a u64');
  else if ((i.guestFeatures & 1n) === 0n) problems.push('guest features must set bit 0 (SNPActive): KVM always sets it for an SNP guest');
  return problems;
}
