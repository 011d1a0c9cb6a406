// Implementation of `sevsup inspect-firmware`: read the image, render the table and verdicts.
// Owns: the human and JSON shapes of this command's output. Must not: contain table parsing
// (sev/ovmf-table.ts) or file reading (sev/firmware-file.ts).
import type { FirmwareInfo } from '../../sev/firmware-file.js';
import { describeHashesAreaProblem, describeSecretAreaProblem, describeSevEsProblem, hex, type Area } from '../../sev/ovmf-table.js';
import { readSnpFirmware } from '../../attestation/snp-inputs.js';
import { snpFirmwareProblems } from '../../sev/snp-firmware-checks.js';
import { firmwareSizeProblem, snpFirmwareDigest } from '../../sev/snp-launch-digest.js';
import { snpSectionLabel, type SnpMetadata } from '../../sev/snp-metadata.js';
import { printJson } from '../output.js';
import type { InspectFirmwareCliOptions } from '../commands/inspect-firmware.js';

export interface Verdict {
  readonly usable: boolean;
  /** 'usable …' or QEMU's refusal text. */
  readonly message: string;
}

export interface SnpFirmwareReport {
  readonly metadata: SnpMetadata;
  /** The launch digest after the firmware pages (`measure --mode snp:ovmf-hash`), hex; null when QEMU refuses the size. */
  readonly firmwareDigest: string | null;
  /** Why an SNP guest must not boot from it (no kernel / measured direct boot); empty: fine. */
  readonly problems: { readonly withoutKernel: readonly string[]; readonly withKernelHashes: readonly string[] };
}

export interface FirmwareReport extends FirmwareInfo {
  readonly verdicts: { readonly kernelHashes: Verdict; readonly secret: Verdict; readonly sevEs: Verdict };
  readonly snp?: SnpFirmwareReport;
}

export function buildFirmwareReport(info: FirmwareInfo): FirmwareReport {
  const verdict = (problem: string, ok: string): Verdict =>
    problem === '' ? { usable: true, message: ok } : { usable: false, message: problem };
  const { table } = info;
  return {
    ...info,
    verdicts: {
      kernelHashes: verdict(describeHashesAreaProblem(table.hashesArea), 'usable for kernel-hashes'),
      secret: verdict(describeSecretAreaProblem(table.secretArea), 'usable for sev-inject-launch-secret without gpa'),
      sevEs: verdict(describeSevEsProblem(table), 'usable for SEV-ES'),
    },
  };
}

export function formatFirmwareReport(r: FirmwareReport): string {
  const { table } = r;
  const area = (a: Area | null): string => (a === null ? 'not declared' : `base=${hex(a.base)} size=${hex(a.size)}`);
  const lines = [`firmware:   ${r.path}`, `size:       ${r.size} bytes`, `sha256:     ${r.sha256}`];
  if (!table.found) {
    lines.push('footer table: not found (no OVMF GUIDed footer table: not an OVMF image, or one too old for SEV)');
  } else {
    lines.push(`footer table: ${table.entries.length} ${table.entries.length === 1 ? 'entry' : 'entries'}`);
    for (const e of table.entries) {
      lines.push(`  ${e.guid}  ${e.name ?? 'unknown'} (${e.length} data bytes at ${hex(e.offset)})`);
    }
    if (table.badEntry !== null) {
      lines.push(`  corrupt entry at ${hex(table.badEntry.offset)} (length ${table.badEntry.length}): QEMU stops looking here`);
    }
  }
  const reset =
    table.sevInfoResetAddress === null
      ? 'none'
      : `${hex(table.sevInfoResetAddress)} (${table.sevInfoSource === 'legacy' ? 'legacy SEV info block' : 'footer table'})`;
  lines.push(`SEV-ES reset address: ${reset} — ${r.verdicts.sevEs.message}`);
  lines.push(`kernel-hashes area:   ${area(table.hashesArea)} — ${r.verdicts.kernelHashes.message}`);
  lines.push(`launch-secret area:   ${area(table.secretArea)} — ${r.verdicts.secret.message}`);
  lines.push(`SEV-SNP metadata:     ${table.snpMetadata ? 'present' : 'absent'}`);
  if (r.snp !== undefined) lines.push(...formatSnp(r.snp));
  return `${lines.join('\n')}\n`;
}

function formatSnp(snp: SnpFirmwareReport): string[] {
  const md = snp.metadata;
  const lines: string[] = [];
  if (md.status === 'found') {
    lines.push(`  version ${md.version}, ${md.sections.length} ${md.sections.length === 1 ? 'section' : 'sections'} (in measuring order):`);
    for (const s of md.sections) lines.push(`    ${snpSectionLabel(s.type).padEnd(14)} gpa=${hex(s.gpa)} size=${hex(s.size)}`);
  } else if (md.status === 'invalid') {
    lines.push(`  unusable: ${md.reason}`);
  }
  lines.push(`SNP firmware digest:  ${snp.firmwareDigest ?? 'none (size not accepted as -bios)'} (measure --snp-ovmf-hash)`);
  const verdict = (problems: readonly string[]): string => (problems.length === 0 ? 'usable' : `refused: ${problems.join('; ')}`);
  lines.push(`SEV-SNP, no kernel:   ${verdict(snp.problems.withoutKernel)}`);
  lines.push(`SEV-SNP, kernel-hashes=1 with a kernel: ${verdict(snp.problems.withKernelHashes)}`);
  return lines;
}

/** @throws SUP_ERR_FIRMWARE_READ, SUP_ERR_FIRMWARE_TABLE_INVALID (via readSnpFirmware). */
export async function runInspectFirmware(file: string, opts: InspectFirmwareCliOptions): Promise<void> {
  // One read of the whole image: the SNP part needs it all (its metadata and the page chain).
  const fw = await readSnpFirmware(file);
  const info: FirmwareInfo = { path: fw.path, size: fw.size, sha256: fw.sha256, table: fw.table };
  const snp: SnpFirmwareReport = {
    metadata: fw.metadata,
    firmwareDigest: firmwareSizeProblem(fw.size) === null ? snpFirmwareDigest(fw.bytes).toString('hex') : null,
    problems: {
      withoutKernel: snpFirmwareProblems(fw, { kernel: false, kernelHashes: false }),
      withKernelHashes: snpFirmwareProblems(fw, { kernel: true, kernelHashes: true }),
    },
  };
  const report = { ...buildFirmwareReport(info), snp };
  if (opts.json === true) printJson(report);
  else process.stdout.write(formatFirmwareReport(report));
}
