// The control API client the CLI uses: one request over the unix socket, the reply narrowed to
// a value or a SupervisorError carrying the server's code. Kept light (node:http + errors only)
// because every `sevsup attest`/`status` loads it.
// Must not: retry non-idempotent requests (an approve must never be sent twice).
import { request } from 'node:http';
import { join } from 'node:path';
import { SupervisorError, isErrorCode, isSupervisorError } from '../errors.js';

/** `sevsup run`'s per-VM control socket: `<run-dir>/<vm>/control.sock`. */
export function controlSocketPath(runDir: string, vm: string): string {
  return join(runDir, vm, 'control.sock');
}

export interface ControlRequest {
  readonly socketPath: string;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: unknown;
  /** Approving resumes the guest (cont + status) in well under this. @default 30000 */
  readonly timeoutMs?: number;
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
  const payload = req.body === undefined ? undefined : JSON.stringify(req.body);
  return new Promise<unknown>((resolve, reject) => {
    const unreachable = (why: string, cause?: unknown): SupervisorError =>
      new SupervisorError('SUP_ERR_API_UNREACHABLE', `cannot reach the sevsup control socket ${req.socketPath}: ${why}`, {
        details: { socketPath: req.socketPath },
        ...(cause === undefined ? {} : { cause }),
      });
    const http = request(
      {
        socketPath: req.socketPath,
        method: req.method,
        path: req.path,
        timeout: req.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_REPLY_BYTES) {
            res.destroy();
            reject(unreachable(`reply larger than ${MAX_REPLY_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (error) => reject(unreachable(error.message, error)));
        res.on('end', () => {
          let body: unknown;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            reject(unreachable(`reply (HTTP ${res.statusCode ?? '?'}) is not JSON`));
            return;
          }
          if ((res.statusCode ?? 500) < 400) resolve(body);
          else reject(toError(body, res.statusCode ?? 500, unreachable));
        });
      },
    );
    http.on('timeout', () => http.destroy(unreachable(`no reply within ${req.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`)));
    http.on('error', (error: NodeJS.ErrnoException) => {
      if (isSupervisorError(error)) reject(error);
      else reject(unreachable(describeConnectError(error), error));
    });
    http.end(payload);
  });
}

function toError(body: unknown, status: number, unreachable: (why: string) => SupervisorError): SupervisorError {
  if (typeof body === 'object' && body !== null && 'code' in body && 'message' in body) {
    const { code, message } = body;
    const details = 'details' in body && typeof body.details === 'object' && body.details !== null ? { ...body.details } : undefined;
    if (isErrorCode(code) && typeof message === 'string') return new SupervisorError(code, message, details === undefined ? {} : { details });
  }
  return unreachable(`HTTP ${status} without a sevsup error body`);
}

function describeConnectError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ENOENT':
      return 'no such socket (is `sevsup run` running for this VM, with the same --run-dir?)';
    case 'ECONNREFUSED':
      return 'nothing is listening (the supervisor has exited)';
    case 'EACCES':
      return 'permission denied (the socket is mode 0660: join its group or use root)';
    default:
      return error.message;
  }
}
