// What the lifecycle knows about its guest, and who hears of it: the state (moved only through
// state.ts's transitions), the facts gathered on the way (QEMU's process and monitor, the run dir,
// the record, the hold deadline, the secrets injected, whether it ran, the error), the events to
// subscribers, the status the API serves, the state file written at each transition, and how it
// ended (`finished`).
// Owns: keeping those consistent: every transition is logged and persisted, an ending settles
// `finished` once. Must not: decide anything (the lifecycle does), or touch QEMU.
import type { VmSpec } from '../config/vm-spec.js';
import { SupervisorError } from '../errors.js';
import type { Logger } from '../log.js';
import type { QemuExit, QemuProcess } from '../process/launcher.js';
import type { VmPaths } from '../process/run-dir.js';
import type { QmpClient } from '../qmp/client.js';
import type { RecordPlatform } from './record.js';
import { writeVmState } from './state-file.js';
import { StateWriter } from './state-writer.js';
import { transition, type VmState } from './state.js';
import type { LifecycleEvent, LifecycleEventRecord, LifecycleOutcome, VmStatus } from './types.js';

export interface GuestRecordOptions {
  readonly spec: VmSpec;
  readonly platform: RecordPlatform;
  /** Persist state.json here at every transition (daemon mode). */
  readonly stateFile?: string;
  /** Where a detached QEMU's stderr goes (recorded in the state file). */
  readonly stderrFile?: string;
  readonly logger: Logger;
}

export class GuestRecord {
  readonly vm: string;
  /** Settles once, when the VM reaches `stopped` or `failed`, or is detached. Never rejects. */
  readonly finished: Promise<LifecycleOutcome>;
  /** Settles when the guest first runs (approve() waits for it); rejects when it never will. */
  readonly running: { readonly promise: Promise<void>; readonly resolve: () => void; readonly reject: (error: unknown) => void };
  state: VmState = 'defined';
  /** True once sevsup resumed the guest: it has executed guest code. */
  ran = false;
  proc: QemuProcess | undefined;
  qmp: QmpClient | undefined;
  paths: VmPaths | undefined;
  recordPath: string | null = null;
  error: SupervisorError | null = null;
  holdDeadline: Date | null = null;
  secretsInjected = 0;
  /** QEMU's /proc start time: with the pid, it names one process (re-attach). */
  startTime: number | null = null;
  readonly #o: GuestRecordOptions;
  readonly #listeners = new Set<(event: LifecycleEventRecord) => void>();
  readonly #stateWriter: StateWriter | undefined;
  #resolveFinished!: (outcome: LifecycleOutcome) => void;

  constructor(options: GuestRecordOptions) {
    this.#o = options;
    this.vm = options.spec.name;
    if (options.stateFile !== undefined) {
      this.#stateWriter = new StateWriter({ file: options.stateFile, spec: options.spec, write: writeVmState, logger: options.logger });
    }
    this.finished = new Promise((resolve) => (this.#resolveFinished = resolve));
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined); // observed through approve() or finished
    this.running = { promise, resolve, reject };
  }

  get sev(): boolean {
    return this.#o.spec.sev !== undefined;
  }

  onEvent(listener: (event: LifecycleEventRecord) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  status(): VmStatus {
    return {
      vm: this.vm,
      state: this.state,
      platform: this.#o.platform,
      sev: this.sev,
      pid: this.proc?.isAlive() ? this.proc.pid : null,
      record: this.recordPath,
      holdDeadline: this.#holdDeadlineText(),
      secretsInjected: this.secretsInjected,
      error: this.#errorSummary(),
    };
  }

  /** Move to `next` (state.ts refuses an illegal transition), log it and persist it. */
  move(next: VmState): void {
    const previous = this.state;
    this.state = transition(previous, next, this.vm);
    this.#o.logger.debug({ from: previous, to: next }, 'state');
    this.persist();
  }

  emit(event: LifecycleEvent): void {
    const record: LifecycleEventRecord = { ...event, vm: this.vm, time: new Date().toISOString() };
    for (const listener of [...this.#listeners]) {
      try {
        listener(record);
      } catch (error: unknown) {
        this.#o.logger.error({ err: error }, 'lifecycle event listener threw');
      }
    }
  }

  emitStopped(exit: QemuExit, how: string): void {
    this.emit({ event: 'stopped', how, exitCode: exit.exitCode ?? null, signal: exit.signal ?? null });
  }

  /** End as failed with `error`: the state, the event, the outcome. */
  fail(error: SupervisorError): void {
    this.error = error;
    if (this.state !== 'failed') this.move('failed');
    // Reported to the caller (event, outcome, start()'s rejection); logged here for the record only.
    this.#o.logger.info({ code: error.code, reason: error.message }, 'VM failed');
    this.emit({ event: 'failed', code: error.code, message: error.message });
    this.finish({ state: 'failed', error, ran: this.ran });
  }

  /** Settle `finished` (the first call wins). */
  finish(outcome: LifecycleOutcome): void {
    this.#resolveFinished(outcome);
  }

  /** Queue an atomic write of state.json with the state as it is now; writes land in order. */
  persist(): void {
    const paths = this.paths;
    // While attaching, the file keeps the state from before the restart: it is still the truth,
    // and a second restart in the middle must find it, not "attaching".
    if (this.#stateWriter === undefined || paths === undefined || this.state === 'attaching') return;
    this.#stateWriter.queue({
      vm: this.vm,
      state: this.state,
      platform: this.#o.platform,
      sev: this.sev,
      pid: this.proc?.pid ?? null,
      startTime: this.startTime,
      monitorSocket: paths.monitorSocket,
      stderrFile: this.#o.stderrFile ?? null,
      record: this.recordPath,
      holdDeadline: this.#holdDeadlineText(),
      secretsInjected: this.secretsInjected,
      ran: this.ran,
      error: this.#errorSummary(),
      updatedAt: new Date().toISOString(),
    });
  }

  /** Resolves once every state write queued so far has landed. */
  persisted(): Promise<void> {
    return this.#stateWriter?.flush() ?? Promise.resolve();
  }

  requireQmp(): QmpClient {
    if (this.qmp === undefined) throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} has no QMP connection (state ${this.state})`);
    return this.qmp;
  }

  requireProc(): QemuProcess {
    if (this.proc === undefined) throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} has no QEMU process (state ${this.state})`);
    return this.proc;
  }

  #holdDeadlineText(): string | null {
    return this.state === 'held' && this.holdDeadline !== null ? this.holdDeadline.toISOString() : null;
  }

  #errorSummary(): { code: string; message: string } | null {
    return this.error === null ? null : { code: this.error.code, message: this.error.message };
  }
}
