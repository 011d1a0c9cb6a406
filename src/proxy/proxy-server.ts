// The per-VM QMP proxy socket (<run-dir>/<vm>/qmp.sock): accepts many clients, frames and strictly
// parses their input, lets each client's ClientSession answer or decide, forwards only our own
// re-serialised commands through the supervisor's upstream connection, restores each client's id,
// and fans QEMU's events out to every negotiated client.
// Owns: client sockets, their bounded queues and output, ordering of replies per client, the
// share of the upstream the proxy may use, audit lines, refusal counters.
// Must not: own, reconnect or close the upstream QMP connection (it is injected), forward client
// bytes, or let one client's pace delay another client or the supervisor.
//
// Ordering (as QEMU's monitor): in-band requests of one client are handled one at a time, in
// order, and their replies (forwarded, refused or malformed alike) come back in that order;
// `exec-oob` requests have a lane of their own per client (also one at a time, in order), so their
// replies may overtake in-band ones. Events are written when they arrive. When a client
// disconnects, its queued requests are dropped unsent (QEMU drops a gone client's queue too); a
// reply to a request already sent is discarded.
//
// sevsup's own commands come first: proxy traffic takes at most maxUpstreamInFlight in-band plus
// maxOobInFlight out-of-band slots upstream, over all clients, so QEMU's monitor queue (8) always
// has room for the supervisor's command and a flood from clients waits here, not in QEMU.
// Slots are fair: per peer (uid, from SO_PEERCRED at accept) at most maxClientsPerPeer
// connections, and every connection is closed after idleTimeoutMs without a request.
import { rm } from 'node:fs/promises';
import { listenUnixSocket } from '../util/unix-listen.js';
import { createServer, type Server, type Socket } from 'node:net';
import { isSupervisorError } from '../errors.js';
import type { Logger } from '../log.js';
import type { QmpClient, QmpReply, QmpRequest } from '../qmp/client.js';
import { QmpFramer } from '../qmp/framing.js';
import { ClientSession, isOutOfBand, type ClientId, type Refusal } from './client-session.js';
import type { DecideContext } from './decide.js';
import { lookupUnixPeer, peerCredAtAccept, peerLogFields, type PeerInfo } from './peer-cred.js';
import { createLogThrottle } from '../util/log-throttle.js';
import { parseStrictJson } from '../util/strict-json.js';

/** What the proxy needs of the supervisor's own QMP connection; a QmpClient is one. */
export type QmpUpstream = Pick<QmpClient, 'greeting' | 'oob' | 'request' | 'onEvent' | 'closed'> & Partial<Pick<QmpClient, 'ownIdle'>>;

export interface ProxyLimits {
  /** Largest message a client may send. QEMU allows 64 MiB; no operator command needs 1. */
  readonly maxMessageBytes: number;
  /** Deepest nesting; the deepest real command (blockdev-add, transaction) needs under 10. */
  readonly maxDepth: number;
  /** Bytes queued to a client that is not reading before it is disconnected as too slow. */
  readonly maxOutputBytes: number;
  /** In-band requests a client may have waiting before its socket stops being read (backpressure). */
  readonly maxQueued: number;
  /**
   * Bytes of in-band requests a client may have waiting, likewise: maxQueued messages of up to
   * maxMessageBytes each would let 256 clients park gigabytes behind a slow upstream.
   */
  readonly maxQueuedBytes: number;
  /** Malformed messages in a row before the client is disconnected. */
  readonly maxBadInput: number;
  readonly maxClients: number;
  /**
   * In-band requests the proxy has in flight upstream, over all clients. QEMU queues at most 8 in
   * a monitor with oob and then stops reading it, which would hold back an `exec-oob` and the
   * supervisor's own commands behind proxy traffic; 4 keeps QEMU busy and leaves room.
   */
  readonly maxUpstreamInFlight: number;
  /**
   * Milliseconds a client has to finish capabilities negotiation. QEMU waits forever; here an
   * idle, never-negotiated connection would hold one of the maxClients slots indefinitely.
   */
  readonly negotiationTimeoutMs: number;
  /**
   * `exec-oob` requests in flight upstream over all clients (each client has at most one; the
   * rest wait in its own lane, which counts towards maxQueued). Unbounded, a flood of them went
   * ahead of everything and starved sevsup's own commands into timeouts.
   */
  readonly maxOobInFlight: number;
  /**
   * Connections one peer may hold (by uid; connections whose peer is unknown share one count),
   * so one user's idle clients cannot take every one of the maxClients slots.
   */
  readonly maxClientsPerPeer: number;
  /**
   * A connection that sends no request for this long, counted from accept, is closed (a request
   * still waiting for its reply keeps it open). Event listeners keep theirs with any command,
   * e.g. query-status, at least this often.
   */
  readonly idleTimeoutMs: number;
}

