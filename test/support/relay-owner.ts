// A small guest-owner service for relay tests (docs/relay-protocol.md), real TLS on loopback with
// certificates the test makes, and the means to misbehave: slow, huge, redirect, another launch's
// id, bad JSON, 5xx before an answer, down until a moment. Not the reference owner service
// (`sevsup owner serve`): it checks nothing and answers what the test tells it to.
// Owns: the test PKI (CA, server certificates good/expired/wrong-host, another CA, a client
// certificate) and the server. Certificates come from sev/snp-cert-builder.ts (RSA-PSS, DER), with
// a subjectAltName added here. The two CAs and the client have their own keys; the server's
// certificates share one (what a test checks of them is issuer, names or dates, never which key
// they hold), which keeps RSA key generation, the costly part, to four keys.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { buildCertificate, type AmdName } from '../../src/sev/snp-cert-builder.js';
import { seq, tlv } from '../../src/sev/snp-der.js';

export interface TlsPair {
  readonly cert: string;
  readonly key: string;
  /** Files (PEM) in the PKI's directory. */
  readonly certFile: string;
  readonly keyFile: string;
}

export interface RelayPki {
  /** The owner's CA (PEM file): what `attest-ca` pins. */
  readonly caFile: string;
  readonly caPem: string;
  /** Another CA, which signs `foreign`. */
  readonly otherCaFile: string;
  /** localhost + 127.0.0.1, valid now, signed by the CA. */
  readonly server: TlsPair;
  /** Same names, expired yesterday. */
  readonly expired: TlsPair;
  /** Valid, but for another host name only. */
  readonly wrongHost: TlsPair;
  /** Valid names, signed by the other CA. */
  readonly foreign: TlsPair;
  /** The host's client certificate (CN node-7), signed by the CA; its key file is 0600. */
  readonly client: TlsPair;
  /** A bearer token file, 0600. */
  readonly tokenFile: string;
  readonly token: string;
}

const DAY = 86_400_000;

function name(cn: string): AmdName {
  return { ou: 'relay tests', c: 'US', l: 'Loopback', st: 'Test', o: 'sevsup test owner', cn };
}

