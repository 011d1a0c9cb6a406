// The control API's wire shapes, shared by the server (api/server.ts), the daemon and the CLI.
// Owns: request/response types and the narrowing of request bodies. Pure: no I/O.
// Must not: import anything heavy (the CLI client loads this on every `sevsup attest`).
import { SupervisorError } from '../errors.js';
import { decodeStrictBase64 } from '../sev/measurement.js';
import { isRecord } from '../util/is-record.js';
import type { AttestRequest, VmStatus } from '../vm/types.js';

// The lifecycle's own shapes (attest request/result, a guest's status) live in vm/types.ts: the API
// serves them, it does not own them.
export type { AttestAction, AttestRequest, AttestResult, VmStatus } from '../vm/types.js';

/**
 * Narrow a decoded JSON body to an AttestRequest.
 * @throws SUP_ERR_API_BAD_REQUEST naming the member that is wrong (never echoing secret values).
 */
export function parseAttestRequest(value: unknown): AttestRequest {
  if (!isRecord(value)) throw bad('the body must be a JSON object');
  const body: Record<string, unknown> = { ...value };
  const action = body['action'];
  const allowed = (names: readonly string[]): void => {
    const extra = Object.keys(body).filter((k) => !names.includes(k));
    if (extra.length > 0) throw bad(`unexpected member ${JSON.stringify(extra[0])} for action ${String(action)}`);
  };
  // `force` overrides a relay (attest: relay) for approve and inject; `peer` is the server's, never the body's.
  const force = body['force'];
  if (force !== undefined && force !== true) throw bad('"force" must be true when given');
  const forced = force === true ? { force: true } : {};
  switch (action) {
    case 'approve':
      allowed(['action', 'force']);
      return { action, ...forced };
    case 'reject':
      allowed(['action']);
      return { action };
    case 'inject-secret': {
      allowed(['action', 'packetHeader', 'secret', 'gpa', 'force']);
      const { packetHeader, secret, gpa } = body;
      if (typeof packetHeader !== 'string' || !isBase64(packetHeader)) throw bad('"packetHeader" must be non-empty base64');
      if (typeof secret !== 'string' || !isBase64(secret)) throw bad('"secret" must be non-empty base64');
      if (gpa === undefined) return { action, packetHeader, secret, ...forced };
      if (typeof gpa !== 'number' || !Number.isSafeInteger(gpa) || gpa < 0) throw bad('"gpa" must be a non-negative integer');
      return { action, packetHeader, secret, gpa, ...forced };
    }
    default:
      throw bad('"action" must be "approve", "reject" or "inject-secret"');
  }
}

/** Canonical, padded, non-empty base64: what sevsup forwards to QEMU (whose decoder is lenient). */
function isBase64(text: string): boolean {
  return text.length > 0 && decodeStrictBase64(text) !== null;
}

function bad(message: string): SupervisorError {
  return new SupervisorError('SUP_ERR_API_BAD_REQUEST', `attest request: ${message}`);
}

/** `GET /v1/vms`: every guest the daemon knows, and the configs it could not load. */
export interface VmListReply {
  readonly vms: readonly VmStatus[];
  readonly configErrors: readonly ConfigProblem[];
}

/** A VM config the daemon skipped, with its coded error. */
export interface ConfigProblem {
  readonly file: string;
  readonly code: string;
  readonly message: string;
}

/** `GET /v1/vms/<vm>/measurements`: one past record. */
export interface RecordSummary {
  /** File stem, for `GET /v1/vms/<vm>/measurements/<name>`. */
  readonly name: string;
  readonly path: string;
}

export interface StopRequest {
  /** SIGKILL at once instead of powerdown → quit → SIGTERM. */
  readonly force: boolean;
}

export interface SnapshotRequest {
  readonly name: string;
  /** Include memory state: refused for SEV guests (the seed's rule). */
  readonly vmstate: boolean;
}

export interface SnapshotResult {
  readonly vm: string;
  readonly name: string;
  /** `qmp`: blockdev-snapshot-internal-sync on the running QEMU; `qemu-img`: offline. */
  readonly via: 'qmp' | 'qemu-img';
  readonly disks: readonly string[];
}

export interface MigrateRequest {
  /** A local directory for the offline move of a stopped guest. */
  readonly target: string;
}

export interface MigrateResult {
  readonly vm: string;
  readonly target: string;
  /** The exported config (disk paths rewritten to the copies). */
  readonly config: string;
  readonly disks: readonly { readonly from: string; readonly to: string }[];
  /** What the operator does next, in order. */
  readonly next: readonly string[];
}

/** Snapshot names start with a letter: qemu-img takes an all-digit name for a snapshot ID. */
export const SNAPSHOT_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
/** A path is at most PATH_MAX. */
const MAX_TARGET_CHARS = 4096;

/** `POST …/stop`: `{}` or `{"force": true}`. @throws SUP_ERR_API_BAD_REQUEST */
export function parseStopRequest(value: unknown): StopRequest {
  const body = objectBody(value, 'stop', ['force']);
  const force = body['force'] ?? false;
  if (typeof force !== 'boolean') throw badRequest('stop', '"force" must be true or false');
  return { force };
}

/** `POST …/snapshot`: `{"name": "…", "vmstate"?: bool}`. @throws SUP_ERR_API_BAD_REQUEST */
export function parseSnapshotRequest(value: unknown): SnapshotRequest {
  const body = objectBody(value, 'snapshot', ['name', 'vmstate']);
  const { name } = body;
  const vmstate = body['vmstate'] ?? false;
  if (typeof name !== 'string' || !SNAPSHOT_NAME_PATTERN.test(name)) {
    throw badRequest('snapshot', '"name" must be a letter followed by up to 63 letters, digits, ".", "_" or "-"');
  }
  if (typeof vmstate !== 'boolean') throw badRequest('snapshot', '"vmstate" must be true or false');
  return { name, vmstate };
}

/** `POST …/migrate`: `{"target": "…"}`. @throws SUP_ERR_API_BAD_REQUEST */
export function parseMigrateRequest(value: unknown): MigrateRequest {
  const { target } = objectBody(value, 'migrate', ['target']);
  if (typeof target !== 'string' || target === '' || target.length > MAX_TARGET_CHARS || /[\u0000-\u001f\u007f]/.test(target)) {
    throw badRequest('migrate', `"target" must be a non-empty string of at most ${MAX_TARGET_CHARS} printable characters`);
  }
  return { target };
}

/** `{}`-shaped body with only `allowed` members. */
function objectBody(value: unknown, what: string, allowed: readonly string[]): Record<string, unknown> {
  if (!isRecord(value)) throw badRequest(what, 'the body must be a JSON object');
  const body: Record<string, unknown> = { ...value };
  const extra = Object.keys(body).find((k) => !allowed.includes(k));
  if (extra !== undefined) throw badRequest(what, `unexpected member ${JSON.stringify(extra)}`);
  return body;
}

function badRequest(what: string, message: string): SupervisorError {
  return new SupervisorError('SUP_ERR_API_BAD_REQUEST', `${what} request: ${message}`);
}
