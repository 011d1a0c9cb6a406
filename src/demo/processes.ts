// The processes `sevsup demo` starts: short commands run to completion (sevsup attest/qmp, the
// libvirt validator) and the long-running supervisor; and the final sweep that proves nothing the
// demo started is left. Owns: spawning, output capture, and stopping by pid.
// Must not: signal any process it did not start, except ones whose command line names the demo's
// own private work directory (QEMU and the simulator under it), which are the demo's descendants.
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { processesMentioning, readProcStat, waitForPidExit } from '../process/pid.js';

// The demo's tests look for leftovers with the same scan the demo's own sweep uses.
export { processesMentioning };

export interface Completed {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Output kept from a short command; the ones the demo runs print a few lines. */
const MAX_CAPTURE_CHARS = 1024 * 1024;

/**
 * Run `cmd args` to completion; resolves with its exit and output, never rejects for a non-zero
 * exit. Aborting `signal` sends SIGTERM (the promise still resolves when the process is gone).
 */
export function runToCompletion(
  cmd: string,
  args: readonly string[],
  options: { signal?: AbortSignal; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<Completed> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout = (stdout + c.toString('utf8')).slice(-MAX_CAPTURE_CHARS)));
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-MAX_CAPTURE_CHARS)));
    const stop = (): void => {
      child.kill('SIGTERM');
    };
    options.signal?.addEventListener('abort', stop, { once: true });
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(stop, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', stop);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', stop);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A long-running child (the supervisor) whose output is collected as it comes. */
export class Background {
  readonly #child: ChildProcess;
  #stdout = '';
  #stderr = '';
  readonly #lineListeners: ((line: string) => void)[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env) {
    // Its own process group: a Ctrl-C at the terminal reaches the demo only, which then stops
    // the supervisor in order (the supervisor stops its guest) instead of everything at once.
    this.#child = spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env });
    let partial = '';
    this.#child.stdout?.on('data', (c: Buffer) => {
      const text = c.toString('utf8');
      this.#stdout = (this.#stdout + text).slice(-MAX_CAPTURE_CHARS);
      partial += text;
      for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        for (const listener of this.#lineListeners) listener(line);
      }
    });
    this.#child.stderr?.on('data', (c: Buffer) => (this.#stderr = (this.#stderr + c.toString('utf8')).slice(-MAX_CAPTURE_CHARS)));
    this.exited = new Promise((resolve) => {
      this.#child.once('error', () => resolve({ code: null, signal: null }));
      this.#child.once('close', (code, signal) => resolve({ code, signal }));
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  onLine(listener: (line: string) => void): void {
    this.#lineListeners.push(listener);
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.#child.kill(sig);
  }

  /** `sig`, then SIGKILL after `graceMs`; resolves when it has exited. */
  async stop(sig: NodeJS.Signals, graceMs: number): Promise<void> {
    if (!this.running) return;
    this.#child.kill(sig);
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** How long leftovers get between SIGTERM and SIGKILL, and after SIGKILL to disappear. */
const SWEEP_GRACE_MS = 3_000;

/**
 * End every process whose command line names `dir` (the demo's private work directory): SIGTERM,
 * then SIGKILL. Returns what had to be ended (empty when the orderly shutdown left nothing).
 */
export async function sweepProcesses(dir: string): Promise<{ pid: number; cmdline: string }[]> {
  const leftovers = processesMentioning(dir);
  if (leftovers.length === 0) return [];
  const started = new Map(leftovers.map((p) => [p.pid, readProcStat(p.pid)?.startTime]));
  const kill = (pid: number, sig: NodeJS.Signals): void => {
    // Only the same process (pid and start time), never one that reused its pid meanwhile.
    if (readProcStat(pid)?.startTime !== started.get(pid)) return;
    try {
      process.kill(pid, sig);
    } catch {
      // gone meanwhile
    }
  };
  for (const p of leftovers) kill(p.pid, 'SIGTERM');
  await Promise.all(leftovers.map((p) => waitForPidExit(p.pid, { timeoutMs: SWEEP_GRACE_MS, ...startTimeOf(started, p.pid) })));
  for (const p of leftovers) kill(p.pid, 'SIGKILL');
  await Promise.all(leftovers.map((p) => waitForPidExit(p.pid, { timeoutMs: SWEEP_GRACE_MS, ...startTimeOf(started, p.pid) })));
  return leftovers;
}

function startTimeOf(started: Map<number, number | undefined>, pid: number): { startTime?: number } {
  const t = started.get(pid);
  return t === undefined ? {} : { startTime: t };
}

/** Poll `check` every `intervalMs` until it returns a value (not undefined), or time runs out. */
export async function pollUntil<T>(
  check: () => Promise<T | undefined> | T | undefined,
  o: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal },
): Promise<T | undefined> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() >= deadline || o.signal?.aborted === true) return undefined;
    try {
      await delay(o.intervalMs ?? 200, undefined, o.signal === undefined ? {} : { signal: o.signal });
    } catch {
      return undefined;
    }
  }
}
