// The SIMULATED launch session: how a guest owner's TIK and TEK reach the simulated secure processor
// the way a real launch session (sevctl session: `dh-cert-file`, `session-file`) carries them to a
// real one. Owns: the two files' sim-only text format, writing it and reading it back. Pure.
// Must not: be mistaken for a real session. On hardware the files are QEMU's base64 blobs, wrapped
// under a key agreed with the platform's PDH; here the keys are in the clear, so the first line of
// each file says SIMULATED, the format is text (QEMU's base64 decoder and the firmware's length and
// MAC checks refuse it), and the simulator is not a security boundary. Direction is one way: the
// owner writes these files from its own keys; nothing ever reads keys the simulator made.
import { createHash } from 'node:crypto';
import { TEK_BYTES } from './launch-secret.js';
import { TIK_BYTES } from './measurement.js';

export const SIM_SESSION_FORMAT = 'sevsup-sim-session/v1';
export const SIM_DH_CERT_FORMAT = 'sevsup-sim-dh-cert/v1';
/** The first line of both files; the simulator recognises its format by it. */
export const SIM_SESSION_LABEL = '# SEVSUP SIMULATED LAUNCH SESSION: for the simulated SEV platform only; never valid on hardware.';

export interface SimSessionFiles {
  /** The `dh-cert` file's text. */
  readonly dhCert: string;
  /** The `session` file's text (holds the keys). */
  readonly session: string;
}

/** The two files for the owner's keys. */
export function encodeSimSession(keys: { tik: Buffer; tek: Buffer }): SimSessionFiles {
  if (keys.tik.length !== TIK_BYTES || keys.tek.length !== TEK_BYTES) {
    throw new RangeError(`TIK and TEK are ${TIK_BYTES} bytes each`);
  }
  const session = [
    SIM_SESSION_LABEL,
    "# It carries the guest owner's transport keys IN THE CLEAR (a real sevctl session wraps them for the",
    '# platform). Keep it 0600; make a fresh one per launch, as with sevctl.',
    `format: ${SIM_SESSION_FORMAT}`,
    `tik: ${keys.tik.toString('hex')}`,
    `tek: ${keys.tek.toString('hex')}`,
    '',
  ].join('\n');
  const dhCert = [
    SIM_SESSION_LABEL,
    "# Stands for the owner's Diffie-Hellman certificate; it binds the session file beside it.",
    `format: ${SIM_DH_CERT_FORMAT}`,
    `session-sha256: ${createHash('sha256').update(session).digest('hex')}`,
    '',
  ].join('\n');
  return { dhCert, session };
}

/** True when `text` claims the simulated format (its first line is the label). */
export function isSimSessionText(text: string): boolean {
  return text.startsWith(SIM_SESSION_LABEL);
}

export type SimSessionRead =
  | { readonly ok: true; readonly tik: Buffer; readonly tek: Buffer }
  | { readonly ok: false; readonly problem: string };

/**
 * Read the keys from a simulated session, checking the dh-cert binds it. Problems name the file and
 * field, never key bytes. Only call it for texts where isSimSessionText holds (others are real sessions).
 */
export function decodeSimSession(files: SimSessionFiles): SimSessionRead {
  const session = fields(files.session);
  const cert = fields(files.dhCert);
  if (session.get('format') !== SIM_SESSION_FORMAT) return { ok: false, problem: `session file: format is not ${SIM_SESSION_FORMAT}` };
  if (!isSimSessionText(files.dhCert) || cert.get('format') !== SIM_DH_CERT_FORMAT) {
    return { ok: false, problem: `dh-cert file: not a ${SIM_DH_CERT_FORMAT} file made with the session` };
  }
  const binding = createHash('sha256').update(files.session).digest('hex');
  if (cert.get('session-sha256') !== binding)
    return { ok: false, problem: 'dh-cert file: does not bind this session file (made for another session?)' };
  const key = (name: 'tik' | 'tek', bytes: number): Buffer | string => {
    const text = session.get(name) ?? '';
    return new RegExp(`^[0-9a-f]{${2 * bytes}}$`).test(text)
      ? Buffer.from(text, 'hex')
      : `session file: ${name} is not ${bytes} bytes of lower-case hex`;
  };
  const tik = key('tik', TIK_BYTES);
  const tek = key('tek', TEK_BYTES);
  if (typeof tik === 'string') return { ok: false, problem: tik };
  if (typeof tek === 'string') return { ok: false, problem: tek };
  return { ok: true, tik, tek };
}

function fields(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const at = line.indexOf(':');
    if (at > 0) out.set(line.slice(0, at).trim(), line.slice(at + 1).trim());
  }
  return out;
}
