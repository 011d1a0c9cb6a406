// Spawning and stopping one QEMU process (execa ^9, argv array, never a shell).
// Owns: the child process, its bounded stderr tail (a pipe, or a log file for detached QEMUs that
// must outlive the supervisor), the stop ladder (system_powerdown → quit → SIGTERM → SIGKILL) shared
// with adopted processes (adopt.ts), and turning an early exit into SUP_ERR_LAUNCH_FAILED with
// QEMU's own words. Must not: build argv, talk QMP beyond the two stop commands it is handed, or
// decide when to launch. Invariant: no error path leaves the process behind; once launchQemu has
// thrown, QEMU is gone.
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { execa } from 'execa';
import { SupervisorError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { quit as quitQemu, systemPowerdown, type QmpExecutor } from '../qmp/commands.js';
import { disableCoreDumps } from './core-limit.js';
import { capLogFile, ensurePrivateFile, watchLogFile } from './log-cap.js';
import { isPidAlive, ProcStatHandle } from './pid.js';
import { StderrTail, errorLines, readFileTail, redactQemuLine, redactQemuOutput } from './stderr-tail.js';
import { POWERDOWN_TIMEOUT_SECONDS } from '../config/daemon-keys.js';

/** How a QEMU process ended: on its own (`exited`) or at which stop step. */
export type StopHow = 'exited' | 'powerdown' | 'quit' | 'sigterm' | 'sigkill';

export interface QemuExit {
  /** Undefined when a signal ended it (never -1, as execa). */
  readonly exitCode?: number;
  readonly signal?: string;
  readonly stderrTail: string;
  readonly how: StopHow;
}

/** What the QMP steps speak through: QmpClient, or anything with its `execute` (qmp/commands' typed calls). */
export type StopQmp = QmpExecutor;

export interface StopOptions {
  /** Without it the QMP steps are skipped and the ladder starts at SIGTERM. */
  readonly qmp?: StopQmp;
  /** Wait after system_powerdown; 0 skips the step (a guest paused with -S never powers down). @default 10000 */
  readonly powerdownTimeoutMs?: number;
  /** Wait after quit; 0 skips the step. @default 3000 */
  readonly quitTimeoutMs?: number;
  /** Wait after SIGTERM before SIGKILL. @default 3000 */
  readonly termTimeoutMs?: number;
}

export interface QemuProcess {
  readonly pid: number;
  /** Settles once, when the process has exited and its stderr is drained. Never rejects. */
  readonly exited: Promise<QemuExit>;
  stderrTail(): string;
  /** False once it has exited, including as a not-yet-reaped zombie. */
  isAlive(): boolean;
  /** The stop ladder; concurrent calls share one run. @throws SUP_ERR_SHUTDOWN_ABNORMAL if even SIGKILL does not end it. */
  stop(options?: StopOptions): Promise<QemuExit>;
  /** SIGKILL now. @throws SUP_ERR_SHUTDOWN_ABNORMAL if that does not end it. */
  kill(): Promise<QemuExit>;
  /**
   * Let go of the process without touching it (the supervisor detaches and leaves it running):
   * stop what this object keeps doing for it, the qemu.log bound's watcher (log-cap.ts) and an
   * adopted process's exit poll. `exited` may then never settle. Idempotent.
   */
  release(): void;
}

export interface LaunchOptions {
  readonly binary: string;
  /** Arguments without the binary. */
  readonly argv: readonly string[];
  /** Added to (and overriding) the supervisor's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Own process group and no kill-on-exit: the QEMU outlives the supervisor (the daemon re-adopts
   * it by pid). @default false
   */
  readonly detached?: boolean;
  /**
   * Append QEMU's stderr to this file (created 0600) instead of a pipe. A detached QEMU needs it:
   * a pipe's reader dies with the supervisor, and the next write would fail (the simulator, a Node
   * process, would die of the EPIPE). The tail is then read back from the file.
   */
  readonly stderrFile?: string;
  readonly logger?: Logger;
  /**
   * Resolves when QEMU is ready (e.g. its QMP greeting arrived). launchQemu waits for it: if QEMU
   * exits first the launch fails with QEMU's stderr; if it rejects or times out QEMU is killed.
   * Without it launchQemu returns once the process has spawned, and the caller must turn an early
   * exit into an error itself (launchFailure()).
   */
  readonly ready?: (proc: QemuProcess) => Promise<void>;
  /** @default READY_TIMEOUT_MS */
  readonly readyTimeoutMs?: number;
}

/** system_powerdown gives an ACPI guest time to shut down cleanly (the daemon's `powerdown-timeout` default). */
export const POWERDOWN_TIMEOUT_MS = POWERDOWN_TIMEOUT_SECONDS.default * 1000;
/** QEMU acts on quit at once; this covers flushing disk caches. */
export const QUIT_TIMEOUT_MS = 3_000;
/** QEMU handles SIGTERM like quit. */
export const TERM_TIMEOUT_MS = 3_000;
/** SIGKILL cannot be caught; longer than this means a process stuck in the kernel. */
export const KILL_WAIT_MS = 10_000;
/** How long a failed readiness check waits for QEMU's exit before it is reported as is. */
const EXIT_AFTER_READY_FAILURE_MS = 1000;
/** Spawn to a negotiated QMP takes ~50 ms here; a loaded 2-core host is far slower. */
export const READY_TIMEOUT_MS = 30_000;
/** Stderr lines quoted in an error message (the whole tail is in `details`). */
const MESSAGE_STDERR_LINES = 4;

/**
 * Spawn `binary argv…` with stdin and stdout ignored and stderr kept as a bounded tail (each line
 * logged at debug). With `ready`, wait until QEMU is ready.
 * @throws SUP_ERR_LAUNCH_FAILED when it cannot be spawned or exits before it is ready (message
 *   includes QEMU's stderr); SUP_ERR_LAUNCH_TIMEOUT when `ready` does not resolve in time; what
 *   `ready` threw, when it rejected while QEMU was alive. QEMU is gone in every case.
 */
export async function launchQemu(options: LaunchOptions): Promise<QemuProcess> {
  const logger = (options.logger ?? silentLogger()).child({ component: 'launcher' });
  const detached = options.detached === true;
  // QEMU inherits sevsup's zero core limit (core-limit.ts): no core dump ever holds guest RAM.
  await disableCoreDumps();
  const log = options.stderrFile === undefined ? null : prepareStderrFile(options.stderrFile);
  const subprocess = spawnQemu(
    options.binary,
    options.argv,
    options.env ?? {},
    detached,
    log === null ? 'pipe' : { file: log.path, append: true },
  );

  try {
    await once(subprocess, 'spawn');
  } catch {
    // 'error' (ENOENT, EACCES…): execa's result carries the reason.
    const result = await subprocess;
    const why = typeof result.originalMessage === 'string' ? result.originalMessage : String(result.code ?? 'unknown error');
    throw new SupervisorError('SUP_ERR_LAUNCH_FAILED', `cannot start QEMU: ${why}; check that ${options.binary} exists and is executable`, {
      details: { binary: options.binary, code: result.code },
    });
  }

  const pid = subprocess.pid;
  if (pid === undefined) {
    subprocess.kill('SIGKILL');
    await subprocess;
    throw new SupervisorError('SUP_ERR_LAUNCH_FAILED', `cannot start QEMU: ${options.binary} has no pid after spawn`);
  }
  const proc = new QemuChild(subprocess, pid, logger.child({ pid }), log);
  logger.info({ pid, binary: options.binary, detached }, 'QEMU started');
  if (options.ready === undefined) return proc;

  try {
    await waitReady(proc, options.ready, options.readyTimeoutMs ?? READY_TIMEOUT_MS);
    return proc;
  } catch (error: unknown) {
    await proc.kill().catch(() => undefined);
    throw error;
  }
}

/**
 * SUP_ERR_LAUNCH_FAILED for a QEMU that exited before it was ready, quoting its stderr
 * (e.g. `qemu-system-x86_64: -accel kvm: sev_kvm_init: Failed to open /dev/sev 'No such file or directory'`).
 */
export function launchFailure(exit: QemuExit, cause?: unknown): SupervisorError {
  const lines = errorLines(exit.stderrTail).slice(-MESSAGE_STDERR_LINES);
  const said = lines.length > 0 ? lines.join('; ') : '(it printed nothing on stderr)';
  return new SupervisorError('SUP_ERR_LAUNCH_FAILED', `QEMU ${describeEnd(exit)} before it was ready: ${said}`, {
    details: { exitCode: exit.exitCode, signal: exit.signal, stderrTail: exit.stderrTail },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** "exited with code 1" / "was killed by SIGABRT". */
export function describeEnd(exit: Pick<QemuExit, 'exitCode' | 'signal'>): string {
  if (exit.signal !== undefined) return `was killed by ${exit.signal}`;
  return `exited with code ${exit.exitCode ?? 'unknown'}`;
}

/**
 * Create the stderr log 0600 if needed (never through a symlink), rotate it if it is over its bound;
 * `offset` is where this launch's output will start.
 */
function prepareStderrFile(path: string): StderrLog {
  try {
    ensurePrivateFile(path);
  } catch (error: unknown) {
    throw new SupervisorError(
      'SUP_ERR_LAUNCH_FAILED',
      `cannot open QEMU's log file: ${error instanceof Error ? error.message : String(error)}`,
      {
        details: { path },
        cause: error,
      },
    );
  }
  capLogFile(path);
  let size = 0;
  try {
    size = statSync(path).size;
  } catch {
    // Read back from the start then.
  }
  return { path, offset: size };
}

function spawnQemu(
  binary: string,
  argv: readonly string[],
  env: Readonly<Record<string, string>>,
  detached: boolean,
  stderr: 'pipe' | { readonly file: string; readonly append: true },
) {
  return execa(binary, [...argv], {
    reject: false,
    stdin: 'ignore',
    stdout: 'ignore',
    stderr,
    buffer: false,
    env,
    extendEnv: true,
    detached,
    cleanup: !detached,
    // The stop ladder escalates itself; execa's own SIGKILL timer would race it.
    forceKillAfterDelay: false,
  });
}

type QemuSubprocess = ReturnType<typeof spawnQemu>;

async function waitReady(proc: QemuProcess, ready: (proc: QemuProcess) => Promise<void>, timeoutMs: number): Promise<void> {
  const timer = new AbortController();
  const readyOutcome = Promise.resolve()
    .then(() => ready(proc))
    .then(
      () => ({ kind: 'ready' as const }),
      (error: unknown) => ({ kind: 'failed' as const, error }),
    );
  const outcome = await Promise.race([
    proc.exited.then((exit) => ({ kind: 'exited' as const, exit })),
    readyOutcome,
    delay(timeoutMs, { kind: 'timeout' as const }, { signal: timer.signal }).catch(() => ({ kind: 'timeout' as const })),
  ]);
  timer.abort();
  switch (outcome.kind) {
    case 'ready':
      return;
    case 'exited':
      throw launchFailure(outcome.exit);
    case 'failed': {
      // A ready check that failed because QEMU died (QMP connect or greeting cut off) is a launch
      // failure. QEMU closes its monitor socket while it exits, so the check can fail a moment
      // before the exit is seen: give the exit a short grace instead of sampling isAlive() once.
      const exit = await Promise.race([proc.exited, delay(EXIT_AFTER_READY_FAILURE_MS, null)]);
      if (exit !== null && exit.how === 'exited') throw launchFailure(exit, outcome.error);
      throw outcome.error;
    }
    case 'timeout': {
      const exit = await proc.kill();
      const lines = errorLines(exit.stderrTail).slice(-MESSAGE_STDERR_LINES);
      throw new SupervisorError(
        'SUP_ERR_LAUNCH_TIMEOUT',
        `QEMU did not become ready within ${timeoutMs} ms and was killed${lines.length > 0 ? `; its stderr: ${lines.join('; ')}` : ''}`,
        { details: { timeoutMs, stderrTail: exit.stderrTail } },
      );
    }
  }
}

/**
 * The stop ladder over any QEMU process, ours or adopted. Subclasses say how to signal it, when it
 * has ended, and what its stderr said; `stage` is the stop step in progress, recorded as `how`.
 */
export abstract class StoppableQemu implements QemuProcess {
  abstract readonly pid: number;
  abstract readonly exited: Promise<QemuExit>;
  protected readonly logger: Logger;
  /** The stop step in progress; recorded as `how` when the process exits. */
  protected stage: StopHow = 'exited';
  /** Set once the process is known to have exited. */
  protected ended = false;
  #stopping: Promise<QemuExit> | undefined;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  abstract stderrTail(): string;
  abstract isAlive(): boolean;
  abstract release(): void;
  /** Send `signal`; false when there was no process to send it to. */
  protected abstract sendSignal(signal: 'SIGTERM' | 'SIGKILL'): boolean;

  stop(options: StopOptions = {}): Promise<QemuExit> {
    this.#stopping ??= this.#runStop(options);
    return this.#stopping;
  }

  async kill(): Promise<QemuExit> {
    const done = await this.#settled();
    if (done !== null) return done;
    return this.#forceKill();
  }

  async #runStop(options: StopOptions): Promise<QemuExit> {
    const done = await this.#settled();
    if (done !== null) return done;
    const { qmp } = options;
    if (qmp !== undefined) {
      const powerdown = options.powerdownTimeoutMs ?? POWERDOWN_TIMEOUT_MS;
      if (powerdown > 0) {
        const exit = await this.#step('powerdown', powerdown, () => systemPowerdown(qmp));
        if (exit !== null) return exit;
      }
      const quit = options.quitTimeoutMs ?? QUIT_TIMEOUT_MS;
      if (quit > 0) {
        const exit = await this.#step('quit', quit, () => quitQemu(qmp));
        if (exit !== null) return exit;
      }
    }
    const exit = await this.#step('sigterm', options.termTimeoutMs ?? TERM_TIMEOUT_MS, () => this.#signal('SIGTERM'));
    if (exit !== null) return exit;
    return this.#forceKill();
  }

  async #forceKill(): Promise<QemuExit> {
    const exit = await this.#step('sigkill', KILL_WAIT_MS, () => this.#signal('SIGKILL'));
    if (exit !== null) return exit;
    throw new SupervisorError(
      'SUP_ERR_SHUTDOWN_ABNORMAL',
      `QEMU (pid ${this.pid}) did not exit within ${KILL_WAIT_MS} ms of SIGKILL; it may be stuck in the kernel`,
      { details: { pid: this.pid } },
    );
  }

  /**
   * Run one stop step and wait for the exit. Resolves the exit, or null to go on to the next
   * step: on timeout, and at once when the step's QMP command fails or the monitor disconnects.
   */
  async #step(how: StopHow, timeoutMs: number, action: () => unknown): Promise<QemuExit | null> {
    const done = await this.#settled();
    if (done !== null) return done;
    this.stage = how;
    this.logger.info({ step: how, timeoutMs }, `stopping QEMU: ${STEP_TEXT[how]}`);
    const timer = new AbortController();
    const actionFailed = Promise.resolve()
      .then(action)
      .then(
        () => new Promise<never>(() => undefined),
        (error: unknown) => {
          this.logger.warn({ step: how, err: error }, `stopping QEMU: ${STEP_TEXT[how]} failed; next step`);
          return null;
        },
      );
    const outcome = await Promise.race([this.exited, actionFailed, delay(timeoutMs, null, { signal: timer.signal }).catch(() => null)]);
    timer.abort();
    if (outcome === null && how !== 'sigkill') {
      this.logger.info({ step: how }, `stopping QEMU: no exit after ${STEP_TEXT[how]}`);
    }
    return outcome;
  }

  #signal(signal: 'SIGTERM' | 'SIGKILL'): void {
    if (!this.sendSignal(signal) && this.isAlive()) {
      throw new SupervisorError('SUP_ERR_INTERNAL', `cannot send ${signal} to QEMU pid ${this.pid}`);
    }
  }

  /** The exit if it already happened (without waiting for anything else). */
  async #settled(): Promise<QemuExit | null> {
    if (!this.ended) return null;
    return this.exited;
  }

  /** The exit record, logged once. */
  protected finish(exitCode: number | undefined, signal: string | undefined, how: StopHow, stderrTail: string): QemuExit {
    this.ended = true;
    const exit: QemuExit = {
      ...(exitCode === undefined ? {} : { exitCode }),
      ...(signal === undefined ? {} : { signal }),
      stderrTail,
      how,
    };
    this.logger.info({ exitCode, signal, how }, `QEMU ${describeEnd(exit)}`);
    return exit;
  }
}

