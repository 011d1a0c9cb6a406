// A loopback HTTP server that behaves like AMD's Key Distribution Service for the paths sevsup uses
// (`/{vcek|vlek}/v1/{product}/cert_chain`, `/vcek/v1/{product}/crl`, `/vcek/v1/{product}/{hwid}?…SPL=`),
// with scripted misbehaviour: N answers of 429 with a Retry-After, 404s, 503s, corrupt bodies.
// Records each request (path and arrival time) so tests can see what a client did.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface KdsRequest {
  readonly url: string;
  readonly at: number;
}

export type Misbehaviour =
  | { readonly status: 429; readonly retryAfter?: string }
  | { readonly status: 404 | 500 | 503 }
  | { readonly status: 200; readonly body: Buffer; readonly chunked?: boolean };

export interface FakeKds {
  readonly base: string;
  readonly requests: KdsRequest[];
  /** Answers to give, in order, before the real ones (matched by path prefix). */
  script(pathPrefix: string, ...answers: Misbehaviour[]): void;
  /** The real answer for a path (exact path, without the query string). */
  serve(path: string, body: Buffer, queryMustBe?: string): void;
  close(): Promise<void>;
}

export async function startFakeKds(): Promise<FakeKds> {
  const requests: KdsRequest[] = [];
  const scripted: { prefix: string; answer: Misbehaviour }[] = [];
  const bodies = new Map<string, { body: Buffer; query?: string }>();
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    requests.push({ url, at: Date.now() });
    const [path = '/', query = ''] = url.split('?');
    const i = scripted.findIndex((s) => path.startsWith(s.prefix));
    const answer = i >= 0 ? scripted.splice(i, 1)[0]?.answer : undefined;
    if (answer !== undefined) {
      if (answer.status === 429) {
        res.writeHead(429, answer.retryAfter === undefined ? {} : { 'retry-after': answer.retryAfter });
        res.end('Too Many Requests');
      } else if (answer.status === 200 && answer.chunked === true) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' });
        for (let at = 0; at < answer.body.length; at += 512) res.write(answer.body.subarray(at, at + 512));
        res.end();
      } else if (answer.status === 200) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(answer.body);
      } else {
        res.writeHead(answer.status);
        res.end();
      }
      return;
    }
    const hit = bodies.get(path);
    if (hit === undefined || (hit.query !== undefined && hit.query !== query)) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end(hit.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    requests,
    script: (prefix, ...answers) => {
      for (const answer of answers) scripted.push({ prefix, answer });
    },
    serve: (path, body, queryMustBe) => bodies.set(path, queryMustBe === undefined ? { body } : { body, query: queryMustBe }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
