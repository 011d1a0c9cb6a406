// Binding a server to a unix socket path that never exists with looser permissions than asked:
// bind under a temporary name, set mode and group, then move it into place. Shared by the QMP
// proxy and the control API (both are access boundaries: their mode and group are the ACL).
// Must not: decide policy about stale sockets (callers remove or keep them before calling).
import { chmod, chown, link, rename, rm } from 'node:fs/promises';
import type { Server } from 'node:net';

export interface UnixListenOptions {
  readonly mode: number;
  /** Group to own the socket (numeric gid). */
  readonly gid?: number;
  /**
   * Replace whatever is at `path` (rename), or fail with EEXIST when something is there (link),
   * so a socket another process still serves is never silently taken over.
   */
  readonly replace: boolean;
}

/**
 * Listen on `path` with exactly `mode` (and `gid`) from the first moment the path exists.
 * @throws the listen/chmod/chown error, or an EEXIST error when `replace` is false and `path` exists.
 */
export async function listenUnixSocket(server: Server, path: string, options: UnixListenOptions): Promise<void> {
  const staging = `${path}~`;
  await rm(staging, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(staging, () => {
      server.off('error', reject);
      resolve();
    });
  });
  try {
    await chmod(staging, options.mode);
    if (options.gid !== undefined) await chown(staging, -1, options.gid);
    if (options.replace) {
      await rename(staging, path);
    } else {
      await link(staging, path);
      await rm(staging, { force: true });
    }
  } catch (error) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(staging, { force: true });
    throw error;
  }
}
