// Liveness of processes by pid, as /proc sees them: for our own children and for a QEMU the
// daemon did not start (or started before a restart).
// Owns: reading /proc/<pid>/stat (by path, or through a handle kept open on one process), the
// polling wait, and finding the live processes whose command line mentions a text (a private
// directory: what a demo or test must not leave behind).
// Must not: send signals or reap anything.
// Why /proc and not kill(pid, 0): a zombie still answers kill(pid, 0), and on these hosts pid 1
// reaps orphans only every ~2 s, so an exited QEMU can look alive for that long.
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

export interface ProcStat {
  readonly pid: number;
  /** One letter: R running, S sleeping, D disk sleep, T stopped, Z zombie, X dead, … */
  readonly state: string;
  readonly ppid: number;
  /** Process group id. */
  readonly pgrp: number;
  /** Start time in clock ticks after boot: with the pid, it names one process (pids are reused). */
  readonly startTime: number;
}

/** Poll interval of waitForPidExit: short against QEMU's exit, cheap for a 2-core host. */
export const PID_POLL_INTERVAL_MS = 50;

/** /proc/<pid>/stat of a live or zombie process; null when there is no such process. */
export function readProcStat(pid: number, procRoot = '/proc'): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return parseProcStat(pid, text);
}

/** The fields of one /proc/<pid>/stat text; null when it is not one. */
function parseProcStat(pid: number, text: string): ProcStat | null {
  // comm (field 2) is in parentheses and may itself contain spaces and ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const ppid = Number(fields[1]);
  const pgrp = Number(fields[2]);
  const startTime = Number(fields[19]);
  if (state === undefined || !Number.isInteger(ppid) || !Number.isInteger(pgrp) || !Number.isInteger(startTime)) return null;
  return { pid, state, ppid, pgrp, startTime };
}

/** True while `pid` exists and is neither a zombie nor dead. */
export function isPidAlive(pid: number, procRoot = '/proc'): boolean {
  return isLiveStat(readProcStat(pid, procRoot));
}

function isLiveStat(stat: ProcStat | null): boolean {
  return stat !== null && stat.state !== 'Z' && stat.state !== 'X';
}

/** /proc/<pid>/stat is well under 1 KiB (comm is at most 15 bytes); read synchronously, so one buffer serves all. */
const statBuffer = Buffer.allocUnsafe(4096);

/**
 * /proc/<pid>/stat kept open, for a process asked about often (a guest's QEMU: every status
 * request asks). Each question is one pread instead of open, fstat, reads and close, and the
 * descriptor names that one process, not its pid number: once it is reaped, reads fail (ESRCH)
 * even if the pid is reused. A zombie still reads, as state Z.
 */
export class ProcStatHandle {
  readonly pid: number;
  #fd: number | null;

  /** Opens at once: call it while `pid` is known to be the process meant (an unreaped child). */
  constructor(pid: number, procRoot = '/proc') {
    this.pid = pid;
    try {
      this.#fd = openSync(`${procRoot}/${pid}/stat`, 'r');
    } catch {
      this.#fd = null;
    }
  }

  /** False when /proc/<pid>/stat could not be opened (no such process, no /proc), or after close(). */
  get open(): boolean {
    return this.#fd !== null;
  }

  /** Same answer as isPidAlive for that process; false once it is gone, or when not open. */
  isAlive(): boolean {
    if (this.#fd === null) return false;
    let length: number;
    try {
      length = readSync(this.#fd, statBuffer, 0, statBuffer.length, 0);
    } catch {
      return false;
    }
    return isLiveStat(parseProcStat(this.pid, statBuffer.toString('latin1', 0, length)));
  }

  close(): void {
    if (this.#fd === null) return;
    closeSync(this.#fd);
    this.#fd = null;
  }
}

/** Live (not zombie) processes other than this one whose command line contains `needle`. */
export function processesMentioning(needle: string): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!cmdline.includes(needle) || !isPidAlive(pid)) continue;
    found.push({ pid, cmdline: cmdline.replaceAll('\0', ' ').trim() });
  }
  return found;
}

export interface WaitForPidExitOptions {
  /** Give up after this long and resolve `false`. @default no limit */
  readonly timeoutMs?: number;
  /** @default PID_POLL_INTERVAL_MS */
  readonly intervalMs?: number;
  /** Stop waiting (resolves `false`). */
  readonly signal?: AbortSignal;
  /**
   * The process's start time from readProcStat, so a new process that reused the pid counts as
   * "the old one exited".
   */
  readonly startTime?: number;
  /** @default '/proc' */
  readonly procRoot?: string;
}

/**
 * Wait until `pid` (not necessarily our child) has exited; a zombie counts as exited.
 * Resolves `true` when it has, `false` on timeout or abort. Never throws.
 */
export async function waitForPidExit(pid: number, options: WaitForPidExitOptions = {}): Promise<boolean> {
  const interval = options.intervalMs ?? PID_POLL_INTERVAL_MS;
  const deadline = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.timeoutMs;
  for (;;) {
    const stat = readProcStat(pid, options.procRoot);
    if (stat === null || stat.state === 'Z' || stat.state === 'X') return true;
    if (options.startTime !== undefined && stat.startTime !== options.startTime) return true;
    if (options.signal?.aborted === true) return false;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    try {
      await delay(Math.min(interval, left), undefined, options.signal === undefined ? {} : { signal: options.signal });
    } catch {
      return false;
    }
  }
}
