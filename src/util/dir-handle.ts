// openat(2) for Node: a directory held open by fd, and names inside it reached through
// /proc/self/fd/<fd>/<name>, so the directory's path can be swapped for a symlink afterwards without
// redirecting anything (the kernel resolves the fd to the directory it was opened on).
// Owns: walking a path one component at a time with O_NOFOLLOW (creating missing ones), and the
// fd-relative names. Must not: follow a symlink in the walked path, or pick file names (callers do).
// Linux only (as sevsup); /proc must be mounted.
import { closeSync, constants, lstatSync, mkdirSync, openSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { errnoOf } from './io-error.js';

/** O_DIRECTORY | O_NOFOLLOW: a directory, and never a symlink to one. */
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

export class DirHandleError extends Error {
  constructor(
    message: string,
    readonly component: string,
    readonly errno: string | undefined,
  ) {
    super(message);
  }
}

/** A directory held open; close() once done. */
export class DirHandle {
  constructor(readonly fd: number) {}

  /** `name` inside this directory, for this process's own file calls (one component, no '/'). */
  path(name: string): string {
    if (name === '' || name === '.' || name === '..' || name.includes('/'))
      throw new Error(`internal: ${JSON.stringify(name)} is not one path component`);
    return `/proc/self/fd/${this.fd}/${name}`;
  }

  /** The same for a child process (its /proc/self is its own): valid while this process holds the fd. */
  pathForChild(name: string): string {
    return this.path(name).replace('/proc/self/', `/proc/${process.pid}/`);
  }

  /** Open the directory `name` inside this one, never through a symlink. */
  open(name: string): DirHandle {
    return new DirHandle(openSync(this.path(name), DIR_FLAGS));
  }

  close(): void {
    closeSync(this.fd);
  }
}

/**
 * Open the absolute directory `path`, one component at a time without following a symlink,
 * creating missing components with `mode` when `create`.
 * @throws DirHandleError naming the component that is a symlink, not a directory, or cannot be made.
 */
export function openDirNoFollow(path: string, options: { create?: boolean; mode?: number } = {}): DirHandle {
  if (!isAbsolute(path)) throw new DirHandleError(`${path} is not an absolute path`, path, undefined);
  let dir = new DirHandle(openSync('/', DIR_FLAGS));
  let walked = '';
  for (const component of path.split('/').filter((c) => c !== '' && c !== '.')) {
    walked += `/${component}`;
    if (component === '..') {
      dir.close();
      throw new DirHandleError(`${path} contains '..'; give the real path`, walked, undefined);
    }
    try {
      if (options.create === true) {
        try {
          mkdirSync(dir.path(component), { mode: options.mode ?? 0o750 });
        } catch (error: unknown) {
          if (errnoOf(error) !== 'EEXIST') throw error;
        }
      }
      const next = dir.open(component);
      dir.close();
      dir = next;
    } catch (error: unknown) {
      const code = errnoOf(error);
      // O_DIRECTORY | O_NOFOLLOW on a symlink fails with ENOTDIR (or ELOOP): say which it is.
      let symlink = code === 'ELOOP';
      try {
        symlink ||= lstatSync(dir.path(component)).isSymbolicLink();
      } catch {
        // Gone meanwhile: the errno says enough.
      }
      dir.close();
      const why = symlink
        ? 'is a symlink'
        : code === 'ENOTDIR'
          ? 'is not a directory'
          : code === 'ENOENT'
            ? 'does not exist'
            : (code ?? String(error));
      throw new DirHandleError(`${walked} ${why}`, walked, code);
    }
  }
  return dir;
}
