// The control API server: HTTP+JSON on a unix socket (node:http, no framework). The socket's file
// mode (0660), its group and its directory are the access boundary (DESIGN; docs/daemon.md).
// Owns: transport, body limits, slow-client timeouts, JSON decoding, the NDJSON event stream, and
// mapping SupervisorError codes to `{code, message}` with the registry's status. Must not: contain
// business rules (the ControlTarget does), echo request bodies, or crash or stall on any input.
// `sevsup run` serves the per-VM routes for one guest; the daemon also serves the optional ones.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { unlink } from 'node:fs/promises';
import { listenUnixSocket } from '../util/unix-listen.js';
import { performance } from 'node:perf_hooks';
import { SupervisorError, isSupervisorError } from '../errors.js';
import type { Logger } from '../log.js';
import type { LaunchRecord } from '../vm/record.js';
import { matchRoute, type Route, type RouteKind } from './routes.js';
import { errnoOf } from '../util/io-error.js';
import { peerCredAtAccept } from '../proxy/peer-cred.js';
import {
  parseAttestRequest,
  parseMigrateRequest,
  parseSnapshotRequest,
  parseStopRequest,
  type AttestRequest,
  type AttestResult,
  type MigrateRequest,
  type MigrateResult,
  type RecordSummary,
  type SnapshotRequest,
  type SnapshotResult,
  type StopRequest,
  type VmListReply,
  type VmStatus,
} from './types.js';

/** One line of the event stream: a lifecycle or daemon event, with `vm` and `time`. */
export type StreamEvent = { readonly event: string; readonly vm: string | null; readonly time: string } & Readonly<Record<string, unknown>>;

/** What the server serves. `sevsup run` wraps one lifecycle (the first three); the daemon all. */
export interface ControlTarget {
  /** undefined: no such VM here. Served from memory: no QMP round trip. */
  status(vm: string): VmStatus | undefined;
  /** This launch's record of `vm`; null when it has none (yet). */
  measurement(vm: string): Promise<LaunchRecord | null>;
  attest(vm: string, request: AttestRequest): Promise<AttestResult>;
  list?(): VmListReply;
  start?(vm: string): Promise<VmStatus>;
  stop?(vm: string, request: StopRequest): Promise<VmStatus>;
  /** Every record of `vm` ever written, oldest first. */
  records?(vm: string): Promise<readonly RecordSummary[]>;
  /** One past record by name; null when there is none. */
  record?(vm: string, name: string): Promise<LaunchRecord | null>;
  snapshot?(vm: string, request: SnapshotRequest): Promise<SnapshotResult>;
  migrate?(vm: string, request: MigrateRequest): Promise<MigrateResult>;
  /** Subscribe to events (all VMs, or one); returns the unsubscribe function. */
  subscribe?(listener: (event: StreamEvent) => void, vm: string | null): () => void;
  metrics?(): Promise<{ readonly contentType: string; readonly body: string }>;
}

export interface ControlServerOptions {
  readonly socketPath: string;
  readonly target: ControlTarget;
  /** @default 0o660 (owner and group: the group is how operators are let in) */
  readonly mode?: number;
  /** Numeric gid given the socket (the daemon's socket-group). */
  readonly gid?: number;
  readonly logger?: Logger;
  /** Called when a request has been answered (metrics); not for the event stream. */
  readonly onAnswered?: (route: RouteKind | 'unknown', seconds: number) => void;
  /** What EADDRINUSE means to the caller's operator. @default "another sevsup serves this VM" */
  readonly inUse?: (socketPath: string, cause: unknown) => SupervisorError;
}

export interface ControlServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

/** Attest bodies are two base64 strings of a few KiB at most (the secret area is 4 KiB). */
export const MAX_BODY_BYTES = 64 * 1024;
/** Slow or stuck clients must not hold a connection (and the held guest's operator) forever. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 60_000;
/** An idle kept-alive connection is closed after this (Node's default; named for the docs). */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/**
 * A connection that has not started a request this long after accept is closed: idle clients
 * must not hold slots. (Node checks its own header and request timers only every 30 s by default;
 * CHECK_INTERVAL_MS makes them apply promptly.)
 */
