// `sevsup attest`: read the owner's secret files (never argv), send one attest request to the
// guest's control socket, print the reply. Owns: option checks. Must not: print or log secrets.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { callControl, controlSocketPath, daemonSocketPath } from '../../api/client.js';
import type { AttestRequest } from '../../api/types.js';
import { SupervisorError } from '../../errors.js';
import { decodeStrictBase64 } from '../../sev/measurement.js';
import type { AttestCliOptions } from '../commands/attest.js';
import { printJson } from '../output.js';
import { errnoOf } from '../../util/io-error.js';
import { DEFAULT_RUN_DIR, DEFAULT_DAEMON_SOCKET } from '../../paths.js';

/** Where `sevsup run` and the daemon keep sockets unless told otherwise. */
/** A packet header is 52 bytes and the secret at most a few KiB (base64 of the secret area). */
const MAX_SECRET_FILE_BYTES = 1024 * 1024;

export async function runAttest(vm: string, opts: AttestCliOptions): Promise<void> {
  const chosen = [opts.approve === true, opts.reject === true, opts.injectSecret !== undefined].filter(Boolean).length;
  if (chosen !== 1) throw usage('give exactly one of --approve, --reject, --inject-secret HEADER_FILE SECRET_FILE');
  if (opts.gpa !== undefined && opts.injectSecret === undefined) throw usage('--gpa only goes with --inject-secret');
  if (opts.force === true && opts.reject === true) throw usage('--force goes with --approve or --inject-secret; --reject needs none');
  const force = opts.force === true ? { force: true } : {};

  let request: AttestRequest;
  if (opts.approve === true) request = { action: 'approve', ...force };
  else if (opts.reject === true) request = { action: 'reject' };
  else {
    const files = opts.injectSecret ?? [];
    const [headerFile, secretFile] = files;
    if (files.length !== 2 || headerFile === undefined || secretFile === undefined) {
      throw usage(`--inject-secret takes two files, HEADER_B64_FILE and SECRET_B64_FILE; got ${files.length}`);
    }
    const packetHeader = await readBase64File(headerFile, 'packet header');
    const secret = await readBase64File(secretFile, 'secret');
    const gpa = parseGpa(opts.gpa);
    request =
      gpa === undefined
        ? { action: 'inject-secret', packetHeader, secret, ...force }
        : { action: 'inject-secret', packetHeader, secret, gpa, ...force };
  }

  const socketPath = attestSocket(vm, opts);
  const reply = await callControl({ socketPath, method: 'POST', path: `/v1/vms/${encodeURIComponent(vm)}/attest`, body: request });
  if (opts.json === true) {
    printJson(reply);
    return;
  }
  const state = typeof reply === 'object' && reply !== null && 'state' in reply ? String(reply.state) : 'unknown';
  const done = request.action === 'approve' ? 'approved' : request.action === 'reject' ? 'rejected' : 'launch secret injected';
  process.stdout.write(`${vm}: ${done}; state ${state}\n`);
}

/**
 * `--socket`; `--run-dir` (a `sevsup run` guest); $SEVSUP_SOCKET; a `sevsup run` guest's control
 * socket in the default run dir when it exists; else the daemon's socket.
 */
function attestSocket(vm: string, opts: AttestCliOptions): string {
  if (opts.socket !== undefined) return opts.socket;
  if (opts.runDir !== undefined) return controlSocketPath(opts.runDir, vm);
  if (process.env['SEVSUP_SOCKET'] !== undefined && process.env['SEVSUP_SOCKET'] !== '') return daemonSocketPath(undefined);
  const runGuest = controlSocketPath(DEFAULT_RUN_DIR, vm);
  return existsSync(runGuest) ? runGuest : DEFAULT_DAEMON_SOCKET;
}

async function readBase64File(path: string, what: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error: unknown) {
    const code = errnoOf(error) ?? 'unknown error';
    throw usage(`cannot read the ${what} file ${path} (${code})`);
  }
  if (bytes.length > MAX_SECRET_FILE_BYTES) throw usage(`the ${what} file ${path} is larger than ${MAX_SECRET_FILE_BYTES} bytes`);
  const text = bytes.toString('utf8').trim();
  if (text === '' || decodeStrictBase64(text) === null) {
    throw usage(`the ${what} file ${path} does not hold base64 text (as virt-qemu-sev-validate --secret-header/--secret-payload write it)`);
  }
  return text;
}

function parseGpa(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = /^0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text.slice(2), 16) : /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value)) throw usage(`--gpa must be a decimal or 0x-hex address, got '${text}'`);
  return value;
}

function usage(message: string): SupervisorError {
  return new SupervisorError('SUP_ERR_USAGE', message);
}