export const DEFAULT_PROXY_LIMITS: ProxyLimits = {
  maxMessageBytes: 1024 * 1024,
  maxDepth: 64,
  maxOutputBytes: 4 * 1024 * 1024,
  maxQueued: 64,
  maxQueuedBytes: 2 * 1024 * 1024,
  maxBadInput: 3,
  maxClients: 256,
  maxUpstreamInFlight: 4,
  negotiationTimeoutMs: 30_000,
  maxOobInFlight: 2,
  maxClientsPerPeer: 64,
  idleTimeoutMs: 10 * 60_000,
};

/** Lines of one kind (refusals, drops, ...) written per window before they are only counted. */
const LOG_BURST = 100;
const LOG_WINDOW_MS = 10_000;

export interface ProxyOptions {
  readonly socketPath: string;
  readonly vm: string;
  readonly upstream: QmpUpstream;
  /** Read at each decision, so held/running changes apply to the very next command. */
  readonly context: () => DecideContext;
  readonly logger: Logger;
  /** @default 0o660 */
  readonly mode?: number;
  /** Group that may use the socket (numeric gid); the owner stays the supervisor's user. */
  readonly gid?: number;
  readonly limits?: Partial<ProxyLimits>;
  /** Called on every refusal (metrics), synchronously, before the reply is written. */
  readonly onRefusal?: (reason: string, command: string | null) => void;
  /**
   * Who is on the other end, read in the accept callback (audit lines, per-peer limits); null
   * when it cannot say, and then lookupPeer runs, started at accept too. @default peerCredAtAccept
   */
  readonly peerAtAccept?: (socket: Socket) => PeerInfo | null;
  /** The fallback peer lookup. @default lookupUnixPeer (peer-cred.ts) */
  readonly lookupPeer?: (socket: Socket) => Promise<PeerInfo>;
}

export interface ProxyStats {
  readonly clients: number;
  readonly accepted: number;
  /** Refusals by reason code. */
  readonly refusals: Readonly<Record<string, number>>;
  readonly badInput: number;
  /** Clients the proxy disconnected, by why. */
  readonly dropped: Readonly<Record<DropReason, number>>;
  readonly forwarded: number;
}

export interface QmpProxy {
  readonly socketPath: string;
  clientCount(): number;
  /** Refusals by reason code since start. */
  refusals(): Readonly<Record<string, number>>;
  stats(): ProxyStats;
  /** Resolves when the proxy has stopped: close(), or the upstream connection ended. */
  readonly closed: Promise<void>;
  /** Stop listening, disconnect every client, remove the socket. Idempotent. */
  close(): Promise<void>;
}

type DropReason = 'slow' | 'bad-input' | 'too-many-clients' | 'peer-limit' | 'idle' | 'negotiation-timeout';

type LaneItem =
  | { readonly kind: 'value'; readonly value: unknown; readonly bytes: number }
  | { readonly kind: 'reply'; readonly reply: Record<string, unknown> };

/** One client's requests of one kind (in-band or out-of-band), handled one at a time, in order. */
interface Lane {
  readonly items: LaneItem[];
  /** Bytes of the requests in `items`. */
  queuedBytes: number;
  pumping: boolean;
  /** The shared upstream slots this lane's forwarded requests take. */
  readonly gate: Gate;
}

