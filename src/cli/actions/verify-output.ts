// What every `sevsup verify` flavour shares (SEV measurements in verify.ts, SNP reports in
// verify-snp.ts, chains in certs.ts): libvirt's exit codes for the errors verification meets, and
// the output discipline (report or JSON, exit code on process.exitCode). Kept apart so the SNP path
// does not load the SEV digest code. Must not: decide validity.
import { errorTable, isSupervisorError, type ErrorCode } from '../../errors.js';
import { printJson } from '../output.js';

/** Codes whose meaning is "the owner's launch inputs cannot describe a launch QEMU would do". */
const BAD_CONFIG_CODES: readonly ErrorCode[] = [
  'SUP_ERR_FIRMWARE_READ',
  'SUP_ERR_FIRMWARE_TABLE_INVALID',
  'SUP_ERR_FIRMWARE_NO_HASHES_AREA',
  'SUP_ERR_FIRMWARE_NO_SEV_INFO',
  'SUP_ERR_KERNEL_READ',
  'SUP_ERR_CONFIG_BAD_VALUE',
];

/** libvirt's exit code for an error `verify` can meet, or null for anything else (a bug). */
export function verifyExitCode(code: ErrorCode): number | null {
  if (code.startsWith('SUP_ERR_VERIFY_')) return errorTable()[code].exit;
  if (code === 'SUP_ERR_USAGE') return errorTable().SUP_ERR_VERIFY_UNSUPPORTED.exit;
  if (BAD_CONFIG_CODES.includes(code)) return errorTable().SUP_ERR_VERIFY_CONFIG.exit;
  return null;
}

/**
 * The output and exit-code discipline every `verify` flavour shares (SEV here, SNP's --report in
 * verify-snp.ts): print the report (or JSON), set process.exitCode; a SupervisorError that `exitOf`
 * maps is printed and becomes that exit code; anything else is rethrown (exit 70).
 */
export async function runVerifyWith(
  o: { readonly json?: boolean; readonly quiet?: boolean },
  compute: () => Promise<VerifyReport>,
  exitOf: (code: ErrorCode) => number | null,
): Promise<void> {
  try {
    const report = await compute();
    if (o.json === true) printJson(report.json);
    else if (o.quiet !== true) printHuman(report);
    process.exitCode = report.exitCode;
  } catch (error: unknown) {
    const exit = isSupervisorError(error) ? exitOf(error.code) : null;
    if (!isSupervisorError(error) || exit === null) throw error;
    if (o.quiet !== true) process.stderr.write(`sevsup: ${error.message} [${error.code}]\n`);
    if (o.json === true) printJson({ valid: false, exitCode: exit, error: { code: error.code, message: error.message } });
    process.exitCode = exit;
  }
}

export interface VerifyReport {
  readonly exitCode: number;
  readonly lines: readonly string[];
  readonly problems: readonly string[];
  readonly json: Record<string, unknown>;
}

function printHuman(r: VerifyReport): void {
  if (r.lines.length > 0) process.stdout.write(`${r.lines.join('\n')}\n`);
  if (r.problems.length > 0) process.stderr.write(`${r.problems.join('\n')}\n`);
}