function pem(kind: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${kind}-----\n${b64.endsWith('\n') ? b64 : `${b64}\n`}-----END ${kind}-----\n`;
}

/** subjectAltName: DNS names (tag 2) and IPv4 addresses (tag 7). */
function san(dns: readonly string[], ips: readonly string[]): Buffer {
  return seq(...dns.map((d) => tlv(0x82, Buffer.from(d))), ...ips.map((ip) => tlv(0x87, Buffer.from(ip.split('.').map(Number)))));
}

function rsa(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('rsa', { modulusLength: 2048 });
}

/** Make every certificate the relay tests use, in `dir`. */
export async function makeRelayPki(dir: string): Promise<RelayPki> {
  const now = Date.now();
  const ca = rsa();
  const other = rsa();
  const root = (keys: { publicKey: KeyObject; privateKey: KeyObject }, cn: string): Buffer =>
    buildCertificate({
      serial: 1,
      issuer: name(cn),
      subject: name(cn),
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 30 * DAY),
      publicKey: keys.publicKey,
      signingKey: keys.privateKey,
      ca: { crlSign: true },
    });
  const caDer = root(ca, 'relay test owner CA');
  const otherDer = root(other, 'some other CA');
  let serial = 10;
  const serverKeys = rsa();
  const leaf = async (
    file: string,
    o: { cn: string; dns: readonly string[]; ips: readonly string[]; from: number; to: number; issuer: 'ca' | 'other' },
    keys = serverKeys,
  ): Promise<TlsPair> => {
    const der = buildCertificate({
      serial: serial++,
      issuer: name(o.issuer === 'ca' ? 'relay test owner CA' : 'some other CA'),
      subject: name(o.cn),
      notBefore: new Date(o.from),
      notAfter: new Date(o.to),
      publicKey: keys.publicKey,
      signingKey: (o.issuer === 'ca' ? ca : other).privateKey,
      extensions: o.dns.length + o.ips.length > 0 ? [['2.5.29.17', san(o.dns, o.ips)]] : [],
    });
    const cert = pem('CERTIFICATE', der);
    const key = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const certFile = join(dir, `${file}.crt`);
    const keyFile = join(dir, `${file}.key`);
    await writeFile(certFile, cert);
    await writeFile(keyFile, key, { mode: 0o600 });
    await chmod(keyFile, 0o600);
    return { cert, key, certFile, keyFile };
  };
  const names = { dns: ['localhost'], ips: ['127.0.0.1'] };
  const caPem = pem('CERTIFICATE', caDer);
  const caFile = join(dir, 'owner-ca.crt');
  const otherCaFile = join(dir, 'other-ca.crt');
  await writeFile(caFile, caPem);
  await writeFile(otherCaFile, pem('CERTIFICATE', otherDer));
  const token = 'relay-test-token.Zm9vYmFy';
  const tokenFile = join(dir, 'host.token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  await chmod(tokenFile, 0o600);
  return {
    caFile,
    caPem,
    otherCaFile,
    server: await leaf('server', { cn: 'localhost', ...names, from: now - DAY, to: now + 30 * DAY, issuer: 'ca' }),
    expired: await leaf('expired', { cn: 'localhost', ...names, from: now - 30 * DAY, to: now - DAY, issuer: 'ca' }),
    wrongHost: await leaf('wrong-host', {
      cn: 'owner.example',
      dns: ['owner.example'],
      ips: [],
      from: now - DAY,
      to: now + 30 * DAY,
      issuer: 'ca',
    }),
    foreign: await leaf('foreign', { cn: 'localhost', ...names, from: now - DAY, to: now + 30 * DAY, issuer: 'other' }),
    client: await leaf('client', { cn: 'node-7', dns: [], ips: [], from: now - DAY, to: now + 30 * DAY, issuer: 'ca' }, rsa()),
    tokenFile,
    token,
  };
}

/** What the server received (parsed request body, headers it cares about). */
export interface ReceivedRequest {
  readonly body: Record<string, unknown> & { launchId: string; attempt: number; vm: string; host: string; record: Record<string, unknown> };
  readonly authorization: string | undefined;
  /** The client certificate's CN, when one was presented and verified. */
  readonly clientCn: string | null;
}

/** A raw reply: status, headers, body (string or bytes); `delayMs` before the head is sent. */
export interface RawReply {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  readonly delayMs?: number;
  /** Stream this many bytes of body instead (huge answers), without a content-length. */
  readonly streamBytes?: number;
}

export type Behaviour = (request: ReceivedRequest, n: number) => RawReply | Promise<RawReply>;

/** The protocol's answers, as a well-behaved owner sends them. */
export const answer = {
  json(value: unknown, status = 200): RawReply {
    return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) };
  },
  approve(r: ReceivedRequest): RawReply {
    return answer.json({ schema: 'sevsup.attest-answer/v1', launchId: r.body.launchId, decision: 'approve' });
  },
  reject(r: ReceivedRequest, reason: string): RawReply {
    return answer.json({ schema: 'sevsup.attest-answer/v1', launchId: r.body.launchId, decision: 'reject', reason });
  },
  inject(r: ReceivedRequest, header: Buffer, payload: Buffer): RawReply {
    return answer.json({
      schema: 'sevsup.attest-answer/v1',
      launchId: r.body.launchId,
      decision: 'inject',
      secret: { header: header.toString('base64'), payload: payload.toString('base64') },
    });
  },
};

export interface OwnerServerOptions {
  readonly tls: TlsPair;
  /** Ask for a client certificate and verify it against this CA (PEM). */
  readonly clientCa?: string;
  /** Refuse requests whose bearer token is not this. */
  readonly token?: string;
  readonly behaviour: Behaviour;
  /** Listen on this port (a restart on the same address); default any free one. */
  readonly port?: number;
}

/** The test owner service on 127.0.0.1. */
export class OwnerServer {
  readonly requests: ReceivedRequest[];
  readonly #server: Server;
  readonly port: number;

  private constructor(server: Server, port: number, requests: ReceivedRequest[]) {
    this.#server = server;
    this.port = port;
    this.requests = requests;
  }

  /** `https://localhost:PORT/attest` (the certificates name localhost and 127.0.0.1). */
  get url(): string {
    return `https://localhost:${this.port}/attest`;
  }

  static async start(o: OwnerServerOptions): Promise<OwnerServer> {
    const requests: ReceivedRequest[] = [];
    const server = createServer(
      {
        cert: o.tls.cert,
        key: o.tls.key,
        ...(o.clientCa === undefined ? {} : { ca: o.clientCa, requestCert: true, rejectUnauthorized: true }),
      },
      (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          void (async () => {
            const auth = req.headers.authorization;
            if (o.token !== undefined && auth !== `Bearer ${o.token}`) {
              res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'unknown host token' }));
              return;
            }
            const peer = (req.socket as TLSSocket).getPeerCertificate();
            const received: ReceivedRequest = {
              body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as ReceivedRequest['body'],
              authorization: auth,
              clientCn: peer !== undefined && typeof peer.subject?.CN === 'string' ? peer.subject.CN : null,
            };
            requests.push(received);
            const reply = await o.behaviour(received, requests.length);
            if (reply.delayMs !== undefined) await delay(reply.delayMs);
            if (res.destroyed) return;
            if (reply.streamBytes !== undefined) {
              res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
              const block = Buffer.alloc(16 * 1024, 0x20);
              let left = reply.streamBytes;
              const pump = (): void => {
                while (left > 0 && !res.destroyed) {
                  left -= block.length;
                  if (!res.write(block)) {
                    res.once('drain', pump);
                    return;
                  }
                }
                res.end();
              };
              res.on('error', () => undefined);
              pump();
              return;
            }
            res.writeHead(reply.status, reply.headers).end(reply.body);
          })().catch(() => res.destroy());
        });
      },
    );
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
    });
    return new OwnerServer(server, (server.address() as AddressInfo).port, requests);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}

/** A loopback port nothing listens on (yet): for "the owner is down" and later start on it. */
export async function freePort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
