// `attest: relay`, the daemon's side (issue 14, docs/relay-protocol.md): a held guest's record is
// POSTed to the guest owner's service, retried with backoff (p-retry) within the hold's deadline
// only, and the answer acted on: approve; inject (the hold's own sev-inject-launch-secret path,
// then approve; a platform refusal rejects); reject with the owner's reason.
// Why its own module (src/relay/), not vm/ or attestation/: it is network I/O with its own trust
// rules (a pinned CA, a host credential), which the lifecycle should not carry and the owner's side
// (attestation/) must not; vm/ only defines the hook it is called through (lifecycle-options.ts),
// and the composition (guest/supervised.ts) plugs it in.
// Owns: the credentials' reading (and refusing a key or token file others can read, as ssh does;
// checked before QEMU is spawned too: guest/supervised.ts), the launch id (one per launch: written
// to the audit before the first attempt and taken from it again after a daemon restart, so the
// owner sees a retry of the same launch, not a replay), the request, the retry loop, and the audit
// file beside the record.
// Must not: resume or stop QEMU (the lifecycle does, from the outcome), or let the token, the key or
// the secret reach a log, an error, the audit or the metrics (only the secret's sha256 and length).
import { createHash, randomUUID } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { hostname } from 'node:os';
import pRetry, { AbortError } from 'p-retry';
import type { RelaySpec } from '../config/vm-spec.js';
import { hasCode, SupervisorError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { describeIoError } from '../util/io-error.js';
import { ATTEST_REQUEST_SCHEMA, LAUNCH_ID, MAX_RELAY_BODY_BYTES } from '../attestation/relay-protocol.js';
import { judgeAnswer, type RelayDecision } from './answer.js';
import { AttemptFailure, postOnce, type HostCredentials, type TlsPeer } from './https-attempt.js';

/** What the lifecycle gives the relay for one hold. */
export interface RelayHold {
  readonly vm: string;
  readonly spec: RelaySpec;
  /** The record as written to disk (its path: the audit goes beside it). */
  readonly recordPath: string;
  readonly deadline: Date;
  /** Aborted when the hold ends otherwise (deadline, stop, detach, QEMU gone, a forced approve). */
  readonly signal: AbortSignal;
  /** Inject the owner's packet through the hold's path. @throws SUP_ERR_SECRET_REFUSED when the platform refuses it. */
  inject(packet: { readonly packetHeader: string; readonly secret: string }): Promise<void>;
  readonly logger: Logger;
}

/** How a relay ended: approved (the guest may run) or rejected with the error it fails with. */
export type RelayOutcome =
  | { readonly approved: true; readonly injected: boolean }
  | { readonly approved: false; readonly error: SupervisorError };

/** Hooks for the daemon's metrics: one per attempt, one per hold. Labels are our own words only. */
export interface RelayMetrics {
  attempt(result: string, seconds: number): void;
  outcome(result: string, seconds: number): void;
}

export interface RelayEnv {
  /** The daemon's `host-id` (default os.hostname()). */
  readonly hostId?: string;
  readonly metrics?: RelayMetrics;
}

/** Backoff between attempts: 250 ms doubling to 2 s, randomised: an owner's service that comes back is reached within about 2 s; the deadline caps it all. */
const BACKOFF = { minTimeout: 250, maxTimeout: 2000, factor: 2, randomize: true } as const;
/** CA bundles and client certificates are a few KiB; a token is a line. */
const MAX_CREDENTIAL_BYTES = 1024 * 1024;
/** RFC 6750 b64token: what may follow `Bearer ` (no spaces or line breaks to smuggle a header). */
const TOKEN_PATTERN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * This launch's id and how many attempts it made: from the audit (a daemon restarted during the
 * hold: the same launch asks again), else a fresh UUID written there, fsync'd, before any attempt.
 * The audit is per launch (beside the launch's own record).
 */
async function launchOf(audit: string): Promise<{ launchId: string; attemptsBefore: number }> {
  const text = await readFile(audit, 'utf8').catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw error;
  });
  let launchId: string | null = null;
  let attemptsBefore = 0;
  for (const raw of text.split('\n')) {
    let line: unknown;
    try {
      line = JSON.parse(raw);
    } catch {
      continue; // a line torn by a crash mid-write
    }
    const l = line as { launchId?: unknown; event?: unknown; attempt?: unknown };
    if (launchId === null && typeof l.launchId === 'string' && LAUNCH_ID.test(l.launchId)) launchId = l.launchId;
    if (l.event === 'attempt' && typeof l.attempt === 'number' && l.attempt > attemptsBefore) attemptsBefore = l.attempt;
  }
  if (launchId !== null) return { launchId, attemptsBefore };
  const fresh = randomUUID();
  await appendAudit(audit, { time: new Date().toISOString(), launchId: fresh, event: 'launch' });
  return { launchId: fresh, attemptsBefore: 0 };
}

