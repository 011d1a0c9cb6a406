// The relay's answer parser (src/relay/answer.ts): every malformed answer is a final rejection
// with the problem named (never the secret's bytes); 5xx/429 are retried; 3xx/4xx are final.
import { describe, expect, it } from 'vitest';
import { MAX_RELAY_BODY_BYTES } from '../../../src/attestation/relay-protocol.js';
import { judgeAnswer, parseAnswerBody, parseRetryAfter, type AnswerInput } from '../../../src/relay/answer.js';
import { catchSupervisorError as catchError } from '../../support/catch-error.js';

const LAUNCH = '3f1c8a52-8a51-4a53-9c1e-5a7bd8f2b7e1';
const HEADER = Buffer.alloc(52, 7).toString('base64');
const PAYLOAD = Buffer.alloc(64, 9).toString('base64');
const JSON_TYPE = 'application/json';

function body(value: unknown): Buffer {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
}
const base = { schema: 'sevsup.attest-answer/v1', launchId: LAUNCH };

function judge(over: Partial<AnswerInput>): ReturnType<typeof judgeAnswer> {
  return judgeAnswer({
    status: 200,
    contentType: JSON_TYPE,
    retryAfter: undefined,
    body: body({ ...base, decision: 'approve' }),
    launchId: LAUNCH,
    snp: false,
    now: new Date('2026-12-02T04:00:00Z'),
    ...over,
  });
}

describe('parseAnswerBody: the three decisions', () => {
  it('approve, reject with its reason, inject with a 52-byte header', () => {
    expect(parseAnswerBody(JSON_TYPE, body({ ...base, decision: 'approve' }), LAUNCH, false)).toEqual({ decision: 'approve' });
    expect(
      parseAnswerBody('application/json; charset=utf-8', body({ ...base, decision: 'reject', reason: 'kernel differs' }), LAUNCH, false),
    ).toEqual({
      decision: 'reject',
      reason: 'kernel differs',
    });
    expect(
      parseAnswerBody(JSON_TYPE, body({ ...base, decision: 'inject', secret: { header: HEADER, payload: PAYLOAD } }), LAUNCH, false),
    ).toEqual({
      decision: 'inject',
      header: HEADER,
      payload: PAYLOAD,
    });
  });

  it('a reject reason with control characters is made printable', () => {
    const parsed = parseAnswerBody(JSON_TYPE, body({ ...base, decision: 'reject', reason: 'bad\nline\u001b[31m' }), LAUNCH, false);
    expect(parsed).toEqual({ decision: 'reject', reason: 'bad?line?[31m' });
  });
});

const MALFORMED: readonly [string, string | undefined, Buffer | string, RegExp][] = [
  ['wrong content type', 'text/html', body({ ...base, decision: 'approve' }), /content type "text\/html"/],
  ['no content type', undefined, body({ ...base, decision: 'approve' }), /content type "\(none\)"/],
  ['content type with another charset', 'application/json; charset=latin1', body({ ...base, decision: 'approve' }), /content type/],
  ['not JSON', JSON_TYPE, 'approve', /not strict JSON \(unexpected-character\)/],
  [
    'duplicate key',
    JSON_TYPE,
    `{"schema":"sevsup.attest-answer/v1","launchId":"${LAUNCH}","decision":"reject","decision":"approve"}`,
    /duplicate-key/,
  ],
  ['trailing garbage', JSON_TYPE, `${JSON.stringify({ ...base, decision: 'approve' })} x`, /trailing-garbage/],
  ['comment', JSON_TYPE, `{/*x*/"schema":"sevsup.attest-answer/v1"}`, /comment/],
  ['not an object', JSON_TYPE, '["approve"]', /not a JSON object/],
  ['wrong schema', JSON_TYPE, body({ ...base, schema: 'sevsup.attest-answer/v2', decision: 'approve' }), /schema is not/],
  ['no launchId', JSON_TYPE, body({ schema: base.schema, decision: 'approve' }), /launchId missing/],
  ['another launch', JSON_TYPE, body({ ...base, launchId: 'b0b0b0b0-0000-4000-8000-000000000000', decision: 'approve' }), /another launch/],
  ['unknown decision', JSON_TYPE, body({ ...base, decision: 'resume' }), /not approve, inject or reject/],
  ['no decision', JSON_TYPE, body({ ...base }), /not approve, inject or reject/],
  ['extra key on approve', JSON_TYPE, body({ ...base, decision: 'approve', note: 'x' }), /unknown member "note"/],
  ['extra key on reject', JSON_TYPE, body({ ...base, decision: 'reject', reason: 'r', secret: {} }), /unknown member "secret"/],
  ['reject without a reason', JSON_TYPE, body({ ...base, decision: 'reject' }), /non-empty reason/],
  ['reject with an empty reason', JSON_TYPE, body({ ...base, decision: 'reject', reason: '' }), /non-empty reason/],
  ['reject reason too long', JSON_TYPE, body({ ...base, decision: 'reject', reason: 'x'.repeat(513) }), /longer than 512/],
  ['inject without a secret', JSON_TYPE, body({ ...base, decision: 'inject' }), /needs a secret object/],
  ['inject with a string secret', JSON_TYPE, body({ ...base, decision: 'inject', secret: 'abc' }), /needs a secret object/],
  [
    'inject extra member in the secret',
    JSON_TYPE,
    body({ ...base, decision: 'inject', secret: { header: HEADER, payload: PAYLOAD, gpa: 0 } }),
    /unknown member "gpa" in the secret/,
  ],
  [
    'inject header not base64',
    JSON_TYPE,
    body({ ...base, decision: 'inject', secret: { header: '!!!', payload: PAYLOAD } }),
    /header is not canonical base64/,
  ],
  [
    'inject header non-canonical base64',
    JSON_TYPE,
    body({ ...base, decision: 'inject', secret: { header: `${HEADER.slice(0, -2)}B=`, payload: PAYLOAD } }),
    /canonical base64|bytes, not 52/,
  ],
  [
    'inject header 51 bytes',
    JSON_TYPE,
    body({ ...base, decision: 'inject', secret: { header: Buffer.alloc(51).toString('base64'), payload: PAYLOAD } }),
    /51 bytes, not 52/,
  ],
  [
    'inject header 53 bytes',
    JSON_TYPE,
    body({ ...base, decision: 'inject', secret: { header: Buffer.alloc(53).toString('base64'), payload: PAYLOAD } }),
    /53 bytes, not 52/,
  ],
  [
    'inject payload empty',
    JSON_TYPE,
    body({ ...base, decision: 'inject', secret: { header: HEADER, payload: '' } }),
    /payload is not non-empty/,
  ],
  [
    'inject payload not whole blocks',
    JSON_TYPE,
    body({ ...base, decision: 'inject', secret: { header: HEADER, payload: Buffer.alloc(17).toString('base64') } }),
    /16-byte blocks/,
  ],
  ['inject payload a number', JSON_TYPE, body({ ...base, decision: 'inject', secret: { header: HEADER, payload: 5 } }), /payload is not/],
  ['not UTF-8', JSON_TYPE, Buffer.from([0x7b, 0xff, 0x7d]), /not UTF-8/],
  ['too large', JSON_TYPE, Buffer.alloc(MAX_RELAY_BODY_BYTES + 1, 0x20), /larger than 65536/],
  ['too deep', JSON_TYPE, `${'['.repeat(20)}${']'.repeat(20)}`, /too-deep/],
];

