// The per-VM run directory: <run-dir>/<vm> (0750, optionally group-owned for QMP-proxy clients)
// holding the proxy and control sockets, and <vm>/private (0700) holding QEMU's own monitor socket.
// Owns: creating both with exact modes (umask does not apply), the serial log (0600) QEMU appends
// to, and removing stale sockets.
// Must not: delete anything that is not a socket, or a socket something still listens on; follow
// symlinks planted where a directory should be.
import { connect } from 'node:net';
import { chmod, chown, lstat, mkdir, stat as statFollow, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SupervisorError } from '../errors.js';
import { errnoOf } from '../util/io-error.js';
import { ensurePrivateFile } from './log-cap.js';

export interface VmPaths {
  /** <run-dir>/<vm>, 0750. */
  readonly dir: string;
  /** <dir>/private, 0700: only the supervisor reaches QEMU's monitor. */
  readonly privateDir: string;
  readonly monitorSocket: string;
  readonly proxySocket: string;
  readonly controlSocket: string;
  readonly pidFile: string;
  readonly serialLog: string;
  /** The GHCB certificate table the daemon keeps for an SNP guest's VMM (0644: public certificates). */
  readonly snpCertTable: string;
}

export interface PrepareRunDirOptions {
  /** Group that owns <vm> (not private/), so proxy clients in it can reach qmp.sock. */
  readonly group?: number;
}

export const VM_DIR_MODE = 0o750;
export const PRIVATE_DIR_MODE = 0o700;
/** The top run dir only needs to be traversable; what is inside guards itself. */
export const RUN_ROOT_MODE = 0o755;
/** A listener answers at once; a longer silence is treated as "in use" (never delete it). */
export const SOCKET_PROBE_TIMEOUT_MS = 1_000;

/** The paths of one VM's run directory, without touching the filesystem. */
export function vmRunPaths(runDir: string, vm: string): VmPaths {
  const dir = join(runDir, vm);
  const privateDir = join(dir, 'private');
  return {
    dir,
    privateDir,
    monitorSocket: join(privateDir, 'monitor.sock'),
    proxySocket: join(dir, 'qmp.sock'),
    controlSocket: join(dir, 'control.sock'),
    pidFile: join(dir, 'qemu.pid'),
    serialLog: join(dir, 'serial.log'),
    snpCertTable: join(dir, 'snp-certs.bin'),
  };
}

/**
 * Create <runDir>/<vm> (0750) and its private/ (0700), and remove stale sockets in them.
 * MUST be called before QEMU or the proxy binds a socket there, and while the VM is not running.
 * @throws SUP_ERR_RUN_DIR when a path is not what it should be (a file where a socket or directory
 *   belongs, a symlink, a socket still in use) or cannot be created.
 */
export async function prepareVmRunDir(runDir: string, vm: string, options: PrepareRunDirOptions = {}): Promise<VmPaths> {
  if (vm === '' || vm === '.' || vm === '..' || vm.includes('/') || vm.includes('\0')) {
    throw new SupervisorError('SUP_ERR_RUN_DIR', `VM name ${JSON.stringify(vm)} cannot name a run directory`, { details: { vm } });
  }
  const paths = vmRunPaths(runDir, vm);
  await ensureDir(runDir, RUN_ROOT_MODE, false);
  await ensureDir(paths.dir, VM_DIR_MODE, true, options.group);
  await ensureDir(paths.privateDir, PRIVATE_DIR_MODE, true);
  for (const socket of [paths.monitorSocket, paths.proxySocket, paths.controlSocket]) await removeStaleSocket(socket);
  // QEMU would create the serial log with its umask (0644): the guest's console is private, as qemu.log.
  ensurePrivateFile(paths.serialLog);
  return paths;
}

/** Create `dir` if missing; when `exact`, also set its mode (and group) whatever was there. */
async function ensureDir(dir: string, mode: number, exact: boolean, group?: number): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode });
  } catch (error: unknown) {
    throw runDirError(`cannot create ${dir} (${errnoOrMessage(error)})`, dir, error);
  }
  // The top run dir may be a deliberate symlink; the per-VM ones are ours and must be real.
  const stat = exact ? await lstat(dir) : await statFollow(dir);
  if (stat.isSymbolicLink() || !stat.isDirectory()) {
    throw runDirError(`${dir} exists and is not a directory; move it away`, dir);
  }
  if (!exact) return;
  try {
    if (group !== undefined) await chown(dir, -1, group);
    // mkdir's mode went through the umask, and an existing directory keeps whatever it had.
    await chmod(dir, mode);
  } catch (error: unknown) {
    throw runDirError(`cannot set owner or mode of ${dir} (${errnoOrMessage(error)})`, dir, error);
  }
}

async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (error: unknown) {
    if (errnoOrMessage(error) === 'ENOENT') return;
    throw runDirError(`cannot inspect ${path} (${errnoOrMessage(error)})`, path, error);
  }
  if (!isSocket) {
    throw runDirError(`${path} exists and is not a socket; remove it by hand if nothing needs it`, path);
  }
  if (await socketAnswers(path)) {
    throw runDirError(`${path} is in use by a running process; is the VM already running?`, path);
  }
  try {
    await unlink(path);
  } catch (error: unknown) {
    if (errnoOrMessage(error) !== 'ENOENT') throw runDirError(`cannot remove stale socket ${path} (${errnoOrMessage(error)})`, path, error);
  }
}

/** True when something accepts connections on the socket (or does not refuse in time). */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const finish = (answer: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(true), SOCKET_PROBE_TIMEOUT_MS);
    socket.once('connect', () => finish(true));
    socket.once('error', (error: NodeJS.ErrnoException) => finish(error.code !== 'ECONNREFUSED' && error.code !== 'ENOENT'));
  });
}

function runDirError(message: string, path: string, cause?: unknown): SupervisorError {
  return new SupervisorError('SUP_ERR_RUN_DIR', message, { details: { path }, ...(cause === undefined ? {} : { cause }) });
}

/** The errno, or the message of an error that has none (for messages and comparisons alike). */
function errnoOrMessage(error: unknown): string {
  return errnoOf(error) ?? (error instanceof Error ? error.message : String(error));
}
