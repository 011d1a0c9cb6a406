// SEV-SNP firmware checks before spawn: what QEMU 10 finds only at the first run (and aborts on
// some), said up front with QEMU's own words where it has them (snp-facts §1.2, §1.3).
// Owns: the list of refusals for a -bios image used for an SNP guest. Pure: the caller gives the
// parsed table and metadata. Must not: read files, or decide pflash vs -bios (the argv builder does).
import { describeHashesAreaProblem, hex, PADDED_HASH_TABLE_BYTES, type OvmfTable } from './ovmf-table.js';
import { firmwareSizeProblem } from './snp-launch-digest.js';
import { SNP_METADATA_VERSION, SNP_SECTION, snpSectionLabel, type SnpMetadata } from './snp-metadata.js';

const PAGE = 4096;

export interface SnpFirmwareFacts {
  readonly size: number;
  readonly table: OvmfTable;
  readonly metadata: SnpMetadata;
}

export interface SnpLaunchUse {
  /** A -kernel is given. */
  readonly kernel: boolean;
  /** kernel-hashes=on. */
  readonly kernelHashes: boolean;
}

/**
 * Every reason this firmware must not launch an SNP guest as `use` describes; empty when none.
 * Refused: a size QEMU's -bios refuses; no SEV info block or a zero AP reset address; no or
 * unusable SNP metadata; a metadata version other than 1 or a section type neither QEMU nor edk2
 * defines (QEMU would measure it as ZERO pages, which no firmware expects); kernel-hashes=on without
 * a kernel (QEMU 10 aborts on a firmware with a KERNEL_HASHES section); a kernel without a
 * KERNEL_HASHES section (QEMU launches and never measures the kernel); a bad hashes area; a table
 * that would cross its page or its section.
 */
export function snpFirmwareProblems(fw: SnpFirmwareFacts, use: SnpLaunchUse): string[] {
  const problems: string[] = [];
  const size = firmwareSizeProblem(fw.size);
  if (size !== null) problems.push(size);
  if (fw.table.sevInfoSource === null) problems.push('SEV information block/Firmware GUID Table block not found in pflash rom');
  else if (fw.table.sevResetAddress === null) problems.push('SEV-ES reset address is zero');
  const md = fw.metadata;
  if (md.status !== 'found') {
    const why = md.status === 'absent' ? 'the firmware has no SEV-SNP metadata' : `its SEV-SNP metadata is unusable (${md.reason})`;
    problems.push(`${why}: QEMU stops the guest at its first run with "sev_snp_launch_finish: Failed to locate SEV metadata header"`);
    return problems;
  }
  if (md.version !== SNP_METADATA_VERSION) {
    problems.push(
      `SNP metadata version ${md.version} is not ${SNP_METADATA_VERSION}: QEMU does not check it, but no known firmware writes another; refused`,
    );
  }
  for (const s of md.sections) {
    if (s.name === null)
      problems.push(
        `SNP metadata section ${snpSectionLabel(s.type)} at ${hex(s.gpa)} is of no known type: QEMU would measure it as ZERO pages`,
      );
    if (s.size === 0 || s.gpa % PAGE !== 0 || s.size % PAGE !== 0)
      problems.push(`SNP metadata section ${snpSectionLabel(s.type)} at ${hex(s.gpa)} (size ${hex(s.size)}) is not whole pages`);
  }
  const hashes = md.sections.filter((s) => s.type === SNP_SECTION.KERNEL_HASHES);
  if (use.kernelHashes && !use.kernel && hashes.length > 0) {
    problems.push(
      'kernel-hashes=1 without a kernel: QEMU 10 aborts (assert kernel_hashes_data) on a firmware with a KERNEL_HASHES section',
    );
  }
  if (use.kernel && hashes.length === 0) {
    problems.push(
      'a kernel is given, but the firmware has no KERNEL_HASHES section: QEMU launches and the kernel is never measured; use a firmware built with one (OvmfPkg/AmdSev)',
    );
  }
  if (use.kernel && use.kernelHashes) {
    const area = describeHashesAreaProblem(fw.table.hashesArea);
    if (area !== '') problems.push(area);
    const base = fw.table.hashesArea?.base ?? 0;
    if (area === '') {
      const inPage = base % PAGE;
      if (inPage + PADDED_HASH_TABLE_BYTES > PAGE) problems.push(`the kernel-hashes table at ${hex(base)} would cross its page`);
      for (const s of hashes) {
        if (inPage + PADDED_HASH_TABLE_BYTES > s.size)
          problems.push(`the kernel-hashes table would cross the end of the KERNEL_HASHES section at ${hex(s.gpa)} (QEMU aborts)`);
      }
    }
  }
  return problems;
}
