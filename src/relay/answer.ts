// The relay's reading of one HTTP answer from the guest owner's service (docs/relay-protocol.md):
// status, content type and body → approve / inject / reject, "try again", or a final refusal.
// Owns: every rule of the answer's shape (strict JSON, no unknown keys, the launchId, the secret's
// lengths), which statuses are retried, and the sanitising of the owner's reason text.
// Must not: do I/O, log, or put the secret (header, payload) in a message or detail: a malformed
// answer is named by its problem, never echoed. Pure.
import { ATTEST_ANSWER_SCHEMA, MAX_REASON_CHARS, MAX_RELAY_BODY_BYTES, MAX_RELAY_JSON_DEPTH } from '../attestation/relay-protocol.js';
import { SupervisorError, type ErrorCode } from '../errors.js';
import { SECRET_HEADER_BYTES, MAX_SECRET_PAYLOAD_BYTES } from '../sev/launch-secret.js';
import { decodeStrictBase64 } from '../sev/measurement.js';
import { isRecord } from '../util/is-record.js';
import { parseStrictJson } from '../util/strict-json.js';

export type RelayDecision =
  | { readonly decision: 'approve' }
  | { readonly decision: 'inject'; readonly header: string; readonly payload: string }
  | { readonly decision: 'reject'; readonly reason: string };

/** What one attempt's answer means for the hold. */
export type AttemptVerdict =
  | { readonly kind: 'answer'; readonly answer: RelayDecision }
  /** Transient (5xx, 429): try again within the deadline; `retryAfterMs` from Retry-After. */
  | { readonly kind: 'retry'; readonly code: ErrorCode; readonly reason: string; readonly retryAfterMs?: number }
  /** The guest is rejected with this code and reason. */
  | { readonly kind: 'final'; readonly code: ErrorCode; readonly reason: string };

export interface AnswerInput {
  readonly status: number;
  /** The Content-Type header, if any. */
  readonly contentType: string | undefined;
  /** The Retry-After header, if any. */
  readonly retryAfter: string | undefined;
  readonly body: Buffer;
  /** The request's launchId: the answer must name it. */
  readonly launchId: string;
  /** An SNP launch record: `inject` is invalid (no host-side injection on SNP). */
  readonly snp: boolean;
  /** For Retry-After given as an HTTP date. */
  readonly now: Date;
}