/** Where a detached QEMU's stderr goes, and where this launch's output starts in it. */
interface StderrLog {
  readonly path: string;
  readonly offset: number;
}

class QemuChild extends StoppableQemu {
  readonly pid: number;
  readonly exited: Promise<QemuExit>;
  readonly #subprocess: QemuSubprocess;
  readonly #tail = new StderrTail();
  readonly #log: StderrLog | null;
  readonly #capped: { close(): void } | null;
  /** Kept open while QEMU is our unreaped child: status asks isAlive() on every request. */
  readonly #stat: ProcStatHandle;

  constructor(subprocess: QemuSubprocess, pid: number, logger: Logger, log: StderrLog | null) {
    super(logger);
    this.#subprocess = subprocess;
    this.pid = pid;
    this.#log = log;
    // Unreaped here (Node reaps in a later turn), so the pid still names this QEMU.
    this.#stat = new ProcStatHandle(pid);
    // While this supervisor runs, QEMU's log file stays under its bound (log-cap.ts).
    const capped = log === null ? null : watchLogFile(log.path);
    this.#capped = capped;
    subprocess.stderr?.on('data', (chunk: Buffer) => this.#logLines(this.#tail.push(chunk)));
    let how: StopHow = 'exited';
    subprocess.once('exit', () => {
      this.ended = true;
      how = this.stage;
      this.#stat.close();
    });
    this.exited = subprocess
      .then(
        (result) => this.#end(result.exitCode, result.signal, how),
        // reject: false means this does not happen; stay honest if it does.
        () => this.#end(undefined, undefined, how),
      )
      .finally(() => capped?.close());
  }

  release(): void {
    this.#capped?.close();
    this.#stat.close();
  }

  stderrTail(): string {
    return this.#log === null ? redactQemuOutput(this.#tail.text()) : readFileTail(this.#log.path, this.#log.offset);
  }

  isAlive(): boolean {
    if (this.ended || this.#subprocess.exitCode !== null || this.#subprocess.signalCode !== null) return false;
    // After release() (or if /proc could not be opened) the pid is asked by path, as before.
    return this.#stat.open ? this.#stat.isAlive() : isPidAlive(this.pid);
  }

  protected sendSignal(signal: 'SIGTERM' | 'SIGKILL'): boolean {
    return this.#subprocess.kill(signal);
  }

  #end(exitCode: number | undefined, signal: string | undefined, how: StopHow): QemuExit {
    this.#logLines(this.#tail.flush());
    return this.finish(exitCode, signal, how, this.stderrTail());
  }

  /** Only QEMU's own messages, redacted (stderr-tail.ts): trace output never reaches the log. */
  #logLines(lines: readonly string[]): void {
    for (const line of lines) {
      const safe = redactQemuLine(line);
      if (safe !== null) this.logger.debug({ line: safe }, 'qemu stderr');
    }
  }
}

const STEP_TEXT: Record<StopHow, string> = {
  exited: 'exit',
  powerdown: 'system_powerdown',
  quit: 'quit',
  sigterm: 'SIGTERM',
  sigkill: 'SIGKILL',
};
