// Liveness of processes by pid, as /proc sees them: for our own children and for a QEMU the
// daemon did not start (or started before a restart).
// Owns: reading /proc/<pid>/stat, the polling wait, and finding the live processes whose command
// line mentions a text (a private directory: what a demo or test must not leave behind).
// Must not: send signals or reap anything.
// Why /proc and not kill(pid, 0): a zombie still answers kill(pid, 0), and on these hosts pid 1
// reaps orphans only every ~2 s, so an exited QEMU can look alive for that long.
import { readdirSync, readFileSync } from 'node:fs';
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
  const stat = readProcStat(pid, procRoot);
  return stat !== null && stat.state !== 'Z' && stat.state !== 'X';
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
