// Connecting to a unix socket that QEMU serves but may not have created yet (`server=on,wait=off`
// sockets appear during QEMU's start-up): p-retry with a small exponential backoff, giving up the
// moment QEMU is gone. Shared by the QMP client and the simulated platform's monitor relay.
// Must not: speak QMP (callers do) or retry anything but "not there yet" errors.
import { createConnection, type Socket } from 'node:net';
import pRetry from 'p-retry';
import { SupervisorError } from '../errors.js';
import { errnoOf } from '../util/io-error.js';

export interface QemuSocketOptions {
  readonly path: string;
  /** Whether QEMU still runs: asked between attempts; connecting gives up once it is false. */
  readonly isAlive?: () => boolean;
  /** Settles when QEMU exits: connecting gives up at that moment. */
  readonly exited?: PromiseLike<unknown>;
  readonly signal?: AbortSignal;
}

/**
 * Backoff while the socket does not exist yet: a small base so a fast QEMU is caught at once,
 * and a low ceiling because isAlive() is checked between attempts — it bounds how late we notice
 * that QEMU died (an `exited` promise, when given, is noticed at once).
 */
const CONNECT_BACKOFF = { minTimeout: 2, factor: 2, maxTimeout: 50 } as const;
/** Errors meaning "QEMU has not created or not yet listened on the socket": retried. */
const RETRYABLE_CONNECT_ERRORS: ReadonlySet<string> = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

/** Connect to a unix socket that QEMU may not have created yet (p-retry, no fixed sleeps). */
export async function connectQemuSocket(options: QemuSocketOptions, timeoutMs: number): Promise<Socket> {
  const { path, isAlive = () => true, exited } = options;
  const exitedNow = new AbortController();
  let hasExited = false;
  if (exited) {
    const onExit = (): void => {
      hasExited = true;
      exitedNow.abort(new Error('QEMU exited'));
    };
    exited.then(onExit, onExit);
  }
  const signal = options.signal ? AbortSignal.any([options.signal, exitedNow.signal]) : exitedNow.signal;
  const dead = (): boolean => hasExited || !isAlive();
  let lastError: unknown;
  try {
    return await pRetry(() => connectOnce(path, signal, dead), {
      retries: Number.POSITIVE_INFINITY,
      ...CONNECT_BACKOFF,
      maxRetryTime: timeoutMs,
      signal,
      onFailedAttempt: ({ error }) => {
        // Keep the last real socket error as the cause, not our own "QEMU is gone" marker.
        if (error !== EXITED) lastError = error;
      },
      shouldRetry: ({ error }) => RETRYABLE_CONNECT_ERRORS.has(errnoOf(error) ?? '') && !dead(),
    });
  } catch (error) {
    if (options.signal?.aborted === true) throw options.signal.reason;
    const cause = lastError ?? (error === EXITED ? undefined : error);
    const code = errnoOf(cause);
    if (dead()) {
      throw new SupervisorError('SUP_ERR_QMP_CONNECT', `QEMU exited before its QMP socket ${path} accepted a connection`, {
        details: { path },
        cause,
      });
    }
    if (code !== undefined && RETRYABLE_CONNECT_ERRORS.has(code)) {
      throw new SupervisorError('SUP_ERR_QMP_CONNECT', `QMP socket ${path} not accepting connections after ${timeoutMs} ms (${code})`, {
        details: { path, timeoutMs, errno: code },
        cause,
      });
    }
    throw new SupervisorError(
      'SUP_ERR_QMP_CONNECT',
      `cannot connect to QMP socket ${path}: ${cause instanceof Error ? cause.message : String(cause)}`,
      {
        details: { path, ...(code === undefined ? {} : { errno: code }) },
        cause,
      },
    );
  }
}

/** Rejection of an attempt not made because QEMU is gone; never surfaces to callers. */
const EXITED = new Error('QEMU is not running');

function connectOnce(path: string, signal: AbortSignal, dead: () => boolean): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    if (dead()) {
      reject(EXITED);
      return;
    }
    const socket = createConnection({ path });
    const cleanup = (): void => {
      socket.off('connect', onConnect);
      socket.off('error', onError);
      signal.removeEventListener('abort', onAbort);
    };
    const onConnect = (): void => {
      cleanup();
      resolve(socket);
    };
    const onError = (error: Error): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onAbort = (): void => {
      cleanup();
      socket.destroy();
      reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
    };
    socket.once('connect', onConnect);
    socket.once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