export const IDLE_FROM_ACCEPT_MS = 5_000;
const CHECK_INTERVAL_MS = 1_000;
/** Connections at once: far above any operator's use, low enough that a flood cannot exhaust fds. */
export const MAX_CONNECTIONS = 1024;
/** Event streams at once: long-lived by design, so capped well below MAX_CONNECTIONS. */
export const MAX_EVENT_STREAMS = 64;
/** Bytes an event-stream client may fall behind before it is disconnected. */
export const MAX_EVENT_BACKLOG_BYTES = 1024 * 1024;

/**
 * Listen on `socketPath` and serve `target`.
 * @throws SUP_ERR_VM_STATE (or `inUse`'s error) when the path is already in use.
 */
export async function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const { socketPath, target, logger } = options;
  const slots = new ConnectionSlots(logger);
  const server = createServer({ connectionsCheckingInterval: CHECK_INTERVAL_MS }, (req, res) => {
    slots.requestStarted(req.socket);
    res.once('close', () => slots.requestEnded(req.socket));
    const started = performance.now();
    let route: RouteKind | 'unknown' = 'unknown';
    res.once('finish', () => {
      if (route !== 'events') options.onAnswered?.(route, (performance.now() - started) / 1000);
    });
    handle(req, res, target, (kind) => (route = kind), slots).catch((error: unknown) => {
      // Refusals (4xx) are normal answers; only our own faults are errors.
      if (isSupervisorError(error) && error.status < 500) logger?.info({ code: error.code, url: req.url }, 'control API request refused');
      else logger?.error({ err: error }, 'control API handler failed');
      if (!res.headersSent) sendError(res, error);
      else res.destroy();
    });
  });
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  // A hard bound for fds; below it, idle connections give way to new ones (ConnectionSlots).
  server.maxConnections = MAX_CONNECTIONS + MAX_EVENT_STREAMS;
  server.on('connection', (socket: Socket) => slots.accepted(socket));
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });
  try {
    // Mode and group are set before the socket appears at its path: it is the access boundary.
    await listenUnixSocket(server, socketPath, {
      mode: options.mode ?? 0o660,
      ...(options.gid === undefined ? {} : { gid: options.gid }),
      replace: false,
    });
  } catch (error: unknown) {
    const code = errnoOf(error);
    if (code !== 'EADDRINUSE' && code !== 'EEXIST') throw error;
    throw (
      options.inUse?.(socketPath, error) ??
      new SupervisorError('SUP_ERR_VM_STATE', `control socket ${socketPath} is already in use: another sevsup serves this VM`, {
        details: { socketPath },
        cause: error,
      })
    );
  }
  server.on('error', (error) => logger?.error({ err: error }, 'control API server error'));
  let closing: Promise<void> | undefined;
  return {
    socketPath,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => unlink(socketPath).catch(() => undefined));
      return closing;
    },
  };
}