/** `<record>.json` → `<record>.relay.jsonl`. */
export function auditPathFor(recordPath: string): string {
  return `${recordPath.replace(/\.json$/, '')}.relay.jsonl`;
}

/**
 * Run the relay for one hold. Every failure is a rejection with its reason; it throws only when the
 * audit of an approval cannot be written (the lifecycle then rejects the guest: fail closed).
 */
export async function relayHold(h: RelayHold, env: RelayEnv = {}): Promise<RelayOutcome> {
  const started = performance.now();
  const log = h.logger.child({ component: 'relay' });
  const audit = auditPathFor(h.recordPath);
  const url = h.spec.url;
  let launchId: string;
  let attemptsBefore: number;
  try {
    ({ launchId, attemptsBefore } = await launchOf(audit));
  } catch (error: unknown) {
    // Without a durable launch id a restart would re-ask under a new one (a replay to the owner).
    const reason = `cannot keep this launch's id in the audit ${audit}: ${describeIoError(error)}`;
    env.metrics?.outcome('credentials', (performance.now() - started) / 1000);
    log.warn({ reason }, 'relay: guest rejected');
    return {
      approved: false,
      error: new SupervisorError(
        'SUP_ERR_RELAY_CREDENTIALS',
        `VM ${h.vm} was rejected: ${reason}; QEMU was stopped and the guest never ran`,
        {
          details: { vm: h.vm, reason },
        },
      ),
    };
  }
  /** The rejection; `before`: audit lines not yet written (the deciding attempt), written with it in one fsync. */
  const reject = async (
    code: ErrorCode,
    reason: string,
    result: string,
    before: readonly Record<string, unknown>[] = [],
  ): Promise<RelayOutcome> => {
    const error = new SupervisorError(code, `VM ${h.vm} was rejected: ${reason}; QEMU was stopped and the guest never ran`, {
      details: { vm: h.vm, reason, launchId },
    });
    await appendAudit(audit, ...before, { time: new Date().toISOString(), launchId, event: 'rejected', code, reason }).catch((e: unknown) =>
      log.error({ err: e }, 'relay audit line could not be written'),
    );
    env.metrics?.outcome(result, (performance.now() - started) / 1000);
    log.warn({ launchId, code, reason }, 'relay: guest rejected');
    return { approved: false, error };
  };

  let credentials: HostCredentials;
  let record: unknown;
  let snp: boolean;
  try {
    credentials = await readCredentials(h.spec);
    const recordText = await readFile(h.recordPath, 'utf8');
    record = JSON.parse(recordText) as unknown;
    snp = (record as { schema?: unknown }).schema !== 'sevsup.measurement/v1';
  } catch (error: unknown) {
    const reason = error instanceof SupervisorError ? error.message : `cannot read the record: ${describeIoError(error)}`;
    return reject('SUP_ERR_RELAY_CREDENTIALS', reason, 'credentials');
  }

  const host = env.hostId ?? hostname();
  let last: { code: ErrorCode; reason: string } = { code: 'SUP_ERR_RELAY_UNREACHABLE', reason: 'no attempt was made' };
  /** One attempt; an answer comes back with its audit line unwritten (written with what follows, one fsync). */
  const attempt = async (tried: number): Promise<{ readonly answer: RelayDecision; readonly line: Record<string, unknown> }> => {
    // Attempts go on counting across a daemon restart: the owner sees attempt n+1 of the same launch.
    const n = attemptsBefore + tried;
    const remaining = h.deadline.getTime() - Date.now();
    if (remaining <= 0) throw new AbortError(new RelayStop('SUP_ERR_ATTEST_TIMEOUT', deadlinePassed(last.reason)));
    const body = Buffer.from(
      JSON.stringify({ schema: ATTEST_REQUEST_SCHEMA, host, vm: h.vm, launchId, attempt: n, sentAt: new Date().toISOString(), record }),
    );
    if (body.length > MAX_RELAY_BODY_BYTES) {
      throw new AbortError(
        new RelayStop('SUP_ERR_RELAY_ANSWER', `the request would be ${body.length} bytes, over the ${MAX_RELAY_BODY_BYTES}-byte cap`),
      );
    }
    const line: Record<string, unknown> = {
      time: new Date().toISOString(),
      launchId,
      event: 'attempt',
      attempt: n,
      url,
      requestSha256: sha256(body),
    };
    const t0 = performance.now();
    const timeoutMs = Math.max(1, Math.min(h.spec.timeoutSeconds * 1000, remaining));
    let peer: TlsPeer | null = null;
    try {
      const res = await postOnce({ url, body, credentials, timeoutMs, signal: h.signal });
      peer = res.peer;
      const verdict = judgeAnswer({ ...res, launchId, snp, now: new Date() });
      Object.assign(line, { peer, status: res.status, answerSha256: sha256(res.body), answerBytes: res.body.length, ms: ms(t0) });
      if (verdict.kind === 'answer') {
        const a = verdict.answer;
        Object.assign(line, { decision: a.decision });
        if (a.decision === 'reject') Object.assign(line, { reason: a.reason });
        if (a.decision === 'inject') Object.assign(line, { secret: secretFacts(a.header, a.payload) });
        env.metrics?.attempt(a.decision, ms(t0) / 1000);
        return { answer: a, line };
      }
      Object.assign(line, { code: verdict.code, reason: verdict.reason });
      await appendAudit(audit, line);
      env.metrics?.attempt(verdict.kind === 'retry' ? 'retry' : resultOf(verdict.code), ms(t0) / 1000);
      last = verdict;
      if (verdict.kind === 'final') throw new AbortError(new RelayStop(verdict.code, verdict.reason));
      throw new RetryLater(verdict.code, verdict.reason, verdict.retryAfterMs);
    } catch (error: unknown) {
      if (!(error instanceof AttemptFailure)) throw error;
      Object.assign(line, { peer: error.peer ?? peer, code: error.code, reason: error.message, ms: ms(t0) });
      if (!h.signal.aborted) {
        await appendAudit(audit, line);
        env.metrics?.attempt(error.transient ? 'retry' : resultOf(error.code), ms(t0) / 1000);
      }
      last = { code: error.code, reason: error.message };
      if (!error.transient) throw new AbortError(new RelayStop(error.code, error.message));
      throw new RetryLater(error.code, error.message, undefined);
    }
  };

  let answer: RelayDecision;
  let answerLine: Record<string, unknown>;
  try {
    ({ answer, line: answerLine } = await pRetry(attempt, {
      retries: Number.POSITIVE_INFINITY,
      ...BACKOFF,
      maxRetryTime: Math.max(0, h.deadline.getTime() - Date.now()),
      signal: h.signal,
      onFailedAttempt: async ({ error }) => {
        // Retry-After is honoured, but never past the deadline (p-retry's own backoff follows).
        const wait = error instanceof RetryLater ? (error.retryAfterMs ?? 0) : 0;
        const cap = h.deadline.getTime() - Date.now();
        if (wait > 0 && cap > 0) await sleep(Math.min(wait, cap), h.signal);
        log.info({ launchId, reason: error.message }, 'relay: attempt failed; retrying within the hold deadline');
      },
    }));
  } catch (error: unknown) {
    if (h.signal.aborted) {
      // The hold ended otherwise (deadline, stop, QEMU gone, an operator's forced approve): the
      // lifecycle decides from that; the audit says the relay stopped, not that it rejected.
      const reason = 'the hold ended before the owner answered (deadline, stop, QEMU gone or a forced approve)';
      await appendAudit(audit, { time: new Date().toISOString(), launchId, event: 'ended', reason }).catch(() => undefined);
      env.metrics?.outcome('ended', (performance.now() - started) / 1000);
      return { approved: false, error: new SupervisorError('SUP_ERR_ATTEST_TIMEOUT', `VM ${h.vm}: ${reason}`, { details: { vm: h.vm } }) };
    }
    if (error instanceof RelayStop) return reject(error.code, error.reason, resultOf(error.code));
    if (error instanceof RetryLater) {
      return reject('SUP_ERR_ATTEST_TIMEOUT', deadlinePassed(last.reason), 'deadline');
    }
    return reject('SUP_ERR_RELAY_UNREACHABLE', error instanceof Error ? error.message : String(error), 'unreachable');
  }

  const done: Record<string, unknown>[] = [answerLine];
  switch (answer.decision) {
    case 'reject':
      return reject('SUP_ERR_RELAY_REJECTED', `the owner's service rejected it: ${answer.reason}`, 'reject', done);
    case 'inject':
      // What is about to be injected is on disk before the platform sees it.
      await appendAudit(audit, ...done.splice(0));
      try {
        await h.inject({ packetHeader: answer.header, secret: answer.payload });
      } catch (error: unknown) {
        const code: ErrorCode = hasCode(error, 'SUP_ERR_SECRET_REFUSED') ? 'SUP_ERR_SECRET_REFUSED' : 'SUP_ERR_RELAY_REJECTED';
        const why = error instanceof SupervisorError ? error.message : String(error);
        return reject(code, `the owner's secret could not be injected: ${why}`, 'inject-refused');
      }
      done.push({ time: new Date().toISOString(), launchId, event: 'injected', secret: secretFacts(answer.header, answer.payload) });
      break;
    case 'approve':
      break;
  }
  await appendAudit(audit, ...done, {
    time: new Date().toISOString(),
    launchId,
    event: 'approved',
    injected: answer.decision === 'inject',
  });
  env.metrics?.outcome(answer.decision, (performance.now() - started) / 1000);
  log.info({ launchId, decision: answer.decision }, "relay: the owner's service approved the guest");
  return { approved: true, injected: answer.decision === 'inject' };
}

