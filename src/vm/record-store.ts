// The launch record store (SEV measurement records and SEV-SNP launch records alike): `<state-dir>/<vm>/measurements/<capturedAt>.json` plus `latest.json`.
// Owns: the layout, modes (dir 0755, files 0644: records hold no secrets and attestation scripts of
// other users read them) and durability. Must not: build or judge records (record.ts; the owner).
// Records are never rewritten: a write refuses an existing target. A failed write leaves nothing
// behind, not even the dated file when only `latest.json` failed, so the store never disagrees
// with what the lifecycle reported.
import { chmod, mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { hasCode, SupervisorError } from '../errors.js';
import { fsyncDir, writeFileAtomic } from '../util/atomic-write.js';
import { parseLaunchRecord, recordFileStem, type LaunchRecord } from './record.js';
import { errnoOf } from '../util/io-error.js';

const DIR_MODE = 0o755;
const FILE_MODE = 0o644;
export const LATEST_RECORD = 'latest.json';
/** Bound on a record read back (a record is ~2 KiB); anything bigger is not ours. */
const MAX_RECORD_BYTES = 1024 * 1024;
/** A VM name becomes a directory name: no separators, no dot-dot, no hidden names. */
const SAFE_VM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function recordsDir(stateDir: string, vm: string): string {
  return join(stateDir, vm, 'measurements');
}

/**
 * writeRecord for a launch before its `cont` (SEV's measurement, SNP's launch record): a failure
 * names the VM and says the guest was not resumed, as the lifecycle then fails closed.
 * @throws SUP_ERR_RECORD_WRITE
 */
export async function writeRecordBeforeResume(stateDir: string, record: LaunchRecord): Promise<string> {
  try {
    return await writeRecord(stateDir, record);
  } catch (error: unknown) {
    if (!hasCode(error, 'SUP_ERR_RECORD_WRITE')) throw error;
    throw new SupervisorError('SUP_ERR_RECORD_WRITE', `VM ${record.vm}: ${error.message}; the guest was not resumed`, {
      details: error.details,
      cause: error,
    });
  }
}

/**
 * Write `record` durably; returns the dated file's path.
 * @throws SUP_ERR_RECORD_WRITE (read-only/full/missing dir, name taken, unsafe VM name).
 */
export async function writeRecord(stateDir: string, record: LaunchRecord): Promise<string> {
  const dir = recordsDir(stateDir, record.vm);
  const path = join(dir, `${recordFileStem(record.capturedAt)}.json`);
  if (!SAFE_VM_NAME.test(record.vm)) {
    throw new SupervisorError(
      'SUP_ERR_RECORD_WRITE',
      `cannot write the measurement record of VM ${JSON.stringify(record.vm)}: the name is not usable as a directory name`,
      {
        details: { vm: record.vm },
      },
    );
  }
  const text = `${JSON.stringify(record, null, 2)}\n`;
  const latest = join(dir, LATEST_RECORD);
  let step: 'dir' | 'write' | 'latest' = 'dir';
  try {
    await mkdir(dir, { recursive: true, mode: DIR_MODE });
    // mkdir's mode is filtered by the umask; fix it only when needed (chmod fails on immutable dirs).
    if (((await stat(dir)).mode & 0o777) !== DIR_MODE) await chmod(dir, DIR_MODE);
    step = 'write';
    await writeFileAtomic(path, text, { mode: FILE_MODE, overwrite: false });
    step = 'latest';
    await writeFileAtomic(latest, text, { mode: FILE_MODE, overwrite: true });
    return path;
  } catch (error: unknown) {
    if (step === 'latest')
      await unlink(path)
        .then(() => fsyncDir(dir))
        .catch(() => undefined);
    const errno = errnoOf(error);
    const why = errno === 'EEXIST' ? 'a record with that timestamp already exists (records are never rewritten)' : describeErrno(error);
    const message =
      step === 'dir'
        ? `cannot create the measurement directory ${dir} of VM ${record.vm}: ${why}`
        : step === 'write'
          ? `cannot write the measurement record of VM ${record.vm} at ${path}: ${why}`
          : `cannot update ${latest} for VM ${record.vm}: ${why}; the new record ${path} was removed again`;
    throw new SupervisorError('SUP_ERR_RECORD_WRITE', message, {
      details: { vm: record.vm, path, ...(errno === undefined ? {} : { errno }) },
      cause: error,
    });
  }
}

/** Read one record file; null when it does not exist. @throws SUP_ERR_INTERNAL when malformed. */
export async function readRecordFile(path: string): Promise<LaunchRecord | null> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > MAX_RECORD_BYTES) throw malformed(path, `larger than ${MAX_RECORD_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (error: unknown) {
    if (errnoOf(error) === 'ENOENT') return null;
    throw error instanceof SupervisorError ? error : malformed(path, describeErrno(error));
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw malformed(path, 'not JSON');
  }
  const record = parseLaunchRecord(value);
  if (record === null) throw malformed(path, 'not a sevsup.measurement/v1 or sevsup.snp-launch/v1 record');
  return record;
}

/** Paths of every dated record of `vm`, oldest first (ISO timestamps sort as strings). */
export async function listRecords(stateDir: string, vm: string): Promise<string[]> {
  if (!SAFE_VM_NAME.test(vm)) return [];
  const dir = recordsDir(stateDir, vm);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error: unknown) {
    if (errnoOf(error) === 'ENOENT') return [];
    throw error;
  }
  return names
    .filter((n) => n.endsWith('.json') && n !== LATEST_RECORD && !n.startsWith('.'))
    .sort()
    .map((n) => join(dir, n));
}

function malformed(path: string, why: string): SupervisorError {
  return new SupervisorError('SUP_ERR_INTERNAL', `cannot read measurement record ${path}: ${why}`, { details: { path } });
}

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on the device',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a component of the path is not a directory',
  ENOENT: 'the directory does not exist',
  EDQUOT: 'disk quota exceeded',
  EIO: 'I/O error',
  EISDIR: 'illegal operation on a directory',
};

function describeErrno(error: unknown): string {
  const errno = errnoOf(error);
  const text = errno === undefined ? undefined : ERRNO_TEXT[errno];
  if (text !== undefined && errno !== undefined) return `${text} (${errno})`;
  return error instanceof Error ? error.message : String(error);
}