/** Judge one HTTP answer. Never throws. */
export function judgeAnswer(i: AnswerInput): AttemptVerdict {
  const { status } = i;
  if (status === 200) {
    try {
      return { kind: 'answer', answer: parseAnswerBody(i.contentType, i.body, i.launchId, i.snp) };
    } catch (error: unknown) {
      return {
        kind: 'final',
        code: 'SUP_ERR_RELAY_ANSWER',
        reason: error instanceof SupervisorError ? error.message : 'unreadable answer',
      };
    }
  }
  const retryAfterMs = parseRetryAfter(i.retryAfter, i.now);
  if (status === 429 || (status >= 500 && status <= 599)) {
    const reason = `HTTP ${status}${ownerErrorSuffix(i.contentType, i.body)}`;
    return { kind: 'retry', code: 'SUP_ERR_RELAY_UNREACHABLE', reason, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
  }
  if (status >= 300 && status <= 399) {
    return { kind: 'final', code: 'SUP_ERR_RELAY_HTTP', reason: `HTTP ${status}: a redirect, which the relay never follows` };
  }
  return { kind: 'final', code: 'SUP_ERR_RELAY_HTTP', reason: `HTTP ${status}${ownerErrorSuffix(i.contentType, i.body)}` };
}

/**
 * A 200 answer's body → the decision.
 * @throws SUP_ERR_RELAY_ANSWER naming the problem (never the secret's bytes).
 */
export function parseAnswerBody(contentType: string | undefined, body: Buffer, launchId: string, snp: boolean): RelayDecision {
  if (!isJsonContentType(contentType))
    throw bad(`content type ${JSON.stringify(printable(contentType ?? '(none)', 80))} is not application/json`);
  if (body.length > MAX_RELAY_BODY_BYTES) throw bad(`answer larger than ${MAX_RELAY_BODY_BYTES} bytes`);
  const text = body.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(body)) throw bad('answer is not UTF-8');
  let value: unknown;
  try {
    value = parseStrictJson(text, { maxBytes: MAX_RELAY_BODY_BYTES, maxDepth: MAX_RELAY_JSON_DEPTH });
  } catch (error: unknown) {
    const why = error instanceof SupervisorError && typeof error.details['reason'] === 'string' ? error.details['reason'] : 'invalid';
    throw bad(`answer is not strict JSON (${why})`);
  }
  if (!isRecord(value)) throw bad('answer is not a JSON object');
  const only = (names: readonly string[]): void => {
    const extra = Object.keys(value).filter((k) => !names.includes(k));
    if (extra.length > 0)
      throw bad(`unknown member ${JSON.stringify(printable(extra[0] ?? '', 40))} in a ${String(value['decision'])} answer`);
  };
  if (value['schema'] !== ATTEST_ANSWER_SCHEMA) throw bad(`schema is not ${ATTEST_ANSWER_SCHEMA}`);
  if (typeof value['launchId'] !== 'string') throw bad('launchId missing');
  if (value['launchId'] !== launchId) throw bad('launchId is not the one this launch sent (an answer for another launch)');
  switch (value['decision']) {
    case 'approve':
      only(['schema', 'launchId', 'decision']);
      return { decision: 'approve' };
    case 'reject': {
      only(['schema', 'launchId', 'decision', 'reason']);
      const reason = value['reason'];
      if (typeof reason !== 'string' || reason.length === 0) throw bad('a reject answer needs a non-empty reason');
      if (reason.length > MAX_REASON_CHARS) throw bad(`reject reason longer than ${MAX_REASON_CHARS} characters`);
      return { decision: 'reject', reason: printable(reason, MAX_REASON_CHARS) };
    }
    case 'inject': {
      only(['schema', 'launchId', 'decision', 'secret']);
      if (snp) throw bad('inject is invalid for an SNP launch (there is no host-side secret injection on SNP)');
      const secret = value['secret'];
      if (!isRecord(secret)) throw bad('inject needs a secret object {header, payload}');
      const extra = Object.keys(secret).filter((k) => k !== 'header' && k !== 'payload');
      if (extra.length > 0) throw bad(`unknown member ${JSON.stringify(printable(extra[0] ?? '', 40))} in the secret`);
      const { header, payload } = secret;
      const headerBytes = typeof header === 'string' ? decodeStrictBase64(header) : null;
      if (typeof header !== 'string' || headerBytes === null) throw bad('secret.header is not canonical base64');
      if (headerBytes.length !== SECRET_HEADER_BYTES) throw bad(`secret.header is ${headerBytes.length} bytes, not ${SECRET_HEADER_BYTES}`);
      const payloadBytes = typeof payload === 'string' ? decodeStrictBase64(payload) : null;
      if (typeof payload !== 'string' || payloadBytes === null || payloadBytes.length === 0) {
        throw bad('secret.payload is not non-empty canonical base64');
      }
      if (payloadBytes.length > MAX_SECRET_PAYLOAD_BYTES || payloadBytes.length % 16 !== 0) {
        throw bad(`secret.payload is ${payloadBytes.length} bytes (a packet is whole 16-byte blocks, at most ${MAX_SECRET_PAYLOAD_BYTES})`);
      }
      return { decision: 'inject', header, payload };
    }
    default:
      throw bad('decision is not approve, inject or reject');
  }
}

/** `application/json`, optionally with `; charset=utf-8`. */
function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const [type, ...params] = value.split(';').map((p) => p.trim().toLowerCase());
  if (type !== 'application/json') return false;
  return params.every((p) => p === '' || p === 'charset=utf-8');
}

/** Retry-After: delta seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: Date): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at) || !/[A-Za-z]/.test(text)) return undefined;
  return Math.max(0, at - now.getTime());
}

/** The owner's `{"error": "..."}` text on a refusal, sanitised; '' when there is none. */
function ownerErrorSuffix(contentType: string | undefined, body: Buffer): string {
  if (!isJsonContentType(contentType) || body.length === 0 || body.length > MAX_RELAY_BODY_BYTES) return '';
  try {
    const value = parseStrictJson(body.toString('utf8'), { maxBytes: MAX_RELAY_BODY_BYTES, maxDepth: MAX_RELAY_JSON_DEPTH });
    if (isRecord(value) && typeof value['error'] === 'string') return `: ${printable(value['error'], MAX_REASON_CHARS)}`;
  } catch {
    // An unreadable error body: the status says enough.
  }
  return '';
}

/** Printable ASCII and ordinary letters only (no control characters, no line breaks), cut to `max`. */
export function printable(text: string, max: number): string {
  const clean = text.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

function bad(problem: string): SupervisorError {
  return new SupervisorError('SUP_ERR_RELAY_ANSWER', `the owner's service answered wrongly: ${problem}`, { details: { problem } });
}
