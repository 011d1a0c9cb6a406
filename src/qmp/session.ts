// The generic half of a QMP session (qemu.qmp's AsyncProtocol): the runstate machine with its
// guards, and the table of commands in flight (client-assigned ids, per-command timeouts, late
// replies, failing everything at disconnect).
// Owns: Runstate transitions and their observers; the id namespace `s<n>`; pending entries.
// Must not: touch sockets or JSON, know command names' meaning, or log (the client does).
// Invariants: every pending entry settles exactly once (reply, timeout, abort or disconnect); the
// table's one timer is cleared when the table fails; an id is never reused within a session.
import { SupervisorError } from '../errors.js';
import type { QmpErrorInfo } from './message.js';

export type Runstate = 'idle' | 'connecting' | 'running' | 'disconnecting';

export type RunstateListener = (state: Runstate, previous: Runstate) => void;

/** QEMU's raw answer to one command, with our id removed. */
export type QmpReply = { return: unknown } | { error: QmpErrorInfo };

/**
 * The id namespace: callers cannot choose ids (qemu.qmp `__qmp#`, libvirt `libvirt-N`). Short on
 * purpose: QEMU 7.2 reads monitor input a byte per main-loop turn (~3 µs a byte here), so
 * `sevsup-<n>` cost 10–20% per round trip against `s<n>` (bench/qmp-client.mjs).
 */
export const QMP_ID_PREFIX = 's';

/**
 * Ids of timed-out or aborted commands remembered so that their late replies are dropped quietly
 * rather than reported as unknown. Bounded: a server that never answers must not grow memory.
 */
const MAX_REMEMBERED_LATE_IDS = 1024;

/** One explicit state machine, observed by tests and the lifecycle (qemu.qmp Runstate). */
export class RunstateMachine {
  private current: Runstate = 'idle';
  private readonly listeners = new Set<RunstateListener>();

  get state(): Runstate {
    return this.current;
  }

  set(next: Runstate): void {
    const previous = this.current;
    if (previous === next) return;
    this.current = next;
    for (const listener of this.listeners) {
      // An observer's bug must not break the transition it observes.
      try {
        listener(next, previous);
      } catch {
        // ignored on purpose
      }
    }
  }

  onChange(listener: RunstateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Guard for a public method (qemu.qmp `@require`).
   * @throws SUP_ERR_QMP_STATE with `details: {state, required, action}`; `cause` is why the
   *   session ended, when it ended on a failure (the client is sticky after failure).
   */
  require(required: Runstate, action: string, cause?: Error): void {
    if (this.current === required) return;
    throw new SupervisorError(
      'SUP_ERR_QMP_STATE',
      `cannot ${action}: QMP session is ${this.current}, not ${required}` + (cause ? ` (ended: ${cause.message})` : ''),
      { details: { state: this.current, required, action }, ...(cause ? { cause } : {}) },
    );
  }
}

interface PendingEntry {
  readonly id: string;
  readonly command: string;
  /** True: resolve with `return`, reject an error reply via `errorReply` (execute); false: raw. */
  readonly unwrap: boolean;
  /** Exactly one of the two is set, by mode. */
  readonly resolveValue: ((value: unknown) => void) | undefined;
  readonly resolveReply: ((reply: QmpReply) => void) | undefined;
  readonly reject: (error: unknown) => void;
  /** performance.now() deadline; Infinity: none. */
  readonly deadline: number;
  readonly timeoutMs: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export interface PendingOptions {
  /** 0 or Infinity: no timeout. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

export type SettleOutcome = 'settled' | 'late' | 'unknown';

/**
 * Commands in flight, keyed by the id we assigned.
 *
 * Timeouts use ONE timer per table, armed for the earliest deadline and re-armed when it fires,
 * instead of a timer per command: creating and cancelling a Node timer for every command was a
 * measurable share of a 0.2 ms round trip (bench/qmp-client.mjs). The timer is unref'd: while a
 * command is pending the connection itself keeps the process alive.
 */
export class PendingTable {
  private readonly entries = new Map<string, PendingEntry>();
  private readonly late = new Set<string>();
  private counter = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  /** @param errorReply turns a QMP error reply into the rejection of an unwrapped command. */
  constructor(private readonly errorReply: (command: string, error: QmpErrorInfo) => unknown = (_command, error) => error) {}

  get size(): number {
    return this.entries.size;
  }

  /** A fresh id from the reserved namespace. */
  nextId(): string {
    this.counter += 1;
    return QMP_ID_PREFIX + this.counter;
  }

  /**
   * Register `id` and return the promise of QEMU's raw reply.
   * Rejects SUP_ERR_QMP_TIMEOUT (`details: {command, id, timeoutMs}`) after `timeoutMs`, or with
   * the signal's reason when aborted; the id is then remembered as late.
   */
  add(id: string, command: string, options: PendingOptions): Promise<QmpReply> {
    return new Promise<QmpReply>((resolve, reject) => this.register(id, command, options, undefined, resolve, reject));
  }

  /** As {@link add}, but resolves with the `return` value and rejects an error reply (errorReply). */
  addUnwrapped(id: string, command: string, options: PendingOptions): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => this.register(id, command, options, resolve, undefined, reject));
  }

