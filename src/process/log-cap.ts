// Files QEMU writes directly (its stderr as qemu.log, the guest's serial.log): created private and
// never through a symlink, and qemu.log held to a size bound while sevsup supervises it.
// Owns: the private-file creation and the bound. Must not: read what the files say (stderr-tail.ts
// does, redacted) or delete them.
// Why a watcher that rotates, not a pipe: a detached QEMU must outlive the daemon, and a pipe's
// reader dies with it (QEMU's next stderr write then fails, and re-attach cannot get the pipe back).
// QEMU's stderr file is opened O_APPEND, so after a truncation its next write lands at the new end:
// the file stays dense and whole lines stay whole. Between daemons nobody rotates; that is bounded
// in practice because what floods QEMU's stderr (tracing, logging) is only reachable through the
// daemon's QMP proxy, which refuses it.
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  renameSync,
  watch,
  writeSync,
  type FSWatcher,
} from 'node:fs';
import { SupervisorError } from '../errors.js';
import { errnoOf } from '../util/io-error.js';

/** qemu.log's bound: a few thousand QEMU lines; the part before is kept once in `<file>.1`. */
export const QEMU_LOG_MAX_BYTES = 1024 * 1024;
/** How soon after QEMU writes the size is checked (inotify, coalesced). */
const CHECK_DELAY_MS = 50;
/** A fallback check, for file systems without inotify. */
const POLL_MS = 1000;

/**
 * Create `path` if missing (mode 0600), or open what is there, never through a symlink and only as
 * a regular file, and set its mode to 0600 whatever it was (an older sevsup created serial.log 0644).
 * @throws SUP_ERR_RUN_DIR naming the path.
 */
export function ensurePrivateFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (error: unknown) {
    const code = errnoOf(error) ?? String(error);
    const why = code === 'ELOOP' ? 'it is a symlink; remove it' : code;
    throw new SupervisorError('SUP_ERR_RUN_DIR', `cannot create ${path} (${why})`, { details: { path }, cause: error });
  }
  try {
    if (!fstatSync(fd).isFile())
      throw new SupervisorError('SUP_ERR_RUN_DIR', `${path} exists and is not a regular file; move it away`, { details: { path } });
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

/**
 * If `path` is larger than `maxBytes`, keep its last `maxBytes` in `<path>.1` (0600, replaced) and
 * truncate it to 0. Returns whether it rotated; never throws (a log must not fail a guest).
 */
export function capLogFile(path: string, maxBytes = QEMU_LOG_MAX_BYTES): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() || stat.size <= maxBytes) return false;
    const keep = Buffer.alloc(maxBytes);
    const read = readSync(fd, keep, 0, maxBytes, stat.size - maxBytes);
    writePrivate(`${path}.1`, keep.subarray(0, read));
    ftruncateSync(fd, 0);
    return true;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/** Replace `path` with `bytes`, 0600, not through a symlink (a symlink there is replaced, not followed). */
function writePrivate(path: string, bytes: Buffer): void {
  const temp = `${path}.tmp`;
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
  // rename replaces a symlink planted at `path` instead of writing through it.
  renameSync(temp, path);
}

/** Keep `path` under `maxBytes` until close(): checked shortly after each write and every second. */
export function watchLogFile(path: string, maxBytes = QEMU_LOG_MAX_BYTES): { close(): void } {
  let pending: NodeJS.Timeout | null = null;
  const check = (): void => {
    pending = null;
    capLogFile(path, maxBytes);
  };
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(path, { persistent: false }, () => {
      pending ??= setTimeout(check, CHECK_DELAY_MS).unref();
    });
    watcher.on('error', () => undefined);
  } catch {
    watcher = null;
  }
  const poll = setInterval(check, POLL_MS).unref();
  check();
  return {
    close(): void {
      watcher?.close();
      clearInterval(poll);
      if (pending !== null) clearTimeout(pending);
    },
  };
}
