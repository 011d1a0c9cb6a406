// The lock on sevsup's run and state directories: `<dir>/.sevsup.lock`, a kernel flock(2) held for
// the life of the process. The daemon takes it exclusively (one daemon per directory pair: a
// second one would re-attach, and fight over, the first one's guests); `sevsup run` takes it
// shared (several foreground guests may share the directories, never with a daemon).
// Owns: taking the lock, naming who holds it, and writing the holder's pid for humans.
// Must not: wait for the lock (a second supervisor must stop at once, before touching any guest),
// or let the lock leak into QEMU (it would keep the lock after the daemon dies).
//
// Why flock(2), taken through util-linux's flock(1): Node has no flock call, and sevsup ships no
// native addon. The lock belongs to the open file description, not the process that placed it:
// flock(1) gets our descriptor as its fd 3, locks it and exits, and the lock stays held by our
// descriptor until it is closed. The kernel closes it when we die, however we die (kill -9, OOM,
// crash), so there is never a stale lock to judge; a pid file checked against /proc would need
// that judgement (pid reuse, start times) and would race between the check and the write. Node
// opens every file with O_CLOEXEC, so no child (QEMU, the simulator) inherits the descriptor.
import { spawn } from 'node:child_process';
import { closeSync, constants, fstatSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { mkdir, readFile, readdir, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SupervisorError } from '../errors.js';
import { errnoOf } from '../util/io-error.js';

/** The lock file's name in each directory (a VM name cannot start with a dot). */
export const DIR_LOCK_FILE = '.sevsup.lock';
/** flock(1)'s exit status when the lock is held by someone else (we ask for EX_TEMPFAIL). */
const CONFLICT_EXIT = 75;

export type DirLockMode = 'exclusive' | 'shared';

export interface DirLock {
  /** The lock files held, one per directory. */
  readonly paths: readonly string[];
  /** Close the descriptors (the kernel drops the locks). Exiting does the same. */
  release(): void;
}

export interface DirLockOptions {
  readonly mode: DirLockMode;
  /** Who asks, for the message a loser gets: `sevsup daemon`, `sevsup run`. */
  readonly who: string;
  /** @default 'flock' from PATH */
  readonly flock?: string;
}

/**
 * Lock every directory in `dirs` (all or none), without waiting. The directories are locked at
 * the same time (each flock(1) is a process start: one after the other they cost a `sevsup run`
 * twice that before its launch), and judged in order: the first that fails is the one reported.
 * @throws SUP_ERR_DIR_LOCKED naming the lock file and the holders' pids when another process
 *   holds one; SUP_ERR_RUN_DIR when a lock file cannot be opened or flock(1) cannot run.
 */
export async function lockDirs(dirs: readonly string[], options: DirLockOptions): Promise<DirLock> {
  const fds: number[] = [];
  const release = (): void => {
    for (const fd of fds.splice(0)) closeSync(fd);
  };
  const lockOne = async (dir: string): Promise<{ path: string; fd: number }> => {
    await ensureDir(dir);
    const path = join(dir, DIR_LOCK_FILE);
    const fd = openLockFile(path);
    fds.push(fd);
    const status = await flockFd(fd, options.mode, options.flock ?? 'flock', path);
    if (status === 'held') throw await lockedError(path, options);
    return { path, fd };
  };
  const settled = await Promise.allSettled([...new Set(dirs)].map(lockOne));
  const failure = settled.find((r) => r.status === 'rejected');
  if (failure !== undefined) {
    release();
    throw failure.reason;
  }
  const locks = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  if (options.mode === 'exclusive') {
    // For humans (`cat`); the holders are found from /proc, which cannot be stale.
    for (const { fd } of locks) {
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid}\n`, 0);
    }
  }
  return { paths: locks.map((l) => l.path), release };
}

/** Create a missing directory (0755: what is inside guards itself, as run-dir.ts says). */
async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (error: unknown) {
    throw new SupervisorError(
      'SUP_ERR_RUN_DIR',
      `cannot create ${dir} (${errnoOf(error) ?? String(error)}); check --run-dir and --state-dir`,
      {
        details: { path: dir },
        cause: error,
      },
    );
  }
}

function openLockFile(path: string): number {
  let fd: number;
  try {
    // No symlinks: a planted link must not make us create or truncate another file.
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (error: unknown) {
    throw new SupervisorError(
      'SUP_ERR_RUN_DIR',
      `cannot open the lock file ${path} (${errnoOf(error) ?? String(error)}); is it a symlink, or is the directory not writable?`,
      {
        details: { path },
        cause: error,
      },
    );
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new SupervisorError('SUP_ERR_RUN_DIR', `${path} is not a regular file; move it away`, { details: { path } });
  }
  return fd;
}

/** Lock our descriptor `fd` through flock(1) given it as its fd 3. */
function flockFd(fd: number, mode: DirLockMode, flock: string, path: string): Promise<'locked' | 'held'> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      flock,
      ['--nonblock', mode === 'exclusive' ? '--exclusive' : '--shared', '--conflict-exit-code', String(CONFLICT_EXIT), '3'],
      {
        stdio: ['ignore', 'ignore', 'pipe', fd],
      },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8').slice(0, 1024)));
    child.once('error', (error) =>
      reject(
        new SupervisorError(
          'SUP_ERR_RUN_DIR',
          `cannot run ${flock} to lock ${path} (${errnoOf(error) ?? error.message}); install util-linux`,
          {
            details: { path },
            cause: error,
          },
        ),
      ),
    );
    child.once('close', (code) => {
      if (code === 0) resolve('locked');
      else if (code === CONFLICT_EXIT) resolve('held');
      else
        reject(
          new SupervisorError('SUP_ERR_RUN_DIR', `${flock} could not lock ${path} (exit ${String(code)}: ${stderr.trim()})`, {
            details: { path },
          }),
        );
    });
  });
}

async function lockedError(path: string, options: DirLockOptions): Promise<SupervisorError> {
  const holders = await processesHolding(path);
  const named = holders.length === 0 ? 'a process this user cannot see' : holders.map((h) => `pid ${h.pid} (${h.comm})`).join(', ');
  const what = options.mode === 'exclusive' ? 'another sevsup (daemon or `sevsup run`) is using' : 'a sevsup daemon is supervising';
  return new SupervisorError(
    'SUP_ERR_DIR_LOCKED',
    `${options.who}: ${what} the same directories: ${path} is locked by ${named}; stop it first, or give this one its own --run-dir and --state-dir (two supervisors must never share guests)`,
    { details: { lockFile: path, holders: holders.map((h) => h.pid) } },
  );
}

/** The processes (other than us) with `path` open: the lock's holders. Best effort, from /proc. */
export async function processesHolding(path: string, procRoot = '/proc'): Promise<{ pid: number; comm: string }[]> {
  const target = await stat(path).catch(() => null);
  if (target === null) return [];
  const found: { pid: number; comm: string }[] = [];
  const pids = (await readdir(procRoot).catch(() => [] as string[])).filter((n) => /^\d+$/.test(n) && Number(n) !== process.pid);
  for (const pid of pids) {
    const fdDir = join(procRoot, pid, 'fd');
    const fds = await readdir(fdDir).catch(() => [] as string[]);
    for (const fd of fds) {
      const link = await readlink(join(fdDir, fd)).catch(() => '');
      if (!link.startsWith('/')) continue;
      const info = await stat(join(fdDir, fd)).catch(() => null);
      if (info === null || info.ino !== target.ino || info.dev !== target.dev) continue;
      const comm = await readFile(join(procRoot, pid, 'comm'), 'utf8').catch(() => '?');
      found.push({ pid: Number(pid), comm: comm.trim() });
      break;
    }
  }
  return found;
}