interface Client {
  readonly serial: number;
  readonly socket: Socket;
  readonly session: ClientSession;
  readonly framer: QmpFramer;
  readonly inband: Lane;
  readonly oob: Lane;
  paused: boolean;
  badInARow: number;
  closed: boolean;
  /** Started at accept: never lazily, or a client that closes at once could not be named. */
  readonly peer: Promise<PeerInfo>;
  /** The per-peer count this connection is in (`uid:N` or `unknown`). */
  readonly peerKey: string;
  /** When the last complete request arrived (or accept). */
  lastRequestAt: number;
}

/** Command names are client text: logs carry this much of one. */
const MAX_LOGGED_NAME = 128;
/** How long a client we disconnect gets to read our last words before the socket is destroyed. */
const FAREWELL_MS = 1_000;
const CRLF = '\r\n';

/** FIFO semaphore: in-band requests of all clients take turns for the upstream slots. */
class Gate {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number) {}

  acquire(): Promise<void> | undefined {
    if (this.active < this.max) {
      this.active += 1;
      return undefined;
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active -= 1;
  }
}

/** The client-facing reply for a request the upstream could not complete. */
function upstreamFailure(error: unknown): QmpReply {
  const code = isSupervisorError(error) ? error.code : undefined;
  const desc =
    code === 'SUP_ERR_QMP_TIMEOUT'
      ? 'sevsup: QEMU did not reply in time; the command may still complete'
      : code === 'SUP_ERR_QMP_INTERRUPTED' || code === 'SUP_ERR_QMP_STATE'
        ? "sevsup: the connection to QEMU's monitor was lost; the command may or may not have run"
        : `sevsup: the command could not be forwarded: ${error instanceof Error ? error.message : String(error)}`;
  return { error: { class: 'GenericError', desc } };
}

function shortName(name: string | null): string | null {
  return name !== null && name.length > MAX_LOGGED_NAME ? `${name.slice(0, MAX_LOGGED_NAME)}…` : name;
}

/** QEMU prefixes every parse failure so; the strict parser's own prefix is dropped. */
function parseErrorDesc(message: string): string {
  return `JSON parse error, ${message.replace(/^malformed QMP input: /, '')}`;
}

/**
 * Start the proxy on `socketPath`. The socket appears atomically with its final mode and group
 * (bound under a temporary name, chmod/chown, renamed over any stale socket), so there is no
 * moment when it is reachable with looser permissions.
 * The upstream must be negotiated (QmpClient.connect does that); `exec-oob` is offered to clients
 * only when the upstream negotiated oob. When the upstream ends the proxy closes too.
 */
