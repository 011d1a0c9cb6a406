// Adopting a QEMU this supervisor did not spawn: one a previous daemon started detached, found
// again after a restart. It is named by pid AND start time (pids are reused) AND a command line
// that mentions the VM's own monitor socket, so a recycled pid is never mistaken for a guest.
// Owns: that identity check and the adopted process's liveness, signals and exit (polled from
// /proc: it is not our child, so there is no exit status to wait for). Must not: reap, or signal a
// process whose identity no longer matches.
import { readFileSync, readdirSync } from 'node:fs';
import { silentLogger, type Logger } from '../log.js';
import { StoppableQemu, type QemuExit, type QemuProcess } from './launcher.js';
import { readProcStat, waitForPidExit } from './pid.js';
import { watchLogFile } from './log-cap.js';
import { readFileTail } from './stderr-tail.js';

/**
 * How often an adopted QEMU's exit is polled. Its monitor closing is noticed at once anyway; this
 * only bounds how late the exit itself is seen, and 50 idle guests must cost the daemon nothing.
 */
export const ADOPTED_POLL_INTERVAL_MS = 500;

export interface QemuIdentity {
  readonly pid: number;
  /** Start time (clock ticks after boot) from /proc/<pid>/stat when it was spawned. */
  readonly startTime: number;
  /** A string its command line must contain: the VM's monitor socket path. */
  readonly cmdlineIncludes: string;
}

export type IdentityCheck = { readonly kind: 'alive' } | { readonly kind: 'gone'; readonly why: string };

/** Is `identity` a live process right now? @param procRoot for tests */
export function checkQemuIdentity(identity: QemuIdentity, procRoot = '/proc'): IdentityCheck {
  const stat = readProcStat(identity.pid, procRoot);
  if (stat === null) return { kind: 'gone', why: `no process ${identity.pid}` };
  if (stat.state === 'Z' || stat.state === 'X') return { kind: 'gone', why: `process ${identity.pid} has exited` };
  if (stat.startTime !== identity.startTime) {
    return {
      kind: 'gone',
      why: `pid ${identity.pid} now names another process (started at tick ${stat.startTime}, not ${identity.startTime})`,
    };
  }
  let cmdline: string;
  try {
    cmdline = readFileSync(`${procRoot}/${identity.pid}/cmdline`, 'utf8');
  } catch {
    return { kind: 'gone', why: `cannot read the command line of process ${identity.pid}` };
  }
  if (!cmdline.includes(identity.cmdlineIncludes)) {
    return {
      kind: 'gone',
      why: `process ${identity.pid} is not this VM's QEMU (its command line does not name ${identity.cmdlineIncludes})`,
    };
  }
  return { kind: 'alive' };
}

export interface AdoptOptions extends QemuIdentity {
  /** The log file its stderr was sent to (LaunchOptions.stderrFile), for exit messages. */
  readonly stderrFile?: string;
  readonly logger?: Logger;
  /** @default ADOPTED_POLL_INTERVAL_MS */
  readonly pollIntervalMs?: number;
  /** @default '/proc' */
  readonly procRoot?: string;
}

/**
 * A QemuProcess for an already running QEMU, with the same stop ladder as a spawned one; null
 * when `identity` does not name a live process (it exited, or its pid was reused).
 */
export function adoptQemu(options: AdoptOptions): QemuProcess | null {
  if (checkQemuIdentity(options, options.procRoot).kind !== 'alive') return null;
  const logger = (options.logger ?? silentLogger()).child({ component: 'launcher', pid: options.pid });
  return new AdoptedQemu(options, logger);
}

class AdoptedQemu extends StoppableQemu {
  readonly pid: number;
  readonly exited: Promise<QemuExit>;
  readonly #o: AdoptOptions;
  readonly #capped: { close(): void } | null;
  /** Ends the exit poll on release(). */
  readonly #released = new AbortController();

  constructor(options: AdoptOptions, logger: Logger) {
    super(logger);
    this.pid = options.pid;
    this.#o = options;
    // The re-attaching supervisor takes over holding QEMU's log file under its bound (log-cap.ts).
    const capped = options.stderrFile === undefined ? null : watchLogFile(options.stderrFile);
    this.#capped = capped;
    const gone = waitForPidExit(options.pid, {
      startTime: options.startTime,
      intervalMs: options.pollIntervalMs ?? ADOPTED_POLL_INTERVAL_MS,
      signal: this.#released.signal,
      ...(options.procRoot === undefined ? {} : { procRoot: options.procRoot }),
    }).finally(() => capped?.close());
    // False only when released: the process was not seen to exit, so `exited` stays pending.
    this.exited = gone.then((exited) =>
      exited ? this.finish(undefined, undefined, this.stage, this.stderrTail()) : new Promise<QemuExit>(() => undefined),
    );
  }

  release(): void {
    this.#released.abort();
    this.#capped?.close();
  }

  stderrTail(): string {
    return this.#o.stderrFile === undefined ? '' : readFileTail(this.#o.stderrFile);
  }

  /** One /proc read: pid and start time already name the process (status calls this often). */
  isAlive(): boolean {
    if (this.ended) return false;
    const stat = readProcStat(this.pid, this.#o.procRoot);
    return stat !== null && stat.startTime === this.#o.startTime && stat.state !== 'Z' && stat.state !== 'X';
  }

  protected sendSignal(signal: 'SIGTERM' | 'SIGKILL'): boolean {
    // Checked in full right before: never signal a process that merely inherited the pid.
    if (this.ended || checkQemuIdentity(this.#o, this.#o.procRoot).kind !== 'alive') return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

/** Linux reports start times in USER_HZ ticks, which is 100 on every architecture QEMU-SEV runs on. */
const USER_HZ = 100;

/** A live process found by its command line alone, when the recorded pid and start time were lost. */
export interface FoundQemu {
  readonly pid: number;
  readonly startTime: number;
  /** When it started (boot time + start ticks). */
  readonly startedAt: Date;
}

/**
 * Every live process whose command line names `cmdlineIncludes` (a VM's private monitor socket:
 * only its QEMU is given that path). For a guest whose state file was lost; the caller still has
 * to prove the start time (e.g. that it started before sevsup last wrote about the guest).
 */
export function findQemuByCmdline(cmdlineIncludes: string, procRoot = '/proc'): FoundQemu[] {
  let bootSeconds: number;
  let entries: string[];
  try {
    const btime = /^btime (\d+)$/m.exec(readFileSync(`${procRoot}/stat`, 'utf8'));
    bootSeconds = Number(btime?.[1] ?? NaN);
    entries = readdirSync(procRoot).filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid);
  } catch {
    return [];
  }
  const found: FoundQemu[] = [];
  for (const name of entries) {
    const pid = Number(name);
    const stat = readProcStat(pid, procRoot);
    if (stat === null || !Number.isFinite(bootSeconds)) continue;
    const identity = { pid, startTime: stat.startTime, cmdlineIncludes };
    if (checkQemuIdentity(identity, procRoot).kind !== 'alive') continue;
    found.push({ pid, startTime: stat.startTime, startedAt: new Date((bootSeconds + stat.startTime / USER_HZ) * 1000) });
  }
  return found;
}
