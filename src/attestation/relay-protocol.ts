// The relay protocol between the daemon (`attest: relay`) and the guest owner's service, as fixed in
// docs/relay-protocol.md: the request and answer shapes, their limits, and the replay key.
// Owns: narrowing a parsed request (exact keys, types, bounds) and building answers. Pure: no I/O;
// the bytes are parsed by util/strict-json.ts first. Must not: judge the evidence (owner-decide.ts).
import { createHash } from 'node:crypto';
import { decodeStrictBase64 } from '../sev/measurement.js';
import { isRecord } from '../util/is-record.js';

export const ATTEST_REQUEST_SCHEMA = 'sevsup.attest-request/v1';
export const ATTEST_ANSWER_SCHEMA = 'sevsup.attest-answer/v1';
/** Request and answer bodies alike. */
export const MAX_RELAY_BODY_BYTES = 64 * 1024;
/** A record is a shallow object; anything deeper is not one of ours. */
export const MAX_RELAY_JSON_DEPTH = 16;
export const MAX_REASON_CHARS = 512;
/** Retries of one launch: the daemon's are bounded by its hold deadline, this by sanity. */
const MAX_ATTEMPT = 10_000;

export interface AttestRequest {
  readonly schema: typeof ATTEST_REQUEST_SCHEMA;
  readonly host: string;
  readonly vm: string;
  readonly launchId: string;
  readonly attempt: number;
  readonly sentAt: string;
  /** The record as the daemon wrote it; narrowed by the decision for the guest's type. */
  readonly record: Readonly<Record<string, unknown>>;
}

export type AttestAnswer =
  | { readonly schema: typeof ATTEST_ANSWER_SCHEMA; readonly launchId: string; readonly decision: 'approve' }
  | {
      readonly schema: typeof ATTEST_ANSWER_SCHEMA;
      readonly launchId: string;
      readonly decision: 'inject';
      readonly secret: { readonly header: string; readonly payload: string };
    }
  | { readonly schema: typeof ATTEST_ANSWER_SCHEMA; readonly launchId: string; readonly decision: 'reject'; readonly reason: string };

const REQUEST_KEYS = ['schema', 'host', 'vm', 'launchId', 'attempt', 'sentAt', 'record'] as const;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
/** UUIDs and other opaque ids: no spaces, quotes or control characters to end up in logs. */
export const LAUNCH_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

export type RequestRead = { readonly ok: true; readonly request: AttestRequest } | { readonly ok: false; readonly problem: string };

/** Narrow a strictly parsed body to a request; the problem text never echoes client values. */
export function readAttestRequest(value: unknown): RequestRead {
  const no = (problem: string): RequestRead => ({ ok: false, problem });
  if (!isRecord(value)) return no('the body is not a JSON object');
  const extra = Object.keys(value).filter((k) => !(REQUEST_KEYS as readonly string[]).includes(k));
  if (extra.length > 0) return no(`unknown key${extra.length === 1 ? '' : 's'} in the request (${extra.length})`);
  const missing = REQUEST_KEYS.filter((k) => !(k in value));
  if (missing.length > 0) return no(`missing ${missing.join(', ')}`);
  const { schema, host, vm, launchId, attempt, sentAt, record } = value;
  if (schema !== ATTEST_REQUEST_SCHEMA) return no(`schema is not ${ATTEST_REQUEST_SCHEMA}`);
  if (typeof host !== 'string' || !NAME.test(host)) return no('host is not a host name');
  if (typeof vm !== 'string' || !NAME.test(vm)) return no('vm is not a VM name');
  if (typeof launchId !== 'string' || !LAUNCH_ID.test(launchId)) return no('launchId is not an id (1 to 128 of A-Z a-z 0-9 . _ : -)');
  if (typeof attempt !== 'number' || !Number.isSafeInteger(attempt) || attempt < 1 || attempt > MAX_ATTEMPT)
    return no('attempt is not a positive integer');
  if (typeof sentAt !== 'string' || !ISO_TIME.test(sentAt)) return no('sentAt is not an ISO-8601 time');
  if (!isRecord(record)) return no('record is not an object');
  return { ok: true, request: { schema, host, vm, launchId, attempt, sentAt, record } };
}

/**
 * What makes a request a replay once answered, or null when nothing in it can: for SEV and SEV-ES
 * the 48-byte measurement, which embeds the platform's fresh MNONCE (a second launch never repeats
 * it, and the host cannot make one up that the TIK authenticates). An SNP record has nothing of the
 * kind: every field is the host's word and the same for every launch of the guest (digest, policy,
 * host data, ID key), and the launch id is the host's choice. So SNP requests are not remembered:
 * the answer is a function of the record and the owner's config, releases nothing (no inject on
 * SNP), and keying it on the launch id only let a host grow the state without bound
 * (docs/relay-protocol.md "Replay"). Hashed: the state file holds digests, not evidence.
 */
export function replayKey(request: AttestRequest, type: 'sev' | 'sev-es' | 'snp'): string | null {
  const m = request.record['measurement'];
  if (type === 'snp' || typeof m !== 'string') return null;
  const bytes = decodeStrictBase64(m) ?? Buffer.from(m, 'utf8');
  return `sev-measurement:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function approveAnswer(launchId: string): AttestAnswer {
  return { schema: ATTEST_ANSWER_SCHEMA, launchId, decision: 'approve' };
}

export function injectAnswer(launchId: string, header: Buffer, payload: Buffer): AttestAnswer {
  return {
    schema: ATTEST_ANSWER_SCHEMA,
    launchId,
    decision: 'inject',
    secret: { header: header.toString('base64'), payload: payload.toString('base64') },
  };
}

export function rejectAnswer(launchId: string, reason: string): AttestAnswer {
  return { schema: ATTEST_ANSWER_SCHEMA, launchId, decision: 'reject', reason: clip(reason) };
}

/** An `{"error": …}` body for a 4xx/5xx, at most MAX_REASON_CHARS. */
export function errorBody(text: string): string {
  return JSON.stringify({ error: clip(text) });
}

function clip(text: string): string {
  return text.length > MAX_REASON_CHARS ? `${text.slice(0, MAX_REASON_CHARS - 1)}…` : text;
}

/** Bytes of the largest secret table whose inject answer still fits MAX_RELAY_BODY_BYTES. */
export function maxSecretTableBytes(launchIdChars = 128): number {
  const overhead = JSON.stringify(injectAnswer('x'.repeat(launchIdChars), Buffer.alloc(52), Buffer.alloc(0))).length;
  return Math.floor(((MAX_RELAY_BODY_BYTES - overhead) * 3) / 4 / 16) * 16;
}
