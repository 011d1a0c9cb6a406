// sd_notify for `sevsup daemon` and `sevsup owner serve` under systemd (Type=notify): READY=1, STATUS=, STOPPING=1,
// RELOADING=1, WATCHDOG=1 as datagrams to $NOTIFY_SOCKET (a path, or `@name` in the abstract
// namespace). Owns: the message format, their order, and the choice of transport.
// Node cannot send AF_UNIX datagrams, so a message goes through the optional native `unix-dgram`
// (sent from this process: NotifyAccess=main suffices), else through `systemd-notify --pid=<our
// pid>` (see docs/systemd.md "sd_notify" for when that needs NotifyAccess=all).
// Must not: throw or reject (a failed send is logged once, then ignored: systemd's watchdog is
// what notices a supervisor that cannot talk to it), or do anything when NOTIFY_SOCKET is unset.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { pino } from 'pino';
import { createLogger, type Logger } from '../log.js';

export interface Notifier {
  /** True when NOTIFY_SOCKET is set: messages are sent; otherwise every method is a no-op. */
  readonly enabled: boolean;
  /** READY=1 (with STATUS= when given): start-up is done; also ends a reload (after reloading()). */
  ready(status?: string): Promise<void>;
  /** STATUS=<text>: one line shown by `systemctl status`. */
  status(text: string): Promise<void>;
  /** STOPPING=1: shutdown has begun. */
  stopping(): Promise<void>;
  /** RELOADING=1 with MONOTONIC_USEC= (systemd ≥ 253 wants it); call ready() when the reload is done. */
  reloading(): Promise<void>;
  /** WATCHDOG=1: keep-alive, every watchdogIntervalMs(). */
  watchdog(): Promise<void>;
  /**
   * Half of WATCHDOG_USEC in ms (sd_watchdog_enabled's advice) when a watchdog is asked of this
   * process (WATCHDOG_PID unset or ours) and NOTIFY_SOCKET is set; else null.
   */
  watchdogIntervalMs(): number | null;
}

export type NotifyTransportName = 'auto' | 'unix-dgram' | 'systemd-notify';

export interface NotifierOptions {
  /** Where the one warning about a failed send goes. @default warn-level JSON on stderr */
  readonly logger?: Logger;
  /** `auto`: unix-dgram for a path socket when it loads, else systemd-notify. @default 'auto' */
  readonly transport?: NotifyTransportName;
  /** @default 'systemd-notify' (from PATH) */
  readonly systemdNotify?: string;
  /** The pid messages are attributed to. @default process.pid */
  readonly pid?: number;
}

/** STATUS= is one line; systemctl shows a short text. Longer input is cut here. */
const MAX_STATUS_CHARS = 500;
/** systemd-notify waits up to 5 s for systemd to process the message (BARRIER=1); beyond that it hangs. */
const SYSTEMD_NOTIFY_TIMEOUT_MS = 10_000;

interface Transport {
  readonly name: string;
  /** Rejects when the message could not be handed over. */
  send(assignments: readonly string[]): Promise<void>;
}

/** The minimal surface of unix-dgram 2.x that is used. */
interface UnixDgramModule {
  createSocket(type: 'unix_dgram'): UnixDgramSocket;
}
interface UnixDgramSocket {
  on(event: 'error', listener: (error: Error) => void): void;
  send(buf: Buffer, offset: number, length: number, path: string, callback: (error?: Error) => void): void;
  close(): void;
}

const NOOP = async (): Promise<void> => {};

/**
 * The daemon's link to systemd. Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from `env`
 * once, now. Messages are sent one at a time, in call order; each promise settles when its message
 * was handed over (or failed) and never rejects.
 */
export function createNotifier(env: NodeJS.ProcessEnv = process.env, options: NotifierOptions = {}): Notifier {
  const address = env['NOTIFY_SOCKET'] ?? '';
  const pid = options.pid ?? process.pid;
  const watchdogMs = address === '' ? null : watchdogInterval(env, pid);
  if (address === '') {
    return { enabled: false, ready: NOOP, status: NOOP, stopping: NOOP, reloading: NOOP, watchdog: NOOP, watchdogIntervalMs: () => null };
  }

  let transport: Transport | null = null;
  let queue: Promise<void> = Promise.resolve();
  let warned = false;
  const send = (assignments: readonly string[]): Promise<void> => {
    queue = queue.then(async () => {
      try {
        transport ??= chooseTransport(address, pid, options);
        await transport.send(assignments);
      } catch (error: unknown) {
        if (warned) return;
        warned = true;
        const logger = options.logger ?? createLogger({ level: 'warn' }, pino.destination({ dest: 2, sync: true }));
        logger.warn(
          { notifySocket: address, transport: transport?.name ?? null, err: error, message: assignments.map((a) => a.split('=', 1)[0]) },
          'cannot notify systemd; further notification failures are not logged',
        );
      }
    });
    return queue;
  };
  return {
    enabled: true,
    ready: (status) => send(status === undefined ? ['READY=1'] : ['READY=1', `STATUS=${oneLine(status)}`]),
    status: (text) => send([`STATUS=${oneLine(text)}`]),
    stopping: () => send(['STOPPING=1']),
    // CLOCK_MONOTONIC in µs: libuv's hrtime is CLOCK_MONOTONIC on Linux, as systemd expects.
    reloading: () => send(['RELOADING=1', `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`]),
    watchdog: () => send(['WATCHDOG=1']),
    watchdogIntervalMs: () => watchdogMs,
  };
}