describe('parseAnswerBody refuses every malformed answer', () => {
  it.each(MALFORMED)('%s', (_what, contentType, raw, message) => {
    const error = catchError(() => parseAnswerBody(contentType, Buffer.isBuffer(raw) ? raw : Buffer.from(raw), LAUNCH, false));
    expect(error).toMatchObject({ code: 'SUP_ERR_RELAY_ANSWER' });
    expect(error.message).toMatch(message);
  });

  it('inject for an SNP launch is invalid (no host-side injection on SNP)', () => {
    const error = catchError(() =>
      parseAnswerBody(JSON_TYPE, body({ ...base, decision: 'inject', secret: { header: HEADER, payload: PAYLOAD } }), LAUNCH, true),
    );
    expect(error).toMatchObject({ code: 'SUP_ERR_RELAY_ANSWER', message: expect.stringMatching(/invalid for an SNP launch/) });
  });

  it("never echoes the secret's bytes in a refusal", () => {
    const secretish = Buffer.alloc(51, 0x41).toString('base64');
    const error = catchError(() =>
      parseAnswerBody(JSON_TYPE, body({ ...base, decision: 'inject', secret: { header: secretish, payload: PAYLOAD } }), LAUNCH, false),
    );
    expect(JSON.stringify(error)).not.toContain(secretish);
    expect(error.message).not.toContain(PAYLOAD);
  });
});

describe('judgeAnswer: statuses', () => {
  it('200 with a good body is the answer; with a bad one a final rejection', () => {
    expect(judge({})).toEqual({ kind: 'answer', answer: { decision: 'approve' } });
    expect(judge({ body: body('nope') })).toMatchObject({ kind: 'final', code: 'SUP_ERR_RELAY_ANSWER' });
  });

  it.each([500, 502, 503, 504, 429])('%i is retried', (status) => {
    expect(judge({ status, body: Buffer.alloc(0) })).toMatchObject({
      kind: 'retry',
      code: 'SUP_ERR_RELAY_UNREACHABLE',
      reason: `HTTP ${status}`,
    });
  });

  it('Retry-After (seconds or a date) is passed on', () => {
    expect(judge({ status: 503, retryAfter: '2' })).toMatchObject({ kind: 'retry', retryAfterMs: 2000 });
    expect(judge({ status: 503, retryAfter: 'Wed, 02 Dec 2026 04:00:03 GMT' })).toMatchObject({ kind: 'retry', retryAfterMs: 3000 });
    expect(parseRetryAfter('soon', new Date())).toBeUndefined();
    expect(parseRetryAfter('-1', new Date())).toBeUndefined();
  });

  it.each([301, 302, 303, 307, 308])('%i (a redirect) is final: never followed', (status) => {
    expect(judge({ status, body: Buffer.alloc(0) })).toMatchObject({
      kind: 'final',
      code: 'SUP_ERR_RELAY_HTTP',
      reason: expect.stringMatching(/never follows/),
    });
  });

  it.each([400, 401, 403, 404, 409])('%i is final, with the owner error text sanitised', (status) => {
    expect(judge({ status, body: body({ error: 'replay:\nthis measurement was answered' }) })).toEqual({
      kind: 'final',
      code: 'SUP_ERR_RELAY_HTTP',
      reason: `HTTP ${status}: replay:?this measurement was answered`,
    });
  });

  it('an error text that is not strict JSON is left out', () => {
    expect(judge({ status: 403, body: body('{"error":"a","error":"b"}') })).toEqual({
      kind: 'final',
      code: 'SUP_ERR_RELAY_HTTP',
      reason: 'HTTP 403',
    });
  });
});
