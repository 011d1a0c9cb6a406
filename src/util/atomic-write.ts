// Durable, atomic file creation: write a temp file in the target's directory, fsync it, move it
// into place, fsync the directory. Readers see either nothing or the whole file, even after a crash.
// Owns: the temp-file naming and cleanup. Must not: decide paths, modes or formats (callers do);
// leave a temp or partial file behind on any failure.
// `overwrite: false` uses link(2), which fails with EEXIST instead of replacing (records are never
// rewritten); `overwrite: true` uses rename(2), which replaces atomically (e.g. `latest.json`).
import { randomBytes } from 'node:crypto';
import { link, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** File mode of the new file. @default 0o644 */
  readonly mode?: number;
  /** Replace an existing target (rename) instead of refusing with EEXIST (link). @default false */
  readonly overwrite?: boolean;
}

/**
 * Write `data` to `path` atomically and durably. Rejects with the underlying Node error
 * (`code` EEXIST, ENOSPC, EROFS, EACCES, ENOTDIR, …) after removing its temp file.
 * Precondition: the directory of `path` exists.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  // Dot-prefixed and unique, so listings that match `*.json` never see it and two writers never collide.
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let created = false;
  try {
    const handle = await open(temp, 'wx', options.mode ?? 0o644);
    created = true;
    try {
      await handle.writeFile(data);
      // open()'s mode is filtered by the umask; the caller asked for an exact mode.
      await handle.chmod(options.mode ?? 0o644);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.overwrite === true) {
      await rename(temp, path);
      created = false;
    } else {
      await link(temp, path);
      await unlink(temp);
      created = false;
    }
    await fsyncDir(dir);
  } catch (error: unknown) {
    if (created) await unlink(temp).catch(() => undefined);
    throw error;
  }
}

/** fsync a directory so a rename/link/unlink in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