/** Serve one request; `matched` hears the route kind as soon as it is known (for metrics). */
async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  target: ControlTarget,
  matched: (kind: RouteKind) => void,
  slots: ConnectionSlots,
): Promise<void> {
  let route: Route;
  try {
    route = matchRoute(req.method ?? 'GET', req.url ?? '/');
  } catch (error: unknown) {
    sendError(res, error);
    return;
  }
  matched(route.kind);
  switch (route.kind) {
    case 'status':
      sendJson(res, 200, known(target, route.vm));
      break;
    case 'measurement': {
      known(target, route.vm);
      const record = await target.measurement(route.vm);
      if (record === null) {
        throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${route.vm} has no measurement record (not an SEV guest, or not measured yet)`);
      }
      sendJson(res, 200, record);
      break;
    }
    case 'attest': {
      const body = await readJsonBody(req, false);
      known(target, route.vm);
      const request = parseAttestRequest(body);
      // Who forced an override of a relayed guest goes in the lifecycle's warning (SO_PEERCRED).
      sendJson(res, 200, await target.attest(route.vm, request.force === true ? { ...request, peer: describePeer(req) } : request));
      break;
    }
    case 'list':
      sendJson(res, 200, served(target.list, route)());
      break;
    case 'start': {
      const start = served(target.start, route);
      await readJsonBody(req, true);
      known(target, route.vm);
      sendJson(res, 200, await start(route.vm));
      break;
    }
    case 'stop': {
      const stop = served(target.stop, route);
      const request = parseStopRequest(await readJsonBody(req, true));
      known(target, route.vm);
      sendJson(res, 200, await stop(route.vm, request));
      break;
    }
    case 'records':
      known(target, route.vm);
      sendJson(res, 200, { vm: route.vm, records: await served(target.records, route)(route.vm) });
      break;
    case 'record': {
      const read = served(target.record, route);
      known(target, route.vm);
      const record = await read(route.vm, route.name);
      if (record === null)
        throw new SupervisorError('SUP_ERR_VM_NOT_FOUND', `VM ${route.vm} has no measurement record named ${JSON.stringify(route.name)}`);
      sendJson(res, 200, record);
      break;
    }
    case 'snapshot': {
      const snapshot = served(target.snapshot, route);
      const request = parseSnapshotRequest(await readJsonBody(req, false));
      known(target, route.vm);
      sendJson(res, 200, await snapshot(route.vm, request));
      break;
    }
    case 'migrate': {
      const migrate = served(target.migrate, route);
      const request = parseMigrateRequest(await readJsonBody(req, false));
      known(target, route.vm);
      sendJson(res, 200, await migrate(route.vm, request));
      break;
    }
    case 'metrics': {
      const metrics = await served(target.metrics, route)();
      res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(metrics.body) });
      res.end(metrics.body);
      break;
    }
    case 'events': {
      const subscribe = served(target.subscribe, route);
      if (!slots.openStream(req.socket)) {
        throw new SupervisorError(
          'SUP_ERR_API_BUSY',
          `${MAX_EVENT_STREAMS} event streams are open already; close one, or try again later`,
          {
            details: { limit: MAX_EVENT_STREAMS },
          },
        );
      }
      streamEvents(req, res, subscribe, route.vm);
      break;
    }
  }
}

/**
 * Who holds a connection slot, so that idle clients never lock out the ones that ask something
 * (an owner's approve): every connection must start a request within IDLE_FROM_ACCEPT_MS of
 * accept; at MAX_CONNECTIONS a new connection evicts the longest-idle one (no request in flight,
 * no event stream); event streams are capped at MAX_EVENT_STREAMS. Clients of this socket are
 * not told apart by peer: it is 0660 to root and the socket group, and the budget is per
 * connection state, which an idle flood cannot game.
 */
class ConnectionSlots {
  readonly #idle = new Set<Socket>(); // insertion order = idle since, oldest first
  readonly #busy = new Set<Socket>();
  readonly #streams = new Set<Socket>();
  /** Connections that have sent a request (the accept timer no longer applies). */
  readonly #started = new WeakSet<Socket>();
  readonly #log: Logger | undefined;
  #evicted = 0;

  constructor(logger: Logger | undefined) {
    this.#log = logger;
  }

  accepted(socket: Socket): void {
    // Our own timer, not socket.setTimeout: Node's server treats any socket timeout as its own
    // (and destroys busy sockets on it). Later idleness is Node's keep-alive timeout's.
    const timer = setTimeout(() => {
      if (this.#idle.has(socket) && !this.#started.has(socket)) socket.destroy();
    }, IDLE_FROM_ACCEPT_MS);
    timer.unref();
    socket.once('close', () => {
      clearTimeout(timer);
      this.#started.delete(socket);
      this.#idle.delete(socket);
      this.#busy.delete(socket);
      this.#streams.delete(socket);
    });
    if (this.#idle.size + this.#busy.size + this.#streams.size >= MAX_CONNECTIONS) {
      const [oldest] = this.#idle;
      if (oldest === undefined) {
        socket.destroy();
        return;
      }
      this.#idle.delete(oldest);
      oldest.destroy();
      // One line per thousand: a flood must not become a log flood.
      if (this.#evicted++ % 1000 === 0)
        this.#log?.warn(
          { limit: MAX_CONNECTIONS, evicted: this.#evicted },
          'control API at its connection limit; idle connections evicted',
        );
    }
    this.#idle.add(socket);
  }

  requestStarted(socket: Socket): void {
    this.#started.add(socket);
    this.#idle.delete(socket);
    if (!this.#streams.has(socket)) this.#busy.add(socket);
  }

  requestEnded(socket: Socket): void {
    if (!this.#busy.delete(socket) || socket.destroyed) return;
    // Kept alive: idle again (Node's keep-alive timeout closes it), last in the eviction order.
    this.#idle.add(socket);
  }

  /** @returns false at MAX_EVENT_STREAMS */
  openStream(socket: Socket): boolean {
    if (this.#streams.size >= MAX_EVENT_STREAMS) return false;
    this.#busy.delete(socket);
    this.#streams.add(socket);
    return true;
  }
}

/** The status of a VM this target serves. @throws SUP_ERR_VM_NOT_FOUND */
function known(target: ControlTarget, vm: string): VmStatus {
  const status = target.status(vm);
  if (status === undefined) throw new SupervisorError('SUP_ERR_VM_NOT_FOUND', `no VM named ${JSON.stringify(vm)} is served on this socket`);
  return status;
}

/** An optional target method, bound; `sevsup run` serves only its one guest's routes. */
function served<F extends (...args: never[]) => unknown>(method: F | undefined, route: Route): F {
  if (method === undefined) {
    throw new SupervisorError(
      'SUP_ERR_API_NOT_FOUND',
      `this socket does not serve ${route.kind} (it is \`sevsup run\`'s per-VM socket; the daemon's socket does)`,
    );
  }
  return method;
}

/**
 * NDJSON, one event per line, until the client goes away or the server closes. The first line
 * (`{"event":"subscribed"}`) tells the client it will see everything after it. A client that
 * does not read is cut off once MAX_EVENT_BACKLOG_BYTES are queued, never slowing anyone else.
 */
function streamEvents(
  req: IncomingMessage,
  res: ServerResponse,
  subscribe: NonNullable<ControlTarget['subscribe']>,
  vm: string | null,
): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  // Long-lived on purpose: no request timer applies once the response has started.
  req.socket.setTimeout(0);
  const write = (event: object): void => {
    if (res.destroyed) return;
    res.write(`${JSON.stringify(event)}\n`);
    if (res.writableLength > MAX_EVENT_BACKLOG_BYTES) res.destroy();
  };
  const unsubscribe = subscribe(write, vm);
  res.once('close', unsubscribe);
  write({ event: 'subscribed', vm, time: new Date().toISOString() });
}

/** `emptyIsObject`: an empty body means `{}` (start, stop). @throws SUP_ERR_API_TOO_LARGE, SUP_ERR_API_BAD_REQUEST */
async function readJsonBody(req: IncomingMessage, emptyIsObject: boolean): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size > MAX_BODY_BYTES) throw tooLarge();
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (emptyIsObject && text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new SupervisorError('SUP_ERR_API_BAD_REQUEST', `request body is not valid JSON (${size} bytes)`);
  }
}

function tooLarge(): SupervisorError {
  return new SupervisorError('SUP_ERR_API_TOO_LARGE', `request body is larger than ${MAX_BODY_BYTES} bytes`);
}

function sendJson(res: ServerResponse, status: number, value: unknown, close = false): void {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(body);
}

/** Errors close the connection: the request body may be unread (too large, refused early). */
function sendError(res: ServerResponse, error: unknown): void {
  const err = isSupervisorError(error) ? error : new SupervisorError('SUP_ERR_INTERNAL', 'internal error in the control API');
  sendJson(res, err.status, err.toJSON(), true);
}

/** The control socket's peer as the relay-override warning names it: `uid=… pid=… comm=…`, or why not known. */
function describePeer(req: IncomingMessage): string {
  const peer = peerCredAtAccept(req.socket);
  const first = peer?.known === true ? peer.processes[0] : undefined;
  return first === undefined ? 'unknown (SO_PEERCRED unavailable)' : `uid=${first.uid ?? '?'} pid=${first.pid} comm=${first.comm}`;
}
