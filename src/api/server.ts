// The control API server: HTTP+JSON on a unix socket (node:http, no framework). The socket's file
// mode and its directory are the access boundary (DESIGN; style-anchors §6.12).
// Owns: transport, body limits, JSON decoding, mapping SupervisorError codes to `{code, message}`
// with the registry's status. Must not: contain business rules (the ControlTarget does), echo
// request bodies, or crash on any input.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { chmod, unlink } from 'node:fs/promises';
import { SupervisorError, isSupervisorError } from '../errors.js';
import type { Logger } from '../log.js';
import type { MeasurementRecord } from '../vm/record.js';
import { matchRoute } from './routes.js';
import { parseAttestRequest, type AttestRequest, type AttestResult, type VmStatus } from './types.js';

/** What the server serves. `sevsup run` wraps one lifecycle; the daemon will wrap many. */
export interface ControlTarget {
  /** undefined: no such VM here. */
  status(vm: string): VmStatus | undefined;
  /** The latest record of `vm`; null when it has none. */
  measurement(vm: string): Promise<MeasurementRecord | null>;
  attest(vm: string, request: AttestRequest): Promise<AttestResult>;
}

export interface ControlServerOptions {
  readonly socketPath: string;
  readonly target: ControlTarget;
  /** @default 0o660 (owner and group: the group is how operators are let in) */
  readonly mode?: number;
  readonly logger?: Logger;
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

/**
 * Listen on `socketPath` and serve `target`.
 * @throws SUP_ERR_VM_STATE when the path is already in use (another supervisor owns it).
 */
export async function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const { socketPath, target, logger } = options;
  const server = createServer((req, res) => {
    handle(req, res, target).catch((error: unknown) => {
      // Refusals (4xx) are normal answers; only our own faults are errors.
      if (isSupervisorError(error) && error.status < 500) logger?.info({ code: error.code, url: req.url }, 'control API request refused');
      else logger?.error({ err: error }, 'control API handler failed');
      if (!res.headersSent) sendError(res, error);
      else res.destroy();
    });
  });
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      reject(
        error.code === 'EADDRINUSE'
          ? new SupervisorError('SUP_ERR_VM_STATE', `control socket ${socketPath} is already in use: another sevsup serves this VM`, {
              details: { socketPath },
              cause: error,
            })
          : error,
      );
    };
    server.once('error', onError);
    server.listen(socketPath, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (error) => logger?.error({ err: error }, 'control API server error'));
  await chmod(socketPath, options.mode ?? 0o660);
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

async function handle(req: IncomingMessage, res: ServerResponse, target: ControlTarget): Promise<void> {
  let route;
  try {
    route = matchRoute(req.method ?? 'GET', req.url ?? '/');
  } catch (error: unknown) {
    sendError(res, error);
    return;
  }
  switch (route.kind) {
    case 'status': {
      const status = target.status(route.vm);
      if (status === undefined) throw notFound(route.vm);
      sendJson(res, 200, status);
      return;
    }
    case 'measurement': {
      if (target.status(route.vm) === undefined) throw notFound(route.vm);
      const record = await target.measurement(route.vm);
      if (record === null) {
        throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${route.vm} has no measurement record (not an SEV guest, or not measured yet)`);
      }
      sendJson(res, 200, record);
      return;
    }
    case 'attest': {
      const body = await readJsonBody(req);
      if (target.status(route.vm) === undefined) throw notFound(route.vm);
      sendJson(res, 200, await target.attest(route.vm, parseAttestRequest(body)));
      return;
    }
  }
}

function notFound(vm: string): SupervisorError {
  return new SupervisorError('SUP_ERR_VM_NOT_FOUND', `no VM named ${JSON.stringify(vm)} is served on this socket`);
}

/** @throws SUP_ERR_API_TOO_LARGE, SUP_ERR_API_BAD_REQUEST */
async function readJsonBody(req: IncomingMessage): Promise<unknown> {
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
