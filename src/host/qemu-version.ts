// The version of a QEMU binary (`qemu -version`), read once per binary and kept for the process,
// and the SEV-SNP rule on it: `sev-snp-guest` exists since QEMU 9.1 (Debian 12's 7.2 cannot).
// Owns: running `-version`, parsing its first line, the in-process cache (keyed by path and
// mtime, so a replaced binary is asked again), and the refusal text. Must not: throw from
// readQemuVersion (an unreadable binary is null; the caller says what that means).
import { stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { execa } from 'execa';
import { SupervisorError } from '../errors.js';

/** `qemu -version` prints one line at once; longer means something is wrong with the binary. */
const VERSION_TIMEOUT_MS = 10_000;
/** The first QEMU with `sev-snp-guest` (qapi SevSnpGuestProperties). */
export const QEMU_SNP_MIN = { major: 9, minor: 1 } as const;

export interface QemuVersion {
  readonly major: number;
  readonly minor: number;
  readonly micro: number;
  /** Everything after "version", e.g. "7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)". */
  readonly text: string;
}

/** The version in `qemu -version`'s first line, or null when it has none. */
export function parseQemuVersion(output: string): QemuVersion | null {
  const line = output.split('\n')[0] ?? '';
  const match = /version\s+((\d+)\.(\d+)(?:\.(\d+))?.*)$/.exec(line);
  if (match === null) return null;
  return { major: Number(match[2]), minor: Number(match[3]), micro: Number(match[4] ?? 0), text: (match[1] ?? '').trim() };
}

const cache = new Map<string, QemuVersion | null>();

/**
 * `qemu -version` of `binary` (a path, or a name looked up on PATH), run once per binary file.
 * Null when it cannot be found, run, or understood.
 */
export async function readQemuVersion(binary: string): Promise<{ path: string; version: QemuVersion | null; mtimeMs: number } | null> {
  const path = await findExecutable(binary);
  if (path === null) return null;
  let mtimeMs: number;
  try {
    ({ mtimeMs } = await stat(path));
  } catch {
    return null;
  }
  const key = `${path}\0${mtimeMs}`;
  if (!cache.has(key)) {
    try {
      const result = await execa(path, ['-version'], { reject: false, timeout: VERSION_TIMEOUT_MS, stdin: 'ignore' });
      cache.set(key, result.exitCode === 0 && typeof result.stdout === 'string' ? parseQemuVersion(result.stdout) : null);
    } catch {
      cache.set(key, null);
    }
  }
  return { path, version: cache.get(key) ?? null, mtimeMs };
}

/** Why this QEMU cannot run an SEV-SNP guest (what was found, what to install), or null when it can. */
export function qemuSnpProblem(binary: string, version: QemuVersion | null): string | null {
  const install =
    "install QEMU 9.1 or newer (Debian 13 trixie's qemu-system-x86 has 10.0) and name it with the VM config's " +
    "'qemu:' key or the daemon's 'qemu:' key";
  if (version === null)
    return `cannot tell the version of QEMU ${binary} (\`${binary} -version\` failed); SEV-SNP needs QEMU >= 9.1: ${install}`;
  const { major, minor } = QEMU_SNP_MIN;
  if (version.major > major || (version.major === major && version.minor >= minor)) return null;
  return `SEV-SNP needs QEMU >= ${major}.${minor} (the sev-snp-guest object), but ${binary} is QEMU ${version.text}; ${install}`;
}

/**
 * @throws SUP_ERR_SEV_SNP_QEMU when `binary` is missing, unreadable or older than 9.1.
 */
export async function requireQemuForSnp(binary: string): Promise<QemuVersion> {
  const found = await readQemuVersion(binary);
  const version = found?.version ?? null;
  const problem = found === null ? `QEMU ${binary} was not found; SEV-SNP needs QEMU >= 9.1` : qemuSnpProblem(found.path, version);
  if (problem !== null || version === null) {
    throw new SupervisorError('SUP_ERR_SEV_SNP_QEMU', problem ?? `QEMU ${binary}: no version`, {
      details: { qemu: found?.path ?? binary, version: version?.text ?? null },
    });
  }
  return version;
}

/** `name` itself when it has a slash, else the first executable match on PATH (as execvp). */
export async function findExecutable(name: string): Promise<string | null> {
  const candidates = name.includes('/')
    ? [resolve(name)]
    : (process.env['PATH'] ?? '')
        .split(delimiter)
        .filter((dir) => isAbsolute(dir))
        .map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      const info = await stat(candidate);
      if (info.isFile() && (info.mode & 0o111) !== 0) return candidate;
    } catch {
      // not here; try the next
    }
  }
  return null;
}
