// The owner service's HTTPS listener (node's own https): who the host is (client certificate CN
// under the owners' client CA, or a bearer token), bounded requests and per-peer connections
// (owner-peers.ts), strict parsing, the replay rule, the decision, a durable memory of it, then the
// answer (docs/relay-protocol.md); /metrics for the configured scraper only, never for hosts.
// Owns: the HTTP statuses and their order, limits, timeouts, logs and metrics per request.
// Must not: log or answer with keys, tokens or secret bytes (only the packet, to the host that the
// decision is for); decide (owner-decide.ts); parse JSON leniently.
// Every peer is hostile: errors never echo the peer's input, and every path ends with one answer.
import { constants as tlsConstants, createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { SupervisorError, isSupervisorError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseStrictJson } from '../util/strict-json.js';
import { decideAttestation, type OwnerDecision } from './owner-decide.js';
import { guestKey, type LoadedOwnerService } from './owner-load.js';
import type { OwnerMetrics, OwnerOutcome } from './owner-metrics.js';
import { PeerSlots, peerAddress } from './owner-peers.js';
import type { AnsweredStore } from './owner-replay.js';
import {
  approveAnswer,
  errorBody,
  injectAnswer,
  MAX_RELAY_BODY_BYTES,
  MAX_RELAY_JSON_DEPTH,
  readAttestRequest,
  rejectAnswer,
  replayKey,
  type AttestAnswer,
} from './relay-protocol.js';

/** Headers must arrive within this (slowloris); the whole request within the configured timeout. */
const HEADERS_TIMEOUT_MS = 5_000;
const TLS_HANDSHAKE_TIMEOUT_MS = 5_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const MAX_HEADER_BYTES = 16 * 1024;

export interface OwnerServer {
  readonly address: { readonly host: string; readonly port: number };
  /** Stop accepting, end idle connections, wait for requests in flight and state writes. */
  close(): Promise<void>;
}

export interface OwnerServerDeps {
  readonly store: AnsweredStore;
  readonly logger: Logger;
  readonly metrics: OwnerMetrics;
  readonly now?: () => Date;
}

interface Identity {
  readonly host: string;
  readonly via: 'mtls' | 'token';
}

/**
 * Listen on the configured address.
 * @throws SUP_ERR_OWNER_LISTEN (address in use, bad certificate or key).
 */
export async function startOwnerServer(svc: LoadedOwnerService, deps: OwnerServerDeps): Promise<OwnerServer> {
  const { config } = svc;
  const mtls = svc.tls.ca !== null;
  // Tokens are looked up by their digest: no comparison on the secret itself.
  const tokens = new Map([...svc.tokens].map(([token, host]) => [sha256(token), host]));
  let server: Server;
  try {
    server = createServer({
      cert: svc.tls.cert,
      key: svc.tls.key,
      ...(mtls ? { ca: svc.tls.ca ?? undefined, requestCert: true } : {}),
      // With tokens allowed too (a host's, or the scraper's), a peer without a certificate must reach the token check.
      rejectUnauthorized: mtls && tokens.size === 0 && svc.metricsToken === null,
      minVersion: 'TLSv1.2',
      // No TLS 1.2 renegotiation: a peer could otherwise change its client certificate under an open
      // connection, or make the server redo handshakes on demand (TLS 1.3 has none).
      secureOptions: tlsConstants.SSL_OP_NO_RENEGOTIATION,
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
      maxHeaderSize: MAX_HEADER_BYTES,
      requestTimeout: config.requestTimeoutSeconds * 1000,
      headersTimeout: Math.min(HEADERS_TIMEOUT_MS, config.requestTimeoutSeconds * 1000),
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      // Node checks the two timeouts above only this often (30 s by default).
      connectionsCheckingInterval: 1_000,
    });
  } catch (error: unknown) {
    throw new SupervisorError(
      'SUP_ERR_OWNER_LISTEN',
      `cannot use the TLS certificate or key: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
  server.maxConnections = config.maxConnections;
  // One peer's share of the connections: by address at accept (before TLS: nothing is read), and by
  // the host it authenticates as (a host may come from many addresses).
  const byAddress = new PeerSlots(config.maxConnectionsPerPeer);
  const byHost = new PeerSlots(config.maxConnectionsPerPeer);
  server.on('connection', (socket: Socket) => {
    if (byAddress.take(peerAddress(socket), socket)) return;
    deps.logger.warn(
      { peer: peerAddress(socket), limit: config.maxConnectionsPerPeer },
      'connection refused: this address holds its share',
    );
    deps.metrics.refused('peer-address');
    socket.destroy();
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    const cn = socket.authorized ? socket.getPeerCertificate().subject?.CN : undefined;
    if (typeof cn !== 'string' || cn === '' || byHost.take(`mtls:${cn}`, socket)) return;
    deps.logger.warn({ host: cn, limit: config.maxConnectionsPerPeer }, 'connection refused: this host holds its share');
    deps.metrics.refused('peer-host');
    socket.destroy();
  });
  server.setTimeout(config.requestTimeoutSeconds * 1000, (socket) => socket.destroy());
  server.on('tlsClientError', (error, socket) => {
    deps.logger.debug(
      { peer: socket.remoteAddress, reason: (error as NodeJS.ErrnoException).code ?? error.message },
      'TLS handshake refused',
    );
  });
  const inFlight = new Set<Promise<void>>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const done = handle(req, res).catch((error: unknown) => {
      deps.logger.error({ err: isSupervisorError(error) ? error.code : 'unexpected' }, 'request failed');
      if (!res.headersSent) send(res, 500, errorBody('internal error'));
    });
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
  });
  deps.metrics.answered(() => deps.store.size);

  const identify = (req: IncomingMessage): Identity | 'bad-certificate' | null => {
    const socket = req.socket as TLSSocket;
    if (mtls) {
      const cert = socket.getPeerCertificate();
      const presented = cert !== null && typeof cert === 'object' && Object.keys(cert).length > 0;
      if (presented) {
        if (!socket.authorized) return 'bad-certificate';
        const cn = cert.subject?.CN;
        return typeof cn === 'string' && cn !== '' ? { host: cn, via: 'mtls' } : 'bad-certificate';
      }
    }
    const auth = req.headers.authorization;
    const m = typeof auth === 'string' ? /^Bearer ([\x21-\x7e]{1,4096})$/.exec(auth) : null;
    const host = m === null ? undefined : tokens.get(sha256(m[1] ?? ''));
    return host === undefined ? null : { host, via: 'token' };
  };

  /** The configured scraper: its own token, or a client certificate with one of `metrics-client`. */
  const metricsToken = svc.metricsToken === null ? null : Buffer.from(sha256(svc.metricsToken), 'hex');
  const isScraper = (req: IncomingMessage): boolean => {
    if (config.metrics === null) return false;
    const socket = req.socket as TLSSocket;
    if (mtls && socket.authorized) {
      const cn = socket.getPeerCertificate().subject?.CN;
      if (typeof cn === 'string' && config.metrics.clients.includes(cn)) return true;
    }
    const m = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(req.headers.authorization ?? '');
    return metricsToken !== null && m !== null && timingSafeEqual(Buffer.from(sha256(m[1] ?? ''), 'hex'), metricsToken);
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const finish = (status: number, body: string, outcome: OwnerOutcome, headers: Record<string, string> = {}): void => {
      send(res, status, body, headers);
      deps.metrics.request(outcome, Number(process.hrtime.bigint() - started) / 1e9);
    };
    const path = (req.url ?? '').split('?', 1)[0];
    if (req.method === 'GET' && path === '/metrics' && isScraper(req)) {
      const { contentType, body } = await deps.metrics.render();
      send(res, 200, body, { 'content-type': contentType });
      return drain(req);
    }
    const who = identify(req);
    if (who === null || who === 'bad-certificate') {
      const why =
        who === null ? 'authenticate with a client certificate or a bearer token' : 'the client certificate is not valid for this service';
      deps.logger.warn({ peer: req.socket.remoteAddress, reason: who ?? 'no credentials' }, 'unauthenticated request refused');
      // A stranger gets one answer per connection and none of its body is read: each try costs it a
      // TLS handshake, and it cannot keep a slot (max-connections) busy with keep-alive requests.
      finish(401, errorBody(why), 'unauthenticated', {
        ...(tokens.size > 0 ? { 'www-authenticate': 'Bearer' } : {}),
        connection: 'close',
      });
      return;
    }
    if (!byHost.take(`${who.via}:${who.host}`, req.socket)) {
      deps.logger.warn(
        { host: who.host, limit: config.maxConnectionsPerPeer },
        'request refused: this host holds its share of connections',
      );
      // Not read, not kept: the connection closes with the answer.
      finish(429, errorBody('this host holds its share of the connections (max-connections-per-peer); use fewer at once'), 'busy', {
        connection: 'close',
        'retry-after': '1',
      });
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      // Hosts never read the metrics: the counters tell how other hosts' launches went.
      finish(403, errorBody('metrics are for the configured scraper (metrics-client, metrics-token), not for hosts'), 'not-found');
      return drain(req);
    }
    if (path !== config.path) {
      finish(404, errorBody(`no such path; POST to ${config.path}`), 'not-found');
      return drain(req);
    }
    if (req.method !== 'POST') {
      finish(405, errorBody('use POST'), 'bad-request', { allow: 'POST' });
      return drain(req);
    }
    const type = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase();
    if (type !== 'application/json') {
      finish(415, errorBody('Content-Type must be application/json'), 'bad-request');
      return drain(req);
    }
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > MAX_RELAY_BODY_BYTES) {
      finish(413, errorBody(`the body is larger than ${MAX_RELAY_BODY_BYTES} bytes`), 'too-large', { connection: 'close' });
      return drain(req);
    }
    const body = await readBody(req, MAX_RELAY_BODY_BYTES);
    if (body === null) {
      finish(413, errorBody(`the body is larger than ${MAX_RELAY_BODY_BYTES} bytes`), 'too-large', { connection: 'close' });
      return;
    }
    let value: unknown;
    try {
      value = parseStrictJson(body.toString('utf8'), { maxBytes: MAX_RELAY_BODY_BYTES, maxDepth: MAX_RELAY_JSON_DEPTH });
    } catch (error: unknown) {
      const reason = isSupervisorError(error) ? String(error.details['reason'] ?? 'malformed') : 'malformed';
      finish(400, errorBody(`the body is not strict JSON (${reason})`), 'bad-request');
      return;
    }
    // Invalid UTF-8 decodes to U+FFFD above and could pass; refuse it outright.
    if (!body.equals(Buffer.from(body.toString('utf8'), 'utf8'))) {
      finish(400, errorBody('the body is not valid UTF-8'), 'bad-request');
      return;
    }
    const read = readAttestRequest(value);
    if (!read.ok) {
      finish(400, errorBody(`not a ${'sevsup.attest-request/v1'} request: ${read.problem}`), 'bad-request');
      return;
    }
    const request = read.request;
    const log = deps.logger.child({ host: who.host, vm: request.vm, launchId: request.launchId, attempt: request.attempt, via: who.via });
    if (request.host !== who.host) {
      log.warn({ claimed: request.host }, 'request names another host than the one authenticated: refused');
      finish(403, errorBody('the request names another host than the credentials identify'), 'unknown-guest');
      return;
    }
    const guest = svc.guests.get(guestKey(who.host, request.vm));
    if (guest === undefined) {
      log.warn('no such guest for this host: refused');
      finish(403, errorBody('the owner has no guest of this name for this host'), 'unknown-guest');
      return;
    }
    const key = replayKey(request, guest.type);
    const claim = key === null ? null : deps.store.claim(key, { host: who.host, vm: request.vm, launchId: request.launchId });
    if (claim !== null && claim.kind === 'full') {
      log.error({ limit: claim.limit }, "the guest's answered launches reached max-answered: new launches refused");
      finish(
        507,
        errorBody(
          `the owner remembers ${claim.limit} answered launches of this guest (max-answered) and refuses new ones until its operator makes room`,
        ),
        'unavailable',
      );
      return;
    }
    if (claim !== null && claim.kind === 'in-flight' && claim.sameLaunch) {
      // This launch's earlier attempt (e.g. from before a daemon restart) is being decided: try again.
      finish(503, errorBody('this launch is being decided in another request; try again'), 'unavailable', { 'retry-after': '1' });
      return;
    }
    if (claim !== null && (claim.kind === 'replay' || claim.kind === 'in-flight')) {
      const seen = claim.kind === 'replay' ? claim.entry : null;
      const what = 'replay: this measurement was already answered';
      const why =
        seen === null
          ? 'replay: the same evidence is being decided in another request'
          : `${what} (${seen.decision}) at ${seen.at} for launch ${seen.launchId}${seen.host === who.host ? '' : ` of host ${seen.host}`}`;
      log.warn({ verdict: 'replay', reason: why }, 'replayed evidence refused');
      // Another host's launch id, time and decision are not this host's business: only the log has them.
      finish(409, errorBody(seen === null || seen.host === who.host ? why : what), 'replay');
      return;
    }
    const previous = claim?.kind === 'retry' ? claim.entry : null;
    let decision: OwnerDecision;
    try {
      decision = decideAttestation(request, guest);
    } catch (error: unknown) {
      if (key !== null) deps.store.release(key);
      throw error;
    }
    const remembered = !(decision.verdict === 'reject' && !decision.authenticated);
    if (key === null && remembered && guest.type !== 'snp') {
      throw new SupervisorError('SUP_ERR_INTERNAL', 'an SEV decision on evidence without a measurement');
    }
    if (key === null || !remembered) {
      // SNP records carry nothing fresh to remember (relay-protocol.ts replayKey); unauthenticated
      // evidence costs nothing to make (owner-decide.ts OwnerDecision): answered, not remembered.
      if (key !== null) deps.store.release(key);
      log.info(
        { verdict: decision.verdict, reasons: decision.reasons },
        `launch ${decision.verdict === 'reject' ? 'rejected' : 'approved'} (not remembered: ${key === null ? 'an SNP record' : 'evidence not authenticated'})`,
      );
      if (decision.verdict === 'inject') throw new SupervisorError('SUP_ERR_INTERNAL', 'a launch secret for evidence not remembered');
      const answer =
        decision.verdict === 'reject' ? rejectAnswer(request.launchId, decision.reasons.join('; ')) : approveAnswer(request.launchId);
      finish(200, JSON.stringify(answer), decision.verdict);
      return;
    }
    const answer: AttestAnswer =
      decision.verdict === 'approve'
        ? approveAnswer(request.launchId)
        : decision.verdict === 'inject'
          ? injectAnswer(request.launchId, decision.header, decision.payload)
          : rejectAnswer(request.launchId, decision.reasons.join('; '));
    if (previous !== null && previous.decision === decision.verdict) {
      // A retry of the same launch (same host, VM, launch id and measurement): answered again, as
      // decided before; nothing new to remember.
      deps.store.release(key);
      log.info({ verdict: decision.verdict, first: previous.at }, 'a retry of an answered launch: answered again');
      finish(200, JSON.stringify(answer), decision.verdict);
      return;
    }
    try {
      await deps.store.commit(key, {
        at: (deps.now?.() ?? new Date()).toISOString(),
        host: who.host,
        vm: request.vm,
        launchId: request.launchId,
        decision: decision.verdict,
      });
    } catch (error: unknown) {
      // Never answer what cannot be remembered: a later replay would be accepted.
      log.error({ err: isSupervisorError(error) ? error.message : 'unexpected' }, 'cannot record the decision; answered 503');
      finish(503, errorBody('the owner service cannot record its decision; try again'), 'unavailable', { 'retry-after': '1' });
      return;
    }
    log.info(
      { verdict: decision.verdict, reasons: decision.reasons, ...(decision.verdict === 'inject' ? { secrets: decision.secrets } : {}) },
      `launch ${decision.verdict === 'reject' ? 'rejected' : decision.verdict === 'inject' ? 'approved with a launch secret' : 'approved'}`,
    );
    finish(200, JSON.stringify(answer), decision.verdict);
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      reject(
        new SupervisorError(
          'SUP_ERR_OWNER_LISTEN',
          `cannot listen on ${config.listen.host}:${config.listen.port}: ${error.code ?? error.message}`,
          {
            details: { host: config.listen.host, port: config.listen.port, reason: error.code ?? 'error' },
          },
        ),
      );
    };
    server.once('error', onError);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    address: { host: address.address, port: address.port },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await Promise.allSettled([...inFlight]);
      server.closeAllConnections();
      await closed;
      await deps.store.settle();
    },
  };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': String(Buffer.byteLength(body)),
    ...headers,
  });
  res.end(body);
}

/** The body, or null once it passes `max` bytes (the rest is not read; the connection closes). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > max) {
        over = true;
        resolve(null);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(over ? null : Buffer.concat(chunks, size)));
    req.on('error', () => resolve(null));
    req.on('aborted', () => resolve(null));
  });
}

/** Discard a body we answered without reading (small ones only: the connection closes otherwise). */
function drain(req: IncomingMessage): void {
  req.resume();
}
