// The control API client the CLI uses: one request over the unix socket, the reply narrowed to
// a value or a SupervisorError carrying the server's code. Kept light (node:net + errors only):
// every `sevsup status`/`attest` loads it, and node:http costs a `status` call a third of its
// start-up. The server is ours (api/server.ts), so the HTTP/1.1 spoken here is the small subset it
// answers with: one request, `Connection: close`, a Content-Length (or chunked) body.
// Must not: retry non-idempotent requests (an approve must never be sent twice).
import { connect } from 'node:net';
import { join } from 'node:path';
import { SupervisorError, isErrorCode } from '../errors.js';
import { DEFAULT_DAEMON_SOCKET } from '../paths.js';

/** `sevsup run`'s per-VM control socket: `<run-dir>/<vm>/control.sock`. */
export function controlSocketPath(runDir: string, vm: string): string {
  return join(runDir, vm, 'control.sock');
}

/** The daemon's control socket unless `--socket` or SEVSUP_SOCKET says otherwise. */

/** `--socket`, else $SEVSUP_SOCKET, else the daemon's default socket. */
export function daemonSocketPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag !== undefined && flag !== '') return flag;
  const fromEnv = env['SEVSUP_SOCKET'];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_DAEMON_SOCKET;
}

export interface ControlRequest {
  readonly socketPath: string;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: unknown;
  /** Approving resumes the guest (cont + status) in well under this. @default 30000 */
  readonly timeoutMs?: number;
}

/** Set by oneShotProcess(): this process ends after its one control call (the light CLI). */
let oneShot = false;

/**
 * From now on a successful call leaves its socket to the process's exit instead of destroying it:
 * unref'd, half-open (the server has closed its side), never read again. Destroying a socket is
 * most of what a call costs after the reply, and net's Socket._destroy reads process.stderr (a
 * debug check), which makes Node build the stderr stream the light commands otherwise never need.
 * Only for a process that exits once its one call is answered (cli/light-main.ts): a long-lived
 * caller (the demo, `sevsup run`) would keep every socket open.
 */
export function oneShotProcess(): void {
  oneShot = true;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** Replies are a status or a ~2 KiB record; anything near this is not our server. */
const MAX_REPLY_BYTES = 1024 * 1024;

/**
 * Send one request and return the decoded JSON reply body.
 * @throws the server's code (SUP_ERR_*) for an error reply; SUP_ERR_API_UNREACHABLE when nothing
 *         answers on the socket or the reply is not the control API's.
 */
export function callControl(req: ControlRequest): Promise<unknown> {
  const payload = req.body === undefined ? '' : JSON.stringify(req.body);
  const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const unreachable = (why: string, cause?: unknown): SupervisorError =>
    new SupervisorError('SUP_ERR_API_UNREACHABLE', `cannot reach the sevsup control socket ${req.socketPath}: ${why}`, {
      details: { socketPath: req.socketPath },
      ...(cause === undefined ? {} : { cause }),
    });
  return new Promise<unknown>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (error: SupervisorError | null, value?: unknown): void => {
      if (settled) return;
      settled = true;
      if (error === null && oneShot) socket.unref();
      else socket.destroy();
      if (error === null) resolve(value);
      else reject(error);
    };
    // allowHalfOpen for oneShotProcess: otherwise Node ends and destroys the socket itself once the
    // server's side has ended.
    const socket = connect({ path: req.socketPath, allowHalfOpen: oneShot });
    socket.setTimeout(timeoutMs, () => finish(unreachable(`no reply within ${timeoutMs} ms`)));
    socket.once('connect', () => {
      const head = [
        `${req.method} ${req.path} HTTP/1.1`,
        'Host: sevsup',
        'Connection: close',
        ...(req.body === undefined ? [] : ['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(payload)}`]),
      ];
      // Not end(): a half-closed connection makes Node's HTTP server drop a reply still being
      // prepared (httpAllowHalfOpen is off). The server closes after replying (Connection: close).
      socket.write(`${head.join('\r\n')}\r\n\r\n${payload}`);
    });
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REPLY_BYTES) finish(unreachable(`reply larger than ${MAX_REPLY_BYTES} bytes`));
      else chunks.push(chunk);
    });
    socket.once('end', () => {
      const reply = parseReply(Buffer.concat(chunks));
      if (reply === null) {
        finish(unreachable('the reply is not an HTTP response'));
        return;
      }
      let body: unknown;
      try {
        body = JSON.parse(reply.body);
      } catch {
        finish(unreachable(`reply (HTTP ${reply.status}) is not JSON`));
        return;
      }
      if (reply.status < 400) finish(null, body);
      else finish(toError(body, reply.status, unreachable));
    });
    socket.once('error', (error: NodeJS.ErrnoException) => finish(unreachable(describeConnectError(error), error)));
  });
}

/** Status and body of a complete HTTP/1.1 response; null when it is not one. */
function parseReply(bytes: Buffer): { status: number; body: string } | null {
  const split = bytes.indexOf('\r\n\r\n');
  if (split < 0) return null;
  const [statusLine = '', ...headerLines] = bytes.subarray(0, split).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1];
  if (status === undefined) return null;
  const headers = new Map(
    headerLines.map((line) => [line.slice(0, line.indexOf(':')).trim().toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  );
  let body = bytes.subarray(split + 4);
  if (headers.get('transfer-encoding')?.toLowerCase() === 'chunked') {
    const decoded = decodeChunked(body);
    if (decoded === null) return null;
    body = decoded;
  } else if (headers.has('content-length')) {
    const length = Number(headers.get('content-length'));
    if (!Number.isSafeInteger(length) || length > body.length) return null;
    body = body.subarray(0, length);
  }
  return { status: Number(status), body: body.toString('utf8') };
}

/** A chunked body (`<hex size>\r\n<data>\r\n … 0\r\n\r\n`); null when malformed or cut. */
function decodeChunked(bytes: Buffer): Buffer | null {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = bytes.indexOf('\r\n', at);
    if (eol < 0) return null;
    const size = Number.parseInt(bytes.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isSafeInteger(size) || size < 0) return null;
    if (size === 0) return Buffer.concat(parts);
    if (eol + 2 + size > bytes.length) return null;
    parts.push(bytes.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

function toError(body: unknown, status: number, unreachable: (why: string) => SupervisorError): SupervisorError {
  if (typeof body === 'object' && body !== null && 'code' in body && 'message' in body) {
    const { code, message } = body;
    const details = 'details' in body && typeof body.details === 'object' && body.details !== null ? { ...body.details } : undefined;
    if (isErrorCode(code) && typeof message === 'string')
      return new SupervisorError(code, message, details === undefined ? {} : { details });
  }
  return unreachable(`HTTP ${status} without a sevsup error body`);
}

function describeConnectError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ENOENT':
      return 'no such socket (is the sevsup daemon running with this socket, or `sevsup run` for this VM with the same --run-dir?)';
    case 'ECONNREFUSED':
      return 'nothing is listening (the supervisor has exited)';
    case 'EACCES':
      return 'permission denied (the socket is mode 0660: join its group or use root)';
    default:
      return error.message;
  }
}
