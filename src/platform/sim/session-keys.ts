// The owner's transport keys as a SIMULATED launch session carries them (sev/sim-session.ts): the
// simulator's LAUNCH_START reads the sev-guest object's `session-file` and `dh-cert-file`; when the
// session is in the sim-only format, its TIK and TEK become the platform's keys for this launch, as
// a real session's keys do on hardware. Owns: that choice and its start-up failure lines.
// Must not: read keys from anywhere the owner did not write them, or print key bytes.
// A session that is not in the sim format (a real sevctl blob, or none) leaves the keys as before:
// --sim-tik/--sim-tek, else generated. Files that cannot be read fail earlier, with QEMU's own texts
// (startup-checks.ts); a sim session that is malformed or not bound by its dh-cert fails LAUNCH_START
// as a bad session does on a real host (the fw_error is this simulator's choice: INVALID_PARAM).
import { readFile } from 'node:fs/promises';
import { decodeSimSession, isSimSessionText } from '../../sev/sim-session.js';
import type { SevObjectParams } from './startup-checks.js';

export type SessionKeys =
  | { readonly kind: 'none' }
  | { readonly kind: 'keys'; readonly tik: Buffer; readonly tek: Buffer; readonly file: string }
  | { readonly kind: 'fail'; readonly lines: readonly string[]; readonly problem: string };

/** INVALID_PARAM (0x16) as QEMU 7.2's sev_fw_errlist words it. */
const LAUNCH_START_FAILURE = "sev_launch_start: LAUNCH_START ret=-5 fw_error=22 'Invalid param'";

/** Keys from a simulated session named by the sev-guest object, if it names one. */
export async function readSessionKeys(params: Pick<SevObjectParams, 'sessionFile' | 'dhCertFile'>): Promise<SessionKeys> {
  if (params.sessionFile === null) return { kind: 'none' };
  // Unreadable files were refused by the start-up checks with glib's texts; a race reads as "none".
  const session = await readFile(params.sessionFile, 'utf8').catch(() => null);
  if (session === null || !isSimSessionText(session)) return { kind: 'none' };
  const fail = (problem: string): SessionKeys => ({
    kind: 'fail',
    problem,
    lines: [LAUNCH_START_FAILURE, 'sev_kvm_init: failed to create encryption context'],
  });
  if (params.dhCertFile === null) return fail('a simulated session needs the dh-cert file made with it (dh-cert-file)');
  const dhCert = await readFile(params.dhCertFile, 'utf8').catch(() => null);
  if (dhCert === null) return fail(`cannot read the dh-cert file ${params.dhCertFile}`);
  const read = decodeSimSession({ session, dhCert });
  return read.ok ? { kind: 'keys', tik: read.tik, tek: read.tek, file: params.sessionFile } : fail(read.problem);
}
