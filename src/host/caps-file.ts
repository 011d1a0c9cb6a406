// Host-capability files: the seed's /run/qemu-server/hw-params.json and shipped Proxmox's
// /run/qemu-server/host-hw-capabilities.json, both `{"amd-sev": {cbitpos, reduced-phys-bits,
// sev-support, sev-support-es[, sev-support-snp]}}`.
// Owns: parsing them into HostCaps (strict about types, lenient about keys a newer writer adds),
// formatting the seed-compatible JSON, and reading/writing such files.
// Must not: probe the host or decide the lookup order (host/resolve.ts does).
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SupervisorError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { FeatureSupport, HostCaps } from './host-caps.js';
import { errnoOf } from '../util/io-error.js';
import { isRecord } from '../util/is-record.js';

/** The seed patch's file. */
export const SEED_CAPS_FILE = '/run/qemu-server/hw-params.json';
/** What pve-query-machine-capabilities.service writes on shipped Proxmox. */
export const PROXMOX_CAPS_FILE = '/run/qemu-server/host-hw-capabilities.json';

/** The real files are about 150 bytes; anything this large is not one of them. */
export const MAX_CAPS_FILE_BYTES = 64 * 1024;

/** CPUID 0x8000001F EBX fields are 6 bits wide. */
const MAX_BIT_FIELD = 63;

/**
 * Parse a capabilities file. A file without an `amd-sev` section is valid: Proxmox writes `{ }`
 * (or only `intel-tdx`) on hosts without an AMD CPU. Unknown keys are ignored; known keys must
 * have the types Proxmox writes (booleans; 0/1 accepted as the seed's Perl reader did).
 * @throws SUP_ERR_HOST_CAPS_FILE naming `file` and the key, `details: {file, key}`.
 */
export function parseCapsFile(text: string, file: string): HostCaps {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error: unknown) {
    const why = error instanceof Error ? error.message : String(error);
    throw capsFileError(file, null, `is not valid JSON (${why})`);
  }
  if (!isRecord(value)) throw capsFileError(file, null, 'must contain a JSON object');
  const section = value['amd-sev'];
  if (section === undefined) {
    const feature = unsupported(`${file} has no "amd-sev" section (it was written on a host without an AMD CPU)`, file);
    return {
      sev: feature,
      sevEs: feature,
      sevSnp: feature,
      cbitpos: null,
      cbitposSource: file,
      reducedPhysBits: null,
      reducedPhysBitsSource: file,
    };
  }
  if (!isRecord(section)) throw capsFileError(file, 'amd-sev', 'must be an object');

  const cbitpos = bitField(section, 'cbitpos', file);
  const reducedPhysBits = bitField(section, 'reduced-phys-bits', file);
  const sev = flag(section, 'sev-support', file, true);
  const es = flag(section, 'sev-support-es', file, true);
  const snp = flag(section, 'sev-support-snp', file, false);

  const sevSupport = fromFlag(file, 'sev-support', sev);
  // The seed refuses SEV-ES when SEV itself is off whatever sev-support-es says; so do we.
  const sevEs = sevSupport.supported ? fromFlag(file, 'sev-support-es', es) : sevSupport;
  const sevSnp = !sevSupport.supported
    ? sevSupport
    : snp === undefined
      ? unsupported(`${file} has no "sev-support-snp" (written by a version without SEV-SNP)`, file)
      : fromFlag(file, 'sev-support-snp', snp);
  return { sev: sevSupport, sevEs, sevSnp, cbitpos, cbitposSource: file, reducedPhysBits, reducedPhysBitsSource: file };
}

/**
 * The seed-compatible JSON (also what shipped Proxmox reads). Unknown bit fields are written as 0,
 * as Proxmox's writer does on a host whose CPUID has none.
 */
export function formatCapsFile(caps: HostCaps): string {
  const body = {
    'amd-sev': {
      cbitpos: caps.cbitpos ?? 0,
      'reduced-phys-bits': caps.reducedPhysBits ?? 0,
      'sev-support': caps.sev.supported,
      'sev-support-es': caps.sevEs.supported,
      'sev-support-snp': caps.sevSnp.supported,
    },
  };
  return `${JSON.stringify(body, null, 2)}\n`;
}

/**
 * Read and parse a capabilities file; `null` when it does not exist.
 * @throws SUP_ERR_HOST_CAPS_FILE when it exists but cannot be read or is invalid.
 */
export async function readCapsFile(file: string): Promise<HostCaps | null> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (error: unknown) {
    if (errnoOf(error) === 'ENOENT') return null;
    throw capsFileError(file, null, `cannot be read (${errnoOf(error) ?? String(error)})`, error);
  }
  if (data.length > MAX_CAPS_FILE_BYTES) {
    throw capsFileError(file, null, `is ${data.length} bytes, more than a capabilities file can be (${MAX_CAPS_FILE_BYTES})`);
  }
  return parseCapsFile(data.toString('utf8'), file);
}

/**
 * Write the seed-compatible JSON atomically (temp file, fsync, rename, fsync of the directory),
 * mode 0644 like Proxmox's file, creating its directory (0755) as Proxmox's writer does at boot.
 * @throws SUP_ERR_HOST_CAPS_WRITE naming the file and the system error.
 */
export async function writeCapsFile(file: string, caps: HostCaps): Promise<void> {
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o755 });
    await writeFileAtomic(file, formatCapsFile(caps), { mode: 0o644, overwrite: true });
  } catch (error: unknown) {
    const why = errnoOf(error) ?? (error instanceof Error ? error.message : String(error));
    throw new SupervisorError(
      'SUP_ERR_HOST_CAPS_WRITE',
      `cannot write host capabilities file ${file} (${why}); check that its directory exists and is writable`,
      { details: { file }, cause: error },
    );
  }
}

function bitField(section: Record<string, unknown>, key: string, file: string): number {
  const value = section[key];
  if (value === undefined) throw capsFileError(file, `amd-sev.${key}`, 'is missing');
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_BIT_FIELD) {
    throw capsFileError(file, `amd-sev.${key}`, `must be an integer from 0 to ${MAX_BIT_FIELD}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function flag(section: Record<string, unknown>, key: string, file: string, required: true): boolean;
function flag(section: Record<string, unknown>, key: string, file: string, required: false): boolean | undefined;
function flag(section: Record<string, unknown>, key: string, file: string, required: boolean): boolean | undefined {
  const value = section[key];
  if (value === undefined) {
    if (required) throw capsFileError(file, `amd-sev.${key}`, 'is missing');
    return undefined;
  }
  if (typeof value === 'boolean') return value;
  if (value === 0 || value === 1) return value === 1;
  throw capsFileError(file, `amd-sev.${key}`, `must be true or false (or 0 or 1), got ${JSON.stringify(value)}`);
}

function fromFlag(file: string, key: string, value: boolean): FeatureSupport {
  return value
    ? { supported: true, reason: `supported: ${file} says "${key}": true`, source: file }
    : unsupported(`${file} says "${key}": false`, file);
}

function unsupported(because: string, source: string): FeatureSupport {
  return { supported: false, reason: `not supported, because ${because}`, source };
}

function capsFileError(file: string, key: string | null, problem: string, cause?: unknown): SupervisorError {
  const subject = key === null ? `host capabilities file ${file}` : `host capabilities file ${file}: key "${key}"`;
  return new SupervisorError(
    'SUP_ERR_HOST_CAPS_FILE',
    `${subject} ${problem}; fix or delete the file, or rewrite it with "sevsup host --write ${file}"`,
    { details: { file, key }, ...(cause === undefined ? {} : { cause }) },
  );
}