export async function startQmpProxy(options: ProxyOptions): Promise<QmpProxy> {
  const limits: ProxyLimits = { ...DEFAULT_PROXY_LIMITS, ...options.limits };
  const { upstream, vm } = options;
  const log = options.logger.child({ component: 'qmp-proxy', vm });
  const lookupPeer = options.lookupPeer ?? ((socket: Socket) => lookupUnixPeer(socket));
  const peerAtAccept = options.peerAtAccept ?? peerCredAtAccept;
  const clients = new Set<Client>();
  const inbandGate = new Gate(limits.maxUpstreamInFlight);
  const oobGate = new Gate(limits.maxOobInFlight);
  const perPeer = new Map<string, number>();
  const refusalCounts: Record<string, number> = {};
  const dropped: Record<DropReason, number> = {
    slow: 0,
    'bad-input': 0,
    'too-many-clients': 0,
    'peer-limit': 0,
    idle: 0,
    'negotiation-timeout': 0,
  };
  let accepted = 0;
  let badInput = 0;
  let forwarded = 0;
  let stopping = false;
  // A flood (refusals, dropped clients) costs counters, not 60k log lines.
  const throttle = createLogThrottle({
    burst: LOG_BURST,
    windowMs: LOG_WINDOW_MS,
    onSuppressed: (kind, count) =>
      log.warn({ kind, suppressed: count, windowMs: LOG_WINDOW_MS }, `${count} similar qmp proxy lines suppressed`),
  });

  // Each client gets QEMU's greeting; oob only if the upstream can carry it.
  const offered = upstream.greeting.QMP.capabilities.filter((cap) => cap !== 'oob' || upstream.oob);
  const greeting = JSON.stringify({ QMP: { version: upstream.greeting.QMP.version, capabilities: offered } }) + CRLF;

  /** Sockets of dropped clients kept open only until we know who they were. */
  const dropping = new Set<Socket>();

  const clearLane = (lane: Lane): void => {
    lane.items.length = 0;
    lane.queuedBytes = 0;
  };

  const disconnect = (client: Client, why: DropReason | 'gone' | 'closing'): Promise<PeerInfo> | undefined => {
    if (client.closed) return undefined;
    client.closed = true;
    clients.delete(client);
    const count = (perPeer.get(client.peerKey) ?? 1) - 1;
    if (count > 0) perPeer.set(client.peerKey, count);
    else perPeer.delete(client.peerKey);
    clearLane(client.inband);
    clearLane(client.oob);
    const { socket } = client;
    if (why === 'gone' || why === 'closing') {
      socket.destroy();
      return undefined;
    }
    dropped[why] += 1;
    // A client we drop: let the peer lookup (started at accept) finish while the connection still
    // exists (it is bounded), then close. Nothing more is read from it or written to it meanwhile.
    socket.pause();
    dropping.add(socket);
    void client.peer.then(() => {
      dropping.delete(socket);
      if (why === 'bad-input') {
        // Let it read the last error, but never wait on a peer that does not read.
        socket.end();
        setTimeout(() => socket.destroy(), FAREWELL_MS).unref();
      } else {
        socket.destroy();
      }
    });
    return client.peer;
  };

  /** Disconnect and log why (rate-limited per kind), with who it was. */
  const drop = (client: Client, why: DropReason, fields: Record<string, unknown>, message: string): void => {
    const peer = disconnect(client, why);
    if (peer === undefined) return;
    void peer.then((info) => {
      if (throttle.admit(why)) log.warn({ ...fields, client: client.serial, ...peerLogFields(info) }, message);
    });
  };

  const write = (client: Client, text: string): void => {
    if (client.closed) return;
    client.socket.write(text);
    if (client.socket.writableLength > limits.maxOutputBytes) {
      const queuedBytes = client.socket.writableLength;
      drop(client, 'slow', { queuedBytes, limit: limits.maxOutputBytes }, 'qmp proxy client is not reading; disconnected');
    }
  };

  const send = (client: Client, reply: Record<string, unknown>): void => write(client, JSON.stringify(reply) + CRLF);

  const audit = (client: Client, refusal: Refusal): void => {
    refusalCounts[refusal.reason] = (refusalCounts[refusal.reason] ?? 0) + 1;
    options.onRefusal?.(refusal.reason, refusal.command);
    const line = {
      code: 'SUP_ERR_PROXY_REFUSED',
      command: shortName(refusal.command),
      reason: refusal.reason,
      detail: refusal.detail,
      ...(refusal.hmp === undefined ? {} : { hmp: refusal.hmp }),
      vmState: options.context().vmState,
      client: client.serial,
    };
    // The reply never waits for the peer lookup; the audit line does (bounded by its timeout).
    void client.peer.then((peer) => {
      if (throttle.admit('refused')) log.warn({ ...line, ...peerLogFields(peer) }, 'qmp command refused');
    });
  };

  const forward = async (client: Client, lane: Lane, request: QmpRequest, id: ClientId): Promise<void> => {
    const wait = lane.gate.acquire();
    if (wait) await wait;
    // sevsup's own commands go first: none of ours is sent while one of its is awaiting a reply.
    for (let own = upstream.ownIdle?.(); own !== undefined && !client.closed; own = upstream.ownIdle?.()) await own;
    // The client may have gone while waiting for a slot: its request is dropped unsent.
    if (client.closed) {
      lane.gate.release();
      return;
    }
    forwarded += 1;
    let reply: QmpReply;
    try {
      reply = await upstream.request(request);
    } catch (error: unknown) {
      reply = upstreamFailure(error);
    } finally {
      lane.gate.release();
    }
    const out: Record<string, unknown> = 'error' in reply ? { error: reply.error } : { return: reply.return };
    if (id !== null) out['id'] = id.value;
    send(client, out);
  };

  /** Handle one parsed request; a promise only when it went upstream. */
  const handle = (client: Client, lane: Lane, value: unknown): Promise<void> | undefined => {
    const action = client.session.handle(value, options.context());
    if (action.kind === 'forward') return forward(client, lane, action.request, action.id);
    if (action.refusal !== undefined) audit(client, action.refusal);
    send(client, action.reply);
    return undefined;
  };

  const full = (client: Client): boolean =>
    client.inband.items.length + client.oob.items.length >= limits.maxQueued ||
    client.inband.queuedBytes + client.oob.queuedBytes >= limits.maxQueuedBytes;

  /** Work through one of a client's lanes, one request at a time. */
  const pump = async (client: Client, lane: Lane): Promise<void> => {
    if (lane.pumping) return;
    lane.pumping = true;
    try {
      for (let item = lane.items.shift(); item !== undefined && !client.closed; item = lane.items.shift()) {
        if (item.kind === 'value') lane.queuedBytes -= item.bytes;
        if (client.paused && !full(client)) {
          client.paused = false;
          client.socket.resume();
        }
        if (item.kind === 'reply') {
          send(client, item.reply);
          continue;
        }
        const pending = handle(client, lane, item.value);
        if (pending) await pending;
      }
    } finally {
      lane.pumping = false;
    }
  };

  const enqueue = (client: Client, lane: Lane, item: LaneItem): void => {
    lane.items.push(item);
    if (item.kind === 'value') lane.queuedBytes += item.bytes;
    if (!client.paused && full(client)) {
      client.paused = true;
      client.socket.pause();
    }
    if (!lane.pumping) void pump(client, lane);
  };

  const malformed = (client: Client, desc: string): void => {
    badInput += 1;
    client.badInARow += 1;
    // QEMU's parse errors carry no id: it could not be read (qmp-spec).
    const reply = { error: { class: 'GenericError', desc } };
    if (client.badInARow < limits.maxBadInput) {
      enqueue(client, client.inband, { kind: 'reply', reply });
      return;
    }
    send(client, reply);
    drop(
      client,
      'bad-input',
      { code: 'SUP_ERR_PROXY_BAD_INPUT', count: client.badInARow, last: desc },
      'qmp proxy client sent malformed input repeatedly; disconnected',
    );
  };

  const onData = (client: Client, chunk: Buffer): void => {
    for (const item of client.framer.push(chunk)) {
      if (client.closed) return;
      client.lastRequestAt = Date.now();
      if (item.kind === 'error') {
        malformed(client, `JSON parse error, ${item.message}`);
        continue;
      }
      let value: unknown;
      try {
        value = parseStrictJson(item.text, { maxBytes: limits.maxMessageBytes, maxDepth: limits.maxDepth });
      } catch (error: unknown) {
        malformed(client, isSupervisorError(error) ? parseErrorDesc(error.message) : 'JSON parse error');
        continue;
      }
      client.badInARow = 0;
      const lane = isOutOfBand(value) ? client.oob : client.inband;
      enqueue(client, lane, { kind: 'value', value, bytes: item.text.length });
    }
  };

  /** Idle: no request for idleTimeoutMs and nothing of its own still waiting or in flight. */
  const watchIdle = (client: Client): void => {
    let timer: NodeJS.Timeout | undefined;
    const check = (): void => {
      if (client.closed) return;
      const busy = client.inband.pumping || client.oob.pumping || client.inband.items.length + client.oob.items.length > 0;
      const idleFor = Date.now() - client.lastRequestAt;
      if (!busy && idleFor >= limits.idleTimeoutMs) {
        drop(client, 'idle', { timeoutMs: limits.idleTimeoutMs }, 'qmp proxy client sent no request for too long; disconnected');
        return;
      }
      timer = setTimeout(check, busy ? limits.idleTimeoutMs : limits.idleTimeoutMs - idleFor);
      timer.unref();
    };
    client.socket.once('close', () => clearTimeout(timer));
    check();
  };

  const server: Server = createServer((socket) => {
    if (stopping) {
      socket.destroy();
      return;
    }
    // Who it is, now: SO_PEERCRED names the connecting process even if it closes at once.
    const known = peerAtAccept(socket);
    const peer = known !== null ? Promise.resolve(known) : lookupPeer(socket);
    const uid = known?.known === true ? known.processes[0]?.uid : undefined;
    const peerKey = typeof uid === 'number' ? `uid:${uid}` : 'unknown';
    const refuseConnection = (why: 'too-many-clients' | 'peer-limit', fields: Record<string, unknown>, message: string): void => {
      dropped[why] += 1;
      if (throttle.admit(why)) log.warn({ ...fields, ...peerLogFields(known ?? { known: false, why: 'not known at accept' }) }, message);
      socket.destroy();
    };
    if (clients.size >= limits.maxClients) {
      refuseConnection('too-many-clients', { limit: limits.maxClients }, 'qmp proxy has too many clients; connection refused');
      return;
    }
    if ((perPeer.get(peerKey) ?? 0) >= limits.maxClientsPerPeer) {
      refuseConnection(
        'peer-limit',
        { limit: limits.maxClientsPerPeer, peerKey },
        'qmp proxy peer holds too many connections; connection refused',
      );
      return;
    }
    perPeer.set(peerKey, (perPeer.get(peerKey) ?? 0) + 1);
    accepted += 1;
    const client: Client = {
      serial: accepted,
      socket,
      session: new ClientSession(offered),
      framer: new QmpFramer({ maxBytes: limits.maxMessageBytes, maxDepth: limits.maxDepth }),
      inband: { items: [], queuedBytes: 0, pumping: false, gate: inbandGate },
      oob: { items: [], queuedBytes: 0, pumping: false, gate: oobGate },
      paused: false,
      badInARow: 0,
      closed: false,
      peer,
      peerKey,
      lastRequestAt: Date.now(),
    };
    clients.add(client);
    const negotiation = setTimeout(() => {
      if (client.closed || client.session.isNegotiated) return;
      drop(
        client,
        'negotiation-timeout',
        { timeoutMs: limits.negotiationTimeoutMs },
        'qmp proxy client never negotiated capabilities; disconnected',
      );
    }, limits.negotiationTimeoutMs);
    negotiation.unref();
    socket.once('close', () => clearTimeout(negotiation));
    watchIdle(client);
    socket.on('data', (chunk: Buffer) => onData(client, chunk));
    socket.on('error', () => disconnect(client, 'gone'));
    socket.on('close', () => disconnect(client, 'gone'));
    write(client, greeting);
  });

  // The socket never exists at its real path with the umask's permissions; a stale one is replaced.
  await listenUnixSocket(server, options.socketPath, {
    mode: options.mode ?? 0o660,
    ...(options.gid === undefined ? {} : { gid: options.gid }),
    replace: true,
  });

  const unsubscribe = upstream.onEvent((event) => {
    const text = JSON.stringify(event) + CRLF;
    for (const client of clients) if (client.session.isNegotiated) write(client, text);
  });

  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  const stop = async (): Promise<void> => {
    if (stopping) return closed;
    stopping = true;
    unsubscribe();
    for (const client of [...clients]) disconnect(client, 'closing');
    throttle.close();
    for (const socket of dropping) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(options.socketPath, { force: true });
    resolveClosed();
    return closed;
  };

  void upstream.closed.then((cause) => {
    if (stopping) return;
    // Clients see the monitor go away, as they would if QEMU's own socket closed.
    log.info({ cause: cause?.message ?? null }, 'upstream QMP connection ended; closing the qmp proxy');
    void stop();
  });

  log.debug({ socket: options.socketPath, capabilities: offered }, 'qmp proxy listening');
  return {
    socketPath: options.socketPath,
    clientCount: () => clients.size,
    refusals: () => ({ ...refusalCounts }),
    stats: () => ({ clients: clients.size, accepted, refusals: { ...refusalCounts }, badInput, dropped: { ...dropped }, forwarded }),
    closed,
    close: stop,
  };
}