function deadlinePassed(lastReason: string): string {
  return `the hold deadline passed before the owner's service answered (last attempt: ${lastReason})`;
}

/** A final answer or failure inside p-retry (wrapped in its AbortError, which it unwraps). */
class RelayStop extends Error {
  readonly code: ErrorCode;
  readonly reason: string;
  constructor(code: ErrorCode, reason: string) {
    super(reason);
    this.code = code;
    this.reason = reason;
  }
}

/** A transient failure: p-retry tries again after its backoff (and Retry-After). */
class RetryLater extends Error {
  readonly code: ErrorCode;
  readonly retryAfterMs: number | undefined;
  constructor(code: ErrorCode, reason: string, retryAfterMs: number | undefined) {
    super(reason);
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

/** Metric/audit word for a final code. */
function resultOf(code: ErrorCode): string {
  switch (code) {
    case 'SUP_ERR_RELAY_TLS':
      return 'tls';
    case 'SUP_ERR_RELAY_HTTP':
      return 'http';
    case 'SUP_ERR_RELAY_ANSWER':
      return 'bad-answer';
    case 'SUP_ERR_ATTEST_TIMEOUT':
      return 'deadline';
    default:
      return 'unreachable';
  }
}

/**
 * The CA, and the client certificate and key or the token. A key or token file that its group or
 * others may read is refused, as ssh refuses such a private key: it may already be someone else's.
 * @throws SUP_ERR_RELAY_CREDENTIALS naming the file and what to do (never its content).
 */
export async function readCredentials(spec: RelaySpec): Promise<HostCredentials> {
  const ca = await readBounded(spec.ca, 'attest-ca');
  if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw credentialError(spec.ca, 'attest-ca', 'holds no PEM certificate');
  if (spec.identity.kind === 'mtls') {
    const cert = await readBounded(spec.identity.cert, 'attest-cert');
    await refuseOpenPermissions(spec.identity.key, 'attest-key');
    const key = await readBounded(spec.identity.key, 'attest-key');
    mustParse(() => createSecureContext({ cert }), spec.identity.cert, 'attest-cert', 'is not a PEM certificate node can use');
    mustParse(
      () => createSecureContext({ cert, key }),
      spec.identity.key,
      'attest-key',
      `is not a PEM private key, or not the key of attest-cert ${spec.identity.cert}`,
    );
    mustParse(() => createSecureContext({ ca }), spec.ca, 'attest-ca', 'holds a certificate node cannot read');
    return { ca, cert, key };
  }
  mustParse(() => createSecureContext({ ca }), spec.ca, 'attest-ca', 'holds a certificate node cannot read');
  await refuseOpenPermissions(spec.identity.tokenFile, 'attest-token-file');
  const token = (await readBounded(spec.identity.tokenFile, 'attest-token-file')).toString('utf8').trim();
  if (!TOKEN_PATTERN.test(token)) {
    throw credentialError(spec.identity.tokenFile, 'attest-token-file', 'is not one bearer token (RFC 6750 characters on one line)');
  }
  return { ca, token };
}

/** Parse with node's TLS now (preflight), not at the first attempt; node's own message may quote key material, so it is not kept. */
function mustParse(run: () => unknown, file: string, key: string, problem: string): void {
  try {
    run();
  } catch {
    throw credentialError(file, key, problem);
  }
}

async function refuseOpenPermissions(file: string, key: string): Promise<void> {
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch (error: unknown) {
    throw credentialError(file, key, `cannot be read: ${describeIoError(error)}`);
  }
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0');
    throw credentialError(
      file,
      key,
      `has permissions ${octal}, which are too open: it must not be accessible by group or others (chmod 600)`,
    );
  }
}

async function readBounded(file: string, key: string): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (error: unknown) {
    throw credentialError(file, key, `cannot be read: ${describeIoError(error)}`);
  }
  if (data.length === 0 || data.length > MAX_CREDENTIAL_BYTES)
    throw credentialError(file, key, `is ${data.length} bytes; expected 1 byte to 1 MiB`);
  return data;
}

function credentialError(file: string, key: string, problem: string): SupervisorError {
  return new SupervisorError('SUP_ERR_RELAY_CREDENTIALS', `${key} ${file} ${problem}`, { details: { key, file } });
}

/** JSON lines, appended in one write and fsync'd before the relay goes on (the audit outlives a crash). */
export async function appendAudit(file: string, ...lines: Record<string, unknown>[]): Promise<void> {
  const handle = await open(file, 'a', 0o600);
  try {
    await handle.write(lines.map((line) => `${JSON.stringify(line)}\n`).join(''));
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The secret as the audit may name it: digests and lengths only. */
function secretFacts(header: string, payload: string): Record<string, unknown> {
  const h = Buffer.from(header, 'base64');
  const p = Buffer.from(payload, 'base64');
  return { headerSha256: sha256(h), headerBytes: h.length, payloadSha256: sha256(p), payloadBytes: p.length };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function ms(t0: number): number {
  return Math.round((performance.now() - t0) * 10) / 10;
}

function sleep(delayMs: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, delayMs);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