/** Half of WATCHDOG_USEC in ms, or null when unset, malformed, or meant for another process. */
function watchdogInterval(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usecText = env['WATCHDOG_USEC'];
  if (usecText === undefined || !/^\d+$/.test(usecText)) return null;
  const forPid = env['WATCHDOG_PID'];
  if (forPid !== undefined && forPid !== '' && forPid !== String(pid)) return null;
  const usec = Number(usecText);
  if (!Number.isSafeInteger(usec) || usec <= 0) return null;
  return Math.max(1, Math.floor(usec / 2000));
}

/** Status text as one bounded line (newlines would start new assignments). */
function oneLine(text: string): string {
  const line = text.replace(/[\r\n]+/g, ' ');
  return line.length > MAX_STATUS_CHARS ? `${line.slice(0, MAX_STATUS_CHARS - 1)}…` : line;
}

function chooseTransport(address: string, pid: number, options: NotifierOptions): Transport {
  const wanted = options.transport ?? 'auto';
  const viaTool = (): Transport => systemdNotifyTransport(address, pid, options.systemdNotify ?? 'systemd-notify');
  if (wanted === 'systemd-notify') return viaTool();
  // unix-dgram copies the path with strncpy: an abstract name (leading NUL) cannot be addressed.
  if (address.startsWith('@')) {
    if (wanted === 'unix-dgram') throw new Error(`unix-dgram cannot address the abstract socket ${address}`);
    return viaTool();
  }
  const dgram = loadUnixDgram();
  if (dgram !== null) return unixDgramTransport(dgram, address);
  if (wanted === 'unix-dgram') throw new Error('the optional module unix-dgram is not installed or not built');
  return viaTool();
}

/** True when the optional native module unix-dgram loads here (else systemd-notify is used). */
export function unixDgramAvailable(): boolean {
  return loadUnixDgram() !== null;
}

function loadUnixDgram(): UnixDgramModule | null {
  try {
    // A CommonJS native addon, optional: absent when it could not be built at install time.
    const loaded: unknown = createRequire(import.meta.url)('unix-dgram');
    return typeof loaded === 'object' && loaded !== null && 'createSocket' in loaded ? (loaded as UnixDgramModule) : null;
  } catch {
    return null;
  }
}

/**
 * One datagram from this process. A socket per message: its read watcher would otherwise keep the
 * event loop alive, and messages are rare (the watchdog every several seconds).
 */
function unixDgramTransport(dgram: UnixDgramModule, path: string): Transport {
  return {
    name: 'unix-dgram',
    send: (assignments) =>
      new Promise<void>((resolve, reject) => {
        const socket = dgram.createSocket('unix_dgram');
        const message = Buffer.from(assignments.join('\n'), 'utf8');
        let settled = false;
        const done = (error?: Error): void => {
          if (settled) return;
          settled = true;
          try {
            socket.close();
          } catch {
            // already closed
          }
          if (error === undefined) resolve();
          else reject(error);
        };
        socket.on('error', done);
        socket.send(message, 0, message.length, path, (error) => done(error));
      }),
  };
}

/**
 * systemd-notify --pid=<pid> ASSIGNMENT…: as root it sends with SCM_CREDENTIALS naming our pid,
 * so systemd attributes the message to the main process; without CAP_SYS_ADMIN the kernel refuses
 * the forged pid, systemd-notify sends under its own, and the unit needs NotifyAccess=all. It then
 * waits (BARRIER=1) until systemd has processed the message, which closes the old race where
 * systemd-notify exited before systemd could look up its cgroup (systemd ≥ 246).
 * Argv holds only the assignments (status text, never secrets).
 */
function systemdNotifyTransport(address: string, pid: number, binary: string): Transport {
  return {
    name: 'systemd-notify',
    send: (assignments) =>
      new Promise<void>((resolve, reject) => {
        execFile(
          binary,
          [`--pid=${pid}`, ...assignments],
          { env: { ...process.env, NOTIFY_SOCKET: address }, timeout: SYSTEMD_NOTIFY_TIMEOUT_MS, windowsHide: true },
          (error, _stdout, stderr) => {
            if (error === null) resolve();
            else reject(new Error(`${binary} failed: ${stderr.trim() || error.message}`));
          },
        );
      }),
  };
}
