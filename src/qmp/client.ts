// The QMP client (qemu.qmp QMPClient): connects to QEMU's monitor socket, reads the greeting,
// negotiates capabilities before anything else runs, then routes replies to the commands that
// assigned their ids and events to listeners, until the connection ends.
// Owns: one connection's byte stream, its handshake, routing, trace logging (secrets redacted)
// and the terminal cause. Must not: know about VMs, SEV policy or which commands are allowed;
// reconnect (a client is sticky after failure: make a new one).
// Layers: framing.ts (bytes → JSON texts) → message.ts (validate) → session.ts (runstate,
// pending table) + events.ts (fan-out) → here → commands.ts (typed wrappers). Beside it:
// socket-connect.ts (connect with retry), handshake-errors.ts (what a failed handshake is),
// trace-redact.ts (secret arguments kept out of the trace log).
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { SupervisorError, isSupervisorError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { EventHub, type EventListenOptions } from './events.js';
import { QmpFramer, type FramedItem } from './framing.js';
import { exitedBeforeHandshake, handshakeFailure, handshakeTimeout, negotiationRefused, type HandshakeStep } from './handshake-errors.js';
import { parseInbound, type QmpErrorInfo, type QmpEvent, type QmpGreeting, type QmpInbound } from './message.js';
import { PendingTable, RunstateMachine, type QmpReply, type Runstate, type RunstateListener, type SettleOutcome } from './session.js';
import { connectQemuSocket } from './socket-connect.js';
import { loggableCommand } from './trace-redact.js';

export type { QmpReply, Runstate } from './session.js';
export type { QmpEvent, QmpGreeting, QmpErrorInfo } from './message.js';

/** QEMU creates its monitor socket early in start-up; 10 s also covers a heavily loaded host. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Paused-guest commands answer in well under a millisecond; 30 s flags a wedged monitor. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
/** How often isAlive() is asked while waiting for the greeting; bounds how late a death is seen. */
const LIVENESS_POLL_MS = 50;
/** How long close() lets the peer finish a graceful close before the socket is destroyed. */
const CLOSE_GRACE_MS = 1_000;

export interface QmpSessionOptions {
  /** Per-command reply timeout; a call may override it. @default DEFAULT_COMMAND_TIMEOUT_MS */
  readonly commandTimeoutMs?: number;
  /** Deadline for connecting, the greeting and negotiation together. @default DEFAULT_CONNECT_TIMEOUT_MS */
  readonly connectTimeoutMs?: number;
  /** Aborts connecting (rejects with the signal's reason, unwrapped); no effect once connected. */
  readonly signal?: AbortSignal;
  /** Traffic goes to `trace` with `-->`/`<--`. @default silentLogger() */
  readonly logger?: Logger;
  /** Enable out-of-band execution when QEMU offers it. @default false */
  readonly oob?: boolean;
  /** Observe every runstate change from the first (`connecting`) on. */
  readonly onStateChange?: RunstateListener;
  /** Inbound message bounds (framing.ts defaults: 10 MiB, depth 1024). */
  readonly maxMessageBytes?: number;
  readonly maxDepth?: number;
}

export interface QmpConnectOptions extends QmpSessionOptions {
  /** QEMU's monitor socket (`-chardev socket,path=P,server=on,wait=off`). */
  readonly path: string;
  /**
   * Whether QEMU is still running: asked between connect attempts and, while waiting for the
   * greeting, every LIVENESS_POLL_MS; connecting gives up (SUP_ERR_QMP_CONNECT) once it is false.
   */
  readonly isAlive?: () => boolean;
  /** Settles when QEMU exits (e.g. QemuProcess.exited): connecting gives up at that moment. */
  readonly exited?: PromiseLike<unknown>;
}

export interface QmpCallOptions {
  /** @default the client's commandTimeoutMs; 0 disables the timeout */
  readonly timeoutMs?: number;
  /** Abandons the wait (the command may still run in QEMU); rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** A command as the proxy forwards it: exactly one of `execute`/`exec-oob`; ids are ours. */
export interface QmpRequest {
  readonly execute?: string;
  readonly 'exec-oob'?: string;
  readonly arguments?: Record<string, unknown>;
}

type Phase = 'handshake' | 'running' | 'closed';

interface InboxWaiter {
  readonly resolve: (message: QmpInbound) => void;
  readonly reject: (error: unknown) => void;
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

/** SUP_ERR_QMP_EXECUTE for an error reply; `desc` is QEMU's text, shown but never parsed. */
export function executeError(command: string, error: QmpErrorInfo): SupervisorError {
  return new SupervisorError('SUP_ERR_QMP_EXECUTE', `QMP command '${command}' failed (${error.class}): ${error.desc}`, {
    details: { command, class: error.class, desc: error.desc },
  });
}

/**
 * One QMP connection. Obtain it with {@link QmpClient.connect} or {@link QmpClient.fromStream};
 * both resolve only once capabilities are negotiated (runstate `running`).
 *
 * Runstates: `idle → connecting → running → disconnecting → idle`; a failed connect goes
 * `connecting → idle`. After the session ends every command rejects with SUP_ERR_QMP_STATE whose
 * `cause` is why it ended; `closed` resolves once, with that cause (undefined for a clean end:
 * close(), or EOF after a successful `quit`).
 */
export class QmpClient {
  private readonly machine = new RunstateMachine();
  private readonly pending = new PendingTable(executeError);
  /** sevsup's own commands (execute()) awaiting a reply, and who waits for there to be none. */
  private ownInFlight = 0;
  private readonly ownIdleWaiters: (() => void)[] = [];
  private readonly hub: EventHub;
  private readonly framer: QmpFramer;
  private readonly log: Logger;
  private readonly commandTimeoutMs: number;
  private readonly where: string;
  private readonly wantOob: boolean;

  private stream: Duplex | undefined;
  private phase: Phase = 'handshake';
  private inbox: QmpInbound[] = [];
  private inboxWaiter: InboxWaiter | undefined;
  private greetingValue: QmpGreeting | undefined;
  private oobEnabled = false;
  private terminalCause: Error | undefined;
  /** Id of a `quit` in flight: its successful reply makes the coming EOF a clean end. */
  private quitId: string | undefined;
  private expectEof = false;
  private resolveClosed!: (cause: Error | undefined) => void;

  /** Resolves once when the session has ended (socket closed, state idle) with the root cause. */
  readonly closed: Promise<Error | undefined>;

  private constructor(options: QmpSessionOptions, where: string) {
    this.where = where;
    this.log = (options.logger ?? silentLogger()).child({ component: 'qmp' });
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.wantOob = options.oob ?? false;
    this.framer = new QmpFramer({
      ...(options.maxMessageBytes === undefined ? {} : { maxBytes: options.maxMessageBytes }),
      ...(options.maxDepth === undefined ? {} : { maxDepth: options.maxDepth }),
    });
    this.hub = new EventHub((error, event) => this.log.warn({ err: error, event }, 'QMP event listener threw'));
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    if (options.onStateChange) this.machine.onChange(options.onStateChange);
  }

  // Section: connecting ---------------------------------------------------------------------------

  /**
   * Connect to QEMU's monitor socket (QEMU is the server, so the socket may appear late), read
   * the greeting and negotiate capabilities (with `oob` when asked for and offered).
   * Retries ENOENT/ECONNREFUSED/EAGAIN with exponential backoff until `connectTimeoutMs`.
   * @throws SUP_ERR_QMP_CONNECT when QEMU exits first (`isAlive()` false or `exited` settled),
   *   before the socket accepts or during the handshake; when the deadline passes; or when the
   *   error is not retryable (e.g. ENOTDIR, EACCES). `cause` is the last socket error.
   * @throws SUP_ERR_QMP_GREETING, SUP_ERR_QMP_NEGOTIATION when the handshake fails.
   * @throws the signal's reason, unwrapped, when `signal` aborts.
   */
  static async connect(options: QmpConnectOptions): Promise<QmpClient> {
    const client = new QmpClient(options, options.path);
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = performance.now() + timeoutMs;
    client.machine.set('connecting');
    let socket: Socket;
    try {
      socket = await connectQemuSocket(options, timeoutMs);
    } catch (error) {
      client.phase = 'closed';
      client.machine.set('idle');
      client.resolveClosed(asError(error));
      throw error;
    }
    await client.establish(socket, deadline, timeoutMs, options.signal, options);
    return client;
  }

  /**
   * Run the QMP handshake on an already connected stream (a socketpair, a test's socket).
   * @throws SUP_ERR_QMP_GREETING, SUP_ERR_QMP_NEGOTIATION; the signal's reason when aborted.
   */
  static async fromStream(stream: Duplex, options: QmpSessionOptions = {}): Promise<QmpClient> {
    const client = new QmpClient(options, 'stream');
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    client.machine.set('connecting');
    await client.establish(stream, performance.now() + timeoutMs, timeoutMs, options.signal);
    return client;
  }

  private async establish(
    stream: Duplex,
    deadline: number,
    timeoutMs: number,
    userSignal: AbortSignal | undefined,
    liveness: Pick<QmpConnectOptions, 'isAlive' | 'exited'> = {},
  ): Promise<void> {
    this.attach(stream);
    // QEMU may die after accepting (or a stale socket's owner may never greet): stop waiting then.
    const gone = new AbortController();
    const exitedError = (): SupervisorError => exitedBeforeHandshake(this.where);
    const isAlive = liveness.isAlive;
    const poll = isAlive
      ? setInterval(() => {
          if (!isAlive()) gone.abort(exitedError());
        }, LIVENESS_POLL_MS)
      : undefined;
    poll?.unref();
    liveness.exited?.then(
      () => gone.abort(exitedError()),
      () => gone.abort(exitedError()),
    );
    const signal = userSignal ? AbortSignal.any([userSignal, gone.signal]) : gone.signal;
    let step: HandshakeStep = 'greeting';
    try {
      const first = await this.nextInbound(deadline, timeoutMs, signal, 'greeting');
      if (first.kind !== 'greeting') {
        throw new SupervisorError('SUP_ERR_QMP_GREETING', `expected the QMP greeting from ${this.where}, got a ${first.kind} message`);
      }
      this.greetingValue = first.greeting;
      step = 'negotiation';
      const enableOob = this.wantOob && first.greeting.QMP.capabilities.includes('oob');
      // Not execute(): the router is not running yet (qemu.qmp _negotiate does the same).
      const negotiation = this.encode('execute', 'qmp_capabilities', enableOob ? { enable: ['oob'] } : undefined);
      if (negotiation instanceof SupervisorError) throw negotiation;
      const id = negotiation.id;
      this.transmit('qmp_capabilities', id, negotiation.text);
      const reply = await this.nextInbound(deadline, timeoutMs, signal, 'negotiation');
      const refused = negotiationRefused(reply, id);
      if (refused !== null) throw refused;
      this.oobEnabled = enableOob;
      this.phase = 'running';
      this.machine.set('running');
      // Anything that arrived in the same read as the negotiation reply.
      const early = this.inbox;
      this.inbox = [];
      for (const message of early) {
        if (this.phase !== 'running') break;
        this.route(message);
      }
    } catch (error) {
      const failure = handshakeFailure(error, step, this.where, userSignal, gone.signal, isAlive);
      this.teardown(asError(failure), false);
      await this.closed;
      throw failure;
    } finally {
      if (poll !== undefined) clearInterval(poll);
    }
  }

  /** Next message during the handshake, bounded by the connect deadline and the signal. */
  private nextInbound(deadline: number, timeoutMs: number, signal: AbortSignal | undefined, step: HandshakeStep): Promise<QmpInbound> {
    const ready = this.inbox.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.terminalCause) return Promise.reject(this.terminalCause);
    signal?.throwIfAborted();
    return new Promise<QmpInbound>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.inboxWaiter = undefined;
      };
      const onAbort = (): void => {
        done();
        reject(signal?.reason);
      };
      const timer = setTimeout(
        () => {
          done();
          reject(handshakeTimeout(step, this.where, timeoutMs));
        },
        Math.max(0, deadline - performance.now()),
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      this.inboxWaiter = {
        resolve: (message) => {
          done();
          resolve(message);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
    });
  }

  // Section: public API ----------------------------------------------------------------------------

  /** QEMU's greeting (version and offered capabilities). */
  get greeting(): QmpGreeting {
    if (this.greetingValue === undefined) throw new SupervisorError('SUP_ERR_QMP_STATE', 'no QMP greeting yet');
    return this.greetingValue;
  }

  get state(): Runstate {
    return this.machine.state;
  }

  /** Whether out-of-band execution was negotiated. */
  get oob(): boolean {
    return this.oobEnabled;
  }

  /** Observe runstate changes; returns the unsubscribe function. */
  onStateChange(listener: RunstateListener): () => void {
    return this.machine.onChange(listener);
  }

  /**
   * Send one command and return QEMU's raw reply (`{return}` or `{error}`, our id removed); a QMP
   * error is a value here, not a rejection (the proxy relays it). The client assigns the id.
   * @throws SUP_ERR_QMP_STATE unless running; SUP_ERR_QMP_TIMEOUT; SUP_ERR_QMP_INTERRUPTED on
   *   disconnect (`cause`: the root cause); the signal's reason when aborted.
   */
  request(message: QmpRequest, options: QmpCallOptions = {}): Promise<QmpReply> {
    if (this.machine.state !== 'running') return Promise.reject(this.stateError('send a QMP command'));
    const { execute, 'exec-oob': oob } = message;
    let encoded: { id: string; text: string } | SupervisorError;
    if (typeof execute === 'string' && oob === undefined) {
      encoded = this.encode('execute', execute, message.arguments);
    } else if (typeof oob === 'string' && execute === undefined) {
      encoded = this.encode('exec-oob', oob, message.arguments);
    } else {
      return Promise.reject(
        new SupervisorError('SUP_ERR_INTERNAL', "a QMP command needs exactly one of 'execute' and 'exec-oob' as a string"),
      );
    }
    if (encoded instanceof SupervisorError) return Promise.reject(encoded);
    const name = execute ?? oob ?? '';
    const reply = this.pending.add(encoded.id, name, this.callTiming(options));
    this.transmit(name, encoded.id, encoded.text);
    return reply;
  }

  /**
   * Run a command and return its `return` value.
   * @throws SUP_ERR_QMP_EXECUTE with `details: {command, class, desc}` for a QMP error reply;
   *   otherwise as {@link request}.
   */
  execute(name: string, args?: Record<string, unknown>, options: QmpCallOptions = {}): Promise<unknown> {
    if (this.machine.state !== 'running') return Promise.reject(this.stateError('send a QMP command'));
    const encoded = this.encode('execute', name, args);
    if (encoded instanceof SupervisorError) return Promise.reject(encoded);
    const value = this.pending.addUnwrapped(encoded.id, name, this.callTiming(options));
    this.ownInFlight += 1;
    const settled = (): void => {
      this.ownInFlight -= 1;
      if (this.ownInFlight === 0) for (const wake of this.ownIdleWaiters.splice(0)) wake();
    };
    value.then(settled, settled);
    this.transmit(name, encoded.id, encoded.text);
    return value;
  }

  /**
   * Undefined when none of sevsup's own commands (execute()) is waiting for its reply; otherwise a
   * promise that resolves when none is. The QMP proxy waits on it before forwarding a client's
   * command, so sevsup's commands never queue in QEMU's monitor behind proxy clients' traffic.
   */
  ownIdle(): Promise<void> | undefined {
    if (this.ownInFlight === 0) return undefined;
    return new Promise((resolve) => this.ownIdleWaiters.push(resolve));
  }

  /**
   * Events as an async iterable, each listener with its own copy; registered at once, ends when
   * the session ends (immediately if it already has).
   * @throws (from next()) SUP_ERR_QMP_EVENT_OVERFLOW after the buffered events if it fell behind.
   */
  events(options: EventListenOptions = {}): AsyncIterableIterator<QmpEvent> {
    return this.hub.listen(options);
  }

  /** Call `listener` with a copy of each matching event; returns the unsubscribe function. */
  onEvent(listener: (event: QmpEvent) => void, options: EventListenOptions = {}): () => void {
    return this.hub.subscribe(listener, options);
  }

  /**
   * End the session: pending commands reject with SUP_ERR_QMP_INTERRUPTED, iterators end,
   * `closed` resolves with undefined (or the earlier failure). Idempotent.
   */
  async close(): Promise<void> {
    if (this.phase !== 'closed') this.teardown(undefined, true);
    await this.closed;
  }

  // Section: the wire ----------------------------------------------------------------------------

  private attach(stream: Duplex): void {
    this.stream = stream;
    stream.on('data', (chunk: Buffer | string) => this.onData(chunk));
    stream.on('end', () => this.onEnd());
    stream.on('error', (error: Error) => this.fail(error));
    stream.on('close', () => this.onClose());
  }

  /** Our id and the command's JSON text, built directly (this is the hot path). */
  private encode(
    member: 'execute' | 'exec-oob',
    name: string,
    args: Record<string, unknown> | undefined,
  ): { id: string; text: string } | SupervisorError {
    const id = this.pending.nextId();
    try {
      const head = `{"${member}":${JSON.stringify(name)}`;
      const text = args === undefined ? `${head},"id":"${id}"}` : `${head},"arguments":${JSON.stringify(args)},"id":"${id}"}`;
      return { id, text };
    } catch (error) {
      return new SupervisorError('SUP_ERR_INTERNAL', `arguments of '${name}' are not JSON: ${asError(error).message}`, { cause: error });
    }
  }

  private callTiming(options: QmpCallOptions): { timeoutMs: number; signal: AbortSignal | undefined } {
    return { timeoutMs: options.timeoutMs ?? this.commandTimeoutMs, signal: options.signal };
  }

  private transmit(name: string, id: string, text: string): void {
    if (name === 'quit') this.quitId = id;
    if (this.log.isLevelEnabled('trace')) this.log.trace({ qmp: loggableCommand(name, text) }, '-->');
    this.stream?.write(`${text}\n`);
  }

  private onData(chunk: Buffer | string): void {
    const items = this.framer.push(chunk);
    for (let i = 0; i < items.length; i++) {
      if (this.phase === 'closed') return;
      this.onItem(items[i] as FramedItem);
    }
  }

  private onItem(item: FramedItem): void {
    if (item.kind === 'error') {
      this.fail(
        new SupervisorError('SUP_ERR_QMP_PROTOCOL', `bad QMP data from ${this.where}: ${item.message}`, {
          details: { reason: item.reason },
        }),
      );
      return;
    }
    if (this.log.isLevelEnabled('trace')) this.log.trace({ qmp: item.text }, '<--');
    let message: QmpInbound;
    try {
      message = parseInbound(JSON.parse(item.text));
    } catch (error) {
      this.fail(
        isSupervisorError(error)
          ? error
          : new SupervisorError('SUP_ERR_QMP_PROTOCOL', `invalid JSON from ${this.where}: ${asError(error).message}`, { cause: error }),
      );
      return;
    }
    if (this.phase === 'running') {
      this.route(message);
    } else if (this.inboxWaiter) {
      this.inboxWaiter.resolve(message);
    } else {
      this.inbox.push(message);
    }
  }

  private route(message: QmpInbound): void {
    switch (message.kind) {
      case 'return':
        if (message.id === this.quitId && message.id !== undefined) this.expectEof = true;
        this.noteUnmatched(message.id, this.pending.settleReturn(message.id, message.value));
        return;
      case 'error':
        if (message.id === undefined) {
          // qemu.qmp ServerParseError: it belongs to no command (we send none without id);
          // most likely QEMU failed to parse our input. Do not guess: end the session.
          this.fail(
            new SupervisorError(
              'SUP_ERR_QMP_PROTOCOL',
              `QMP error without id from ${this.where} (${message.error.class}): ${message.error.desc}`,
              {
                details: { class: message.error.class, desc: message.error.desc },
              },
            ),
          );
          return;
        }
        this.noteUnmatched(message.id, this.pending.settleError(message.id, message.error));
        return;
      case 'event':
        this.hub.publish(message.event);
        return;
      case 'greeting':
        this.fail(new SupervisorError('SUP_ERR_QMP_PROTOCOL', `unexpected second QMP greeting from ${this.where}`));
        return;
    }
  }

  private noteUnmatched(id: unknown, outcome: SettleOutcome): void {
    if (outcome === 'late') {
      this.log.debug({ id }, 'dropping late QMP reply to a timed-out or abandoned command');
    } else if (outcome === 'unknown') {
      // qmp-spec: "Clients should drop all the responses that have an unknown id field."
      this.log.warn({ id: typeof id === 'string' ? id : (JSON.stringify(id) ?? null) }, 'dropping QMP reply with unknown id');
    }
  }

  private onEnd(): void {
    if (this.expectEof) this.teardown(undefined, false);
    else this.fail(new SupervisorError('SUP_ERR_QMP_INTERRUPTED', `QEMU closed the QMP connection ${this.where}`));
  }

  private onClose(): void {
    if (this.phase !== 'closed') {
      if (this.expectEof) this.teardown(undefined, false);
      else this.fail(new SupervisorError('SUP_ERR_QMP_INTERRUPTED', `QMP connection ${this.where} closed`));
    }
  }

  /** First failure wins and becomes the terminal cause. */
  private fail(cause: Error): void {
    if (this.phase === 'closed') return;
    this.log.debug({ err: cause }, 'QMP session failed');
    this.teardown(cause, false);
  }

  /**
   * The one disconnect path: fail pending commands, end listeners, close the stream, then idle.
   * Runs synchronously up to the stream close, so no command can be sent after it starts.
   */
  private teardown(cause: Error | undefined, graceful: boolean): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.terminalCause = cause;
    if (this.machine.state === 'running') this.machine.set('disconnecting');
    const interruption = cause ?? new Error(`QMP session ${this.where} closed by the client`);
    this.pending.failAll(
      (command, id) =>
        new SupervisorError('SUP_ERR_QMP_INTERRUPTED', `QMP command '${command}' interrupted: ${interruption.message}`, {
          details: { command, id },
          cause: interruption,
        }),
    );
    this.hub.end();
    const waiter = this.inboxWaiter;
    this.inboxWaiter = undefined;
    this.inbox = [];
    waiter?.reject(interruption);

    const finish = (): void => {
      this.machine.set('idle');
      this.resolveClosed(cause);
    };
    const stream = this.stream;
    if (stream === undefined || stream.closed) {
      finish();
      return;
    }
    stream.once('close', finish);
    if (graceful && !stream.destroyed) {
      const timer = setTimeout(() => stream.destroy(), CLOSE_GRACE_MS);
      stream.once('close', () => clearTimeout(timer));
      stream.end();
    } else {
      stream.destroy();
    }
  }

  private stateError(action: string): SupervisorError {
    try {
      this.machine.require('running', action, this.terminalCause);
    } catch (error) {
      if (isSupervisorError(error)) return error;
    }
    return new SupervisorError('SUP_ERR_QMP_STATE', `cannot ${action}`);
  }
}