  private register(
    id: string,
    command: string,
    options: PendingOptions,
    resolveValue: ((value: unknown) => void) | undefined,
    resolveReply: ((reply: QmpReply) => void) | undefined,
    reject: (error: unknown) => void,
  ): void {
    const { timeoutMs, signal } = options;
    if (signal?.aborted === true) {
      reject(signal.reason);
      return;
    }
    const deadline = timeoutMs > 0 ? performance.now() + timeoutMs : Number.POSITIVE_INFINITY;
    const entry: PendingEntry = {
      id,
      command,
      unwrap: resolveValue !== undefined,
      resolveValue,
      resolveReply,
      reject,
      deadline,
      timeoutMs,
      signal: undefined,
      onAbort: undefined,
    };
    if (signal) {
      entry.signal = signal;
      entry.onAbort = () => this.abandon(entry, signal.reason);
      signal.addEventListener('abort', entry.onAbort, { once: true });
    }
    this.entries.set(id, entry);
    if (deadline < this.timerAt) this.arm(deadline);
  }

  /** Deliver a `return`; says whether it was awaited, late (timed out/aborted) or unknown. */
  settleReturn(id: unknown, value: unknown): SettleOutcome {
    const entry = this.take(id);
    if (entry === undefined) return this.lateOrUnknown(id);
    if (entry.resolveValue) entry.resolveValue(value);
    else entry.resolveReply?.({ return: value });
    return 'settled';
  }

  /** Deliver an error reply; as {@link settleReturn}. */
  settleError(id: unknown, error: QmpErrorInfo): SettleOutcome {
    const entry = this.take(id);
    if (entry === undefined) return this.lateOrUnknown(id);
    if (entry.unwrap) entry.reject(this.errorReply(entry.command, error));
    else entry.resolveReply?.({ error });
    return 'settled';
  }

  /** Fail every pending entry (disconnect); `makeError` builds each one's rejection. */
  failAll(makeError: (command: string, id: string) => unknown): void {
    const all = [...this.entries.values()];
    this.entries.clear();
    this.disarm();
    for (const entry of all) {
      this.cleanup(entry);
      entry.reject(makeError(entry.command, entry.id));
    }
  }

  private take(id: unknown): PendingEntry | undefined {
    if (typeof id !== 'string') return undefined;
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    this.entries.delete(id);
    this.cleanup(entry);
    return entry;
  }

  private lateOrUnknown(id: unknown): SettleOutcome {
    return typeof id === 'string' && this.late.delete(id) ? 'late' : 'unknown';
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, at - performance.now()));
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  /** Time out every entry past its deadline; re-arm for the earliest remaining one. */
  private sweep(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    const expired: PendingEntry[] = [];
    for (const entry of this.entries.values()) {
      if (entry.deadline <= now) expired.push(entry);
      else if (entry.deadline < next) next = entry.deadline;
    }
    for (const entry of expired) {
      const { command, id, timeoutMs } = entry;
      this.abandon(
        entry,
        new SupervisorError('SUP_ERR_QMP_TIMEOUT', `QMP command '${command}' got no reply within ${timeoutMs} ms`, {
          details: { command, id, timeoutMs },
        }),
      );
    }
    if (next < this.timerAt) this.arm(next);
  }

  private abandon(entry: PendingEntry, error: unknown): void {
    if (this.entries.get(entry.id) !== entry) return;
    this.entries.delete(entry.id);
    this.cleanup(entry);
    this.late.add(entry.id);
    if (this.late.size > MAX_REMEMBERED_LATE_IDS) {
      // Sets iterate in insertion order: forget the oldest.
      const oldest = this.late.values().next();
      if (oldest.done !== true) this.late.delete(oldest.value);
    }
    entry.reject(error);
  }

  private cleanup(entry: PendingEntry): void {
    if (entry.signal && entry.onAbort) entry.signal.removeEventListener('abort', entry.onAbort);
  }
}
