// A zero core-file limit on sevsup itself, set once before the first QEMU starts, so every QEMU
// (run in the foreground or detached by the daemon) inherits it: a QEMU core dump would hold guest
// RAM, and one of sevsup the secrets it relays. Beside the argv's dump-guest-core=off and systemd's
// LimitCORE=0, this covers `sevsup run` outside systemd.
// Why on sevsup itself, with util-linux `prlimit --pid`, rather than a wrapper around QEMU: Node
// has no setrlimit, a wrapper would change what is spawned (pid, errors for a missing binary, the
// command line re-attach checks), and lowering one's own limit needs no privilege.
// Must not: raise any limit, or let a launch go on when the limit could not be set (fail closed).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { SupervisorError } from '../errors.js';

const run = promisify(execFile);

let done: Promise<void> | null = null;

/** The soft and hard core limits of `pid` from /proc (`unlimited` as Infinity), or null. */
export function coreLimit(pid: number | 'self' = 'self'): { soft: number; hard: number } | null {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max core file size'));
    const [soft, hard] = (line?.slice('Max core file size'.length).trim().split(/\s+/) ?? []).map((v) =>
      v === 'unlimited' ? Infinity : Number(v),
    );
    return soft === undefined || hard === undefined || Number.isNaN(soft) || Number.isNaN(hard) ? null : { soft, hard };
  } catch {
    return null;
  }
}

/**
 * Set RLIMIT_CORE to 0 (soft and hard) on this process, once; later calls share the first.
 * @throws SUP_ERR_LAUNCH_FAILED when the limit is not 0 afterwards (prlimit missing or refused).
 */
export function disableCoreDumps(prlimit = 'prlimit'): Promise<void> {
  done ??= setZero(prlimit).catch((error: unknown) => {
    done = null;
    throw error;
  });
  return done;
}

async function setZero(prlimit: string): Promise<void> {
  const now = coreLimit();
  if (now?.soft === 0 && now.hard === 0) return;
  let why = '';
  try {
    await run(prlimit, [`--pid=${process.pid}`, '--core=0:0'], { timeout: 10_000 });
  } catch (error: unknown) {
    why = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
  }
  const after = coreLimit();
  if (after?.soft !== 0 || after.hard !== 0) {
    throw new SupervisorError(
      'SUP_ERR_LAUNCH_FAILED',
      `cannot set a zero core-file limit before starting QEMU (a core dump would hold guest memory)${why === '' ? '' : `: ${why}`}; ` +
        "install util-linux's prlimit, or start sevsup with 'ulimit -c 0' / systemd's LimitCORE=0",
    );
  }
}
