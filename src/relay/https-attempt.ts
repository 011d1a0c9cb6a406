// One POST to the guest owner's service over node's own https (docs/relay-protocol.md "Transport").
// Owns: the TLS settings (the owner's CA pinned and nothing else, name checked, TLS 1.2+, no
// agent/session reuse), the per-attempt timeout over connect-to-last-byte, the 64 KiB answer cap
// enforced while reading, never following a redirect (a 3xx is handed back as a status), the TLS
// peer's certificate facts for the audit, and sorting failures into transient and final.
// Must not: judge the answer (answer.ts), retry (relay.ts), or let the token or key reach a
// message, a detail or a log (only node's error codes and the URL's origin are named).
import { request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { ErrorCode } from '../errors.js';
import { MAX_RELAY_BODY_BYTES } from '../attestation/relay-protocol.js';

export interface HostCredentials {
  /** The owner's CA certificate(s), PEM: the only trust anchor. */
  readonly ca: Buffer;
  /** Mutual TLS: the host's client certificate and key (PEM). */
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** Bearer token (sent as `Authorization: Bearer …`). */
  readonly token?: string;
}

export interface AttemptRequest {
  readonly url: string;
  readonly body: Buffer;
  readonly credentials: HostCredentials;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
}

/** The TLS peer as the audit records it. */
export interface TlsPeer {
  readonly subject: string;
  readonly issuer: string;
  readonly fingerprint256: string;
  readonly validTo: string;
}

export interface AttemptResponse {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly retryAfter: string | undefined;
  readonly body: Buffer;
  readonly peer: TlsPeer | null;
}

/** Why an attempt got no answer: `transient` ones are retried within the deadline. */
export class AttemptFailure extends Error {
  readonly transient: boolean;
  readonly code: ErrorCode;
  readonly peer: TlsPeer | null;
  constructor(code: ErrorCode, reason: string, transient: boolean, peer: TlsPeer | null) {
    super(reason);
    this.code = code;
    this.transient = transient;
    this.peer = peer;
  }
}

/** Network errors that a restart or a moment may cure (the owner's service down, a dropped link). */
const TRANSIENT_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
  'ECONNABORTED',
]);

/**
 * POST `body` to `url` once. Resolves with whatever status came back (3xx included: never followed).
 * @throws AttemptFailure: SUP_ERR_RELAY_TLS (final: wrong CA, expired, wrong name, a TLS alert),
 *   SUP_ERR_RELAY_ANSWER (final: answer over the cap), SUP_ERR_RELAY_UNREACHABLE (transient:
 *   refused, reset, timed out, aborted).
 */
export function postOnce(r: AttemptRequest): Promise<AttemptResponse> {
  const url = new URL(r.url);
  const { ca, cert, key, token } = r.credentials;
  return new Promise<AttemptResponse>((resolve, reject) => {
    let peer: TlsPeer | null = null;
    let settled = false;
    const fail = (failure: AttemptFailure): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      r.signal.removeEventListener('abort', onAbort);
      req.destroy();
      reject(failure);
    };
    const req = request({
      protocol: 'https:',
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? 443 : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: 'POST',
      // No agent: no pooled sockets or resumed sessions shared between guests or attempts.
      agent: false,
      ca,
      ...(cert === undefined ? {} : { cert }),
      ...(key === undefined ? {} : { key }),
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      // The name checked against the certificate is the URL's host (node's checkServerIdentity);
      // SNI is sent for names, not for IP literals (RFC 6066).
      ...(isIpLiteral(url.hostname) ? {} : { servername: url.hostname }),
      headers: {
        'content-type': 'application/json',
        'content-length': String(r.body.length),
        accept: 'application/json',
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
    });
    // First, so that an error from a request destroyed at once (an aborted hold) is heard, not thrown.
    req.on('error', (error: NodeJS.ErrnoException) => fail(classify(error, url.origin, peer)));
    const onAbort = (): void => fail(new AttemptFailure('SUP_ERR_RELAY_UNREACHABLE', 'the hold ended during the attempt', false, peer));
    const timer = setTimeout(
      () => fail(new AttemptFailure('SUP_ERR_RELAY_UNREACHABLE', `no complete answer within ${r.timeoutMs} ms`, true, peer)),
      r.timeoutMs,
    );
    if (r.signal.aborted) {
      onAbort();
      return;
    }
    r.signal.addEventListener('abort', onAbort, { once: true });
    req.on('socket', (socket) => {
      socket.once('secureConnect', () => {
        peer = peerOf(socket as TLSSocket);
      });
    });
    req.on('response', (res) => {
      const declared = Number(res.headers['content-length'] ?? '0');
      if (declared > MAX_RELAY_BODY_BYTES) {
        fail(
          new AttemptFailure(
            'SUP_ERR_RELAY_ANSWER',
            `answer of ${declared} bytes declared; the cap is ${MAX_RELAY_BODY_BYTES}`,
            false,
            peer,
          ),
        );
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RELAY_BODY_BYTES) {
          fail(
            new AttemptFailure('SUP_ERR_RELAY_ANSWER', `answer longer than ${MAX_RELAY_BODY_BYTES} bytes; reading stopped`, false, peer),
          );
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (error: NodeJS.ErrnoException) => fail(classify(error, url.origin, peer)));
      res.on('aborted', () => fail(new AttemptFailure('SUP_ERR_RELAY_UNREACHABLE', 'the answer was cut off', true, peer)));
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        r.signal.removeEventListener('abort', onAbort);
        resolve({
          status: res.statusCode ?? 0,
          contentType: res.headers['content-type'],
          retryAfter: typeof res.headers['retry-after'] === 'string' ? res.headers['retry-after'] : undefined,
          body: Buffer.concat(chunks),
          peer,
        });
      });
    });
    req.end(r.body);
  });
}

/** Node's error → transient or final, named by its code and the service's origin only. */
function classify(error: NodeJS.ErrnoException, origin: string, peer: TlsPeer | null): AttemptFailure {
  const code = error.code ?? 'unknown';
  if (TRANSIENT_ERRNO.has(code)) return new AttemptFailure('SUP_ERR_RELAY_UNREACHABLE', `${origin}: ${code}`, true, peer);
  if (/^(CERT_|ERR_TLS_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|ERR_SSL_|HOSTNAME_)/.test(code) || /certificate|SSL|TLS/i.test(error.message)) {
    // The certificate's own text from node (e.g. "certificate has expired", "Hostname/IP does not
    // match certificate's altnames: …") names only public facts of the peer's certificate.
    return new AttemptFailure('SUP_ERR_RELAY_TLS', `${origin}: TLS check failed: ${code} (${error.message.slice(0, 200)})`, false, peer);
  }
  return new AttemptFailure('SUP_ERR_RELAY_UNREACHABLE', `${origin}: ${code}`, true, peer);
}

function peerOf(socket: TLSSocket): TlsPeer | null {
  const cert = socket.getPeerCertificate();
  if (cert === null || Object.keys(cert).length === 0) return null;
  const name = (o: Record<string, unknown> | undefined): string =>
    o === undefined
      ? ''
      : Object.entries(o)
          .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : String(v)}`)
          .join(',');
  return {
    subject: name(cert.subject as unknown as Record<string, unknown>),
    issuer: name(cert.issuer as unknown as Record<string, unknown>),
    fingerprint256: cert.fingerprint256,
    validTo: cert.valid_to,
  };
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith('[');
}
