// The relay loop (src/relay/relay.ts) against a real HTTPS owner on loopback with certificates the
// test made (test/support/relay-owner.ts): every answer, every hostile path, retries within the
// deadline, the audit beside the record, and no secret in it. No QEMU: the injection is a callback
// here (integration/daemon/relay.test.ts has the daemon, the simulated platform and QEMU).
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RelaySpec } from '../../../src/config/vm-spec.js';
import { SupervisorError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { auditPathFor, relayHold, type RelayOutcome } from '../../../src/relay/relay.js';
import { answer, freePort, makeRelayPki, OwnerServer, type Behaviour, type RelayPki, type TlsPair } from '../../support/relay-owner.js';

let dir: string;
let pki: RelayPki;
const servers: OwnerServer[] = [];
let recordPath: string;
const RECORD = { schema: 'sevsup.measurement/v1', vm: 'web1', measurement: Buffer.alloc(48, 3).toString('base64'), policy: 7 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-relay-'));
  pki = await makeRelayPki(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
let n = 0;
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function owner(behaviour: Behaviour, o: { tls?: TlsPair; mtls?: boolean; port?: number } = {}): Promise<OwnerServer> {
  const s = await OwnerServer.start({
    tls: o.tls ?? pki.server,
    behaviour,
    ...(o.mtls === true ? { clientCa: pki.caPem } : { token: pki.token }),
    ...(o.port === undefined ? {} : { port: o.port }),
  });
  servers.push(s);
  return s;
}

function spec(url: string, over: Partial<RelaySpec> = {}): RelaySpec {
  return { url, ca: pki.caFile, identity: { kind: 'token', tokenFile: pki.tokenFile }, timeoutSeconds: 2, ...over };
}

interface Run {
  readonly outcome: RelayOutcome;
  readonly audit: Record<string, unknown>[];
  readonly auditText: string;
  readonly injected: { packetHeader: string; secret: string }[];
}

async function relay(
  s: RelaySpec,
  o: {
    deadlineMs?: number;
    inject?: (p: { packetHeader: string; secret: string }) => Promise<void>;
    signal?: AbortSignal;
    /** The same launch again (a daemon restarted during its hold): its record, and the audit beside it. */
    again?: string;
    /** Runs beside the relay, given the audit file's path; awaited before the audit is read. */
    alongside?: (auditPath: string) => Promise<void>;
  } = {},
): Promise<Run> {
  if (o.again === undefined) {
    n += 1;
    recordPath = join(dir, `rec-${n}.json`);
    await writeFile(recordPath, `${JSON.stringify(RECORD, null, 2)}\n`);
  } else recordPath = o.again;
  const injected: { packetHeader: string; secret: string }[] = [];
  const beside = o.alongside?.(auditPathFor(recordPath));
  const outcome = await relayHold(
    {
      vm: 'web1',
      spec: s,
      recordPath,
      deadline: new Date(Date.now() + (o.deadlineMs ?? 10_000)),
      signal: o.signal ?? new AbortController().signal,
      inject:
        o.inject ??
        (async (p) => {
          injected.push(p);
        }),
      logger: silentLogger(),
    },
    { hostId: 'node-7' },
  );
  await beside;
  const auditText = await readFile(auditPathFor(recordPath), 'utf8').catch(() => '');
  const audit = auditText
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { outcome, audit, auditText, injected };
}

function rejection(r: Run): { code: string; message: string } {
  if (r.outcome.approved) throw new Error('expected a rejection');
  return { code: r.outcome.error.code, message: r.outcome.error.message };
}

describe('the owner answers', () => {
  it('approve (bearer token): the request carries the record as written, the host id, attempt 1; the audit names the TLS peer', async () => {
    const s = await owner((r) => answer.approve(r));
    const run = await relay(spec(s.url));
    expect(run.outcome).toEqual({ approved: true, injected: false });
    expect(s.requests).toHaveLength(1);
    const [req] = s.requests;
    expect(req?.authorization).toBe(`Bearer ${pki.token}`);
    expect(req?.body).toMatchObject({ schema: 'sevsup.attest-request/v1', host: 'node-7', vm: 'web1', attempt: 1, record: RECORD });
    expect(req?.body.launchId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(run.audit).toEqual([
      expect.objectContaining({ event: 'launch', launchId: s.requests[0]?.body.launchId }),
      expect.objectContaining({
        event: 'attempt',
        attempt: 1,
        url: s.url,
        launchId: req?.body.launchId,
        status: 200,
        decision: 'approve',
        requestSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        answerSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        peer: expect.objectContaining({
          subject: expect.stringContaining('CN=localhost'),
          issuer: expect.stringContaining('CN=relay test owner CA'),
          fingerprint256: expect.stringMatching(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/),
          validTo: expect.any(String),
        }),
      }),
      expect.objectContaining({ event: 'approved', injected: false }),
    ]);
    expect(run.auditText).not.toContain(pki.token);
  });

  it('approve over mutual TLS: the owner sees the client certificate', async () => {
    const s = await owner((r) => answer.approve(r), { mtls: true });
    const run = await relay(spec(s.url, { identity: { kind: 'mtls', cert: pki.client.certFile, key: pki.client.keyFile } }));
    expect(run.outcome).toEqual({ approved: true, injected: false });
    expect(s.requests[0]).toMatchObject({ clientCn: 'node-7', authorization: undefined });
  });

  it("reject: the owner's reason is in the error and the audit", async () => {
    const s = await owner((r) => answer.reject(r, 'kernel sha256 differs from the reference'));
    const run = await relay(spec(s.url));
    expect(rejection(run)).toEqual({
      code: 'SUP_ERR_RELAY_REJECTED',
      message: expect.stringContaining("the owner's service rejected it: kernel sha256 differs from the reference"),
    });
    expect(run.audit.at(-1)).toMatchObject({
      event: 'rejected',
      code: 'SUP_ERR_RELAY_REJECTED',
      reason: expect.stringContaining('kernel sha256 differs'),
    });
  });

  it('inject: the packet goes to the hold, then approve; the audit has only digests and lengths', async () => {
    const header = Buffer.alloc(52, 0x5a);
    const payload = Buffer.alloc(96, 0xa5);
    const s = await owner((r) => answer.inject(r, header, payload));
    const run = await relay(spec(s.url));
    expect(run.outcome).toEqual({ approved: true, injected: true });
    expect(run.injected).toEqual([{ packetHeader: header.toString('base64'), secret: payload.toString('base64') }]);
    expect(run.audit.map((l) => l['event'])).toEqual(['launch', 'attempt', 'injected', 'approved']);
    expect(run.audit[1]).toMatchObject({ secret: { headerBytes: 52, payloadBytes: 96 } });
    expect(run.auditText).not.toContain(payload.toString('base64'));
    expect(run.auditText).not.toContain(header.toString('base64'));
  });

  it('inject the platform refuses (its MAC is not bound to this measurement): rejected, never approved', async () => {
    const s = await owner((r) => answer.inject(r, Buffer.alloc(52, 1), Buffer.alloc(32, 2)));
    const run = await relay(spec(s.url), {
      inject: () =>
        Promise.reject(
          new SupervisorError('SUP_ERR_SECRET_REFUSED', 'VM web1: the platform refused the launch secret: SEV: failed to inject secret'),
        ),
    });
    expect(rejection(run)).toMatchObject({ code: 'SUP_ERR_SECRET_REFUSED', message: expect.stringContaining('failed to inject secret') });
    expect(run.audit.map((l) => l['event'])).toEqual(['launch', 'attempt', 'rejected']);
  });
});

describe('hostile and broken owners: each a final rejection with its reason', () => {
  it.each([
    ['a certificate from another CA', 'foreign', /TLS check failed/],
    ['an expired certificate', 'expired', /CERT_HAS_EXPIRED|expired/],
    ['a certificate for another host', 'wrongHost', /ERR_TLS_CERT_ALTNAME_INVALID|altnames/],
  ] as const)('%s: no request is sent, no retry', async (_what, which, reason) => {
    const s = await owner((r) => answer.approve(r), { tls: pki[which] });
    const run = await relay(spec(s.url));
    expect(rejection(run)).toMatchObject({ code: 'SUP_ERR_RELAY_TLS', message: expect.stringMatching(reason) });
    expect(s.requests).toEqual([]);
    expect(run.audit.filter((l) => l['event'] === 'attempt')).toHaveLength(1);
    expect(run.audit.at(-1)).toMatchObject({ event: 'rejected', code: 'SUP_ERR_RELAY_TLS' });
  });

  it('the system store is not used: pinning another CA refuses the owner', async () => {
    const s = await owner((r) => answer.approve(r));
    const run = await relay(spec(s.url, { ca: pki.otherCaFile }));
    expect(rejection(run).code).toBe('SUP_ERR_RELAY_TLS');
  });

  it('a redirect is never followed', async () => {
    const s = await owner(() => ({ status: 302, headers: { location: 'https://localhost:1/elsewhere' } }));
    const run = await relay(spec(s.url));
    expect(rejection(run)).toMatchObject({ code: 'SUP_ERR_RELAY_HTTP', message: expect.stringContaining('HTTP 302') });
    expect(s.requests).toHaveLength(1);
  });

  it('a huge answer: reading stops at 64 KiB', async () => {
    const s = await owner(() => ({ status: 200, streamBytes: 4 * 1024 * 1024 }));
    const run = await relay(spec(s.url));
    expect(rejection(run)).toMatchObject({ code: 'SUP_ERR_RELAY_ANSWER', message: expect.stringContaining('longer than 65536') });
  });

  it('a huge declared length is refused before reading', async () => {
    const s = await owner(() => ({ status: 200, headers: { 'content-type': 'application/json', 'content-length': '10000000' }, body: '' }));
    const run = await relay(spec(s.url));
    expect(rejection(run)).toMatchObject({ code: 'SUP_ERR_RELAY_ANSWER', message: expect.stringContaining('declared') });
  });

  it('an answer for another launch', async () => {
    const s = await owner((r) =>
      // Its last hex digit changed (a launch id that already ends in 0 gets a 1).
      answer.json({
        schema: 'sevsup.attest-answer/v1',
        launchId: `${r.body.launchId.slice(0, -1)}${r.body.launchId.endsWith('0') ? '1' : '0'}`,
        decision: 'approve',
      }),
    );
    const run = await relay(spec(s.url));
    expect(rejection(run)).toMatchObject({ code: 'SUP_ERR_RELAY_ANSWER', message: expect.stringContaining('another launch') });
  });

  it('bad JSON', async () => {
    const s = await owner(() => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '{"decision": approve}' }));
    const run = await relay(spec(s.url));
    expect(rejection(run).code).toBe('SUP_ERR_RELAY_ANSWER');
  });

  it("a 403 with the owner's error text", async () => {
    const s = await owner(() => answer.json({ error: 'unknown host node-7' }, 403));
    const run = await relay(spec(s.url));
    expect(rejection(run)).toMatchObject({ code: 'SUP_ERR_RELAY_HTTP', message: expect.stringContaining('HTTP 403: unknown host node-7') });
  });

  it('a wrong token gets the owner 401, final', async () => {
    const bad = join(dir, 'bad.token');
    await writeFile(bad, 'not-the-token\n', { mode: 0o600 });
    const s = await owner((r) => answer.approve(r));
    const run = await relay(spec(s.url, { identity: { kind: 'token', tokenFile: bad } }));
    expect(rejection(run)).toMatchObject({ code: 'SUP_ERR_RELAY_HTTP', message: expect.stringContaining('HTTP 401') });
    expect(run.auditText).not.toContain('not-the-token');
  });

  it('a slow owner: each attempt times out, retried until the deadline, then rejected', async () => {
    const s = await owner(() => ({ ...answer.json({}), delayMs: 5000 }));
    const run = await relay(spec(s.url, { timeoutSeconds: 0.4 }), { deadlineMs: 1500 });
    expect(rejection(run)).toMatchObject({ code: 'SUP_ERR_ATTEST_TIMEOUT', message: expect.stringContaining('no complete answer within') });
    const attempts = run.audit.filter((l) => l['event'] === 'attempt');
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts[0]).toMatchObject({ code: 'SUP_ERR_RELAY_UNREACHABLE' });
  });
});

describe('retries within the deadline only', () => {
  it('5xx then an answer: retried with backoff, Retry-After honoured', async () => {
    const s = await owner((r, i) => (i <= 2 ? { status: 503, headers: { 'retry-after': '0' } } : answer.approve(r)));
    const run = await relay(spec(s.url));
    expect(run.outcome).toEqual({ approved: true, injected: false });
    expect(s.requests.map((r) => r.body.attempt)).toEqual([1, 2, 3]);
    expect(new Set(s.requests.map((r) => r.body.launchId)).size).toBe(1);
    expect(run.audit.filter((l) => l['event'] === 'attempt').map((l) => l['status'])).toEqual([503, 503, 200]);
  });

  it('the owner is down at first: a later attempt within the deadline gets through', async () => {
    const port = await freePort();
    const url = `https://localhost:${port}/attest`;
    // The owner comes up once the first attempt has been refused (the audit says so), not at a fixed time.
    const comeUp = async (auditPath: string): Promise<void> => {
      const end = Date.now() + 4000;
      while (Date.now() < end && !(await readFile(auditPath, 'utf8').catch(() => '')).includes('"event":"attempt"')) await delay(20);
      await owner((r) => answer.approve(r), { port });
    };
    const run = await relay(spec(url), { deadlineMs: 4000, alongside: comeUp });
    expect(run.outcome).toEqual({ approved: true, injected: false });
    const attempts = run.audit.filter((l) => l['event'] === 'attempt');
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts[0]).toMatchObject({ code: 'SUP_ERR_RELAY_UNREACHABLE', reason: expect.stringContaining('ECONNREFUSED') });
    expect(attempts.at(-1)).toMatchObject({ status: 200, decision: 'approve' });
  });

  it('down past the deadline: rejected, with the last failure named', async () => {
    const port = await freePort();
    const run = await relay(spec(`https://localhost:${port}/attest`), { deadlineMs: 700 });
    expect(rejection(run)).toMatchObject({ code: 'SUP_ERR_ATTEST_TIMEOUT', message: expect.stringContaining('ECONNREFUSED') });
  });

  it('the hold ending (stop, forced approve) ends the relay', async () => {
    const s = await owner(() => ({ ...answer.json({}), delayMs: 5000 }));
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const run = await relay(spec(s.url, { timeoutSeconds: 10 }), { signal: ac.signal });
    expect(rejection(run).code).toBe('SUP_ERR_ATTEST_TIMEOUT');
    // The audit says the relay stopped, not that it rejected (a forced approve may have ended it).
    expect(run.audit.map((l) => l['event'])).toEqual(['launch', 'ended']);
  });
});

describe('a hold already over', () => {
  it('an aborted signal sends nothing and audits the end', async () => {
    const s = await owner((r) => answer.approve(r));
    const ac = new AbortController();
    ac.abort();
    const run = await relay(spec(s.url), { signal: ac.signal });
    expect(rejection(run).code).toBe('SUP_ERR_ATTEST_TIMEOUT');
    expect(s.requests).toEqual([]);
    expect(run.audit.map((l) => l['event'])).toEqual(['launch', 'ended']);
  });
});

describe('one launch id per launch', () => {
  it('is in the audit before the first attempt, and a restarted daemon asks again under it', async () => {
    const slow = await owner((r) => ({ ...answer.approve(r), delayMs: 10_000 }));
    const stop = new AbortController();
    const first = relay(spec(slow.url), { signal: stop.signal });
    while (slow.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
    // The daemon goes away mid-attempt (its hold is aborted).
    stop.abort();
    const before = await first;
    expect(before.audit[0]).toMatchObject({ event: 'launch', launchId: slow.requests[0]?.body.launchId });
    const fast = await owner((r) => answer.approve(r));
    const after = await relay(spec(fast.url), { again: recordPath });
    expect(after.outcome).toEqual({ approved: true, injected: false });
    expect(fast.requests[0]?.body.launchId).toBe(slow.requests[0]?.body.launchId);
    expect(after.audit.filter((l) => l['event'] === 'launch')).toHaveLength(1);
    expect(new Set(after.audit.map((l) => l['launchId'])).size).toBe(1);
  });

  it('another launch (another record) gets another id', async () => {
    const s = await owner((r) => answer.approve(r));
    await relay(spec(s.url));
    await relay(spec(s.url));
    expect(s.requests[0]?.body.launchId).not.toBe(s.requests[1]?.body.launchId);
  });
});

describe('credentials', () => {
  it("a client key that is not the certificate's, or a certificate that is not one, is refused before any request", async () => {
    const s = await owner((r) => answer.approve(r), { mtls: true });
    const otherKey = join(dir, 'other.key');
    await writeFile(otherKey, pki.server.key, { mode: 0o600 });
    const mismatched = await relay(spec(s.url, { identity: { kind: 'mtls', cert: pki.client.certFile, key: otherKey } }));
    expect(rejection(mismatched)).toMatchObject({
      code: 'SUP_ERR_RELAY_CREDENTIALS',
      message: expect.stringContaining(`attest-key ${otherKey} is not a PEM private key, or not the key of attest-cert`),
    });
    const notCert = join(dir, 'not-a.crt');
    await writeFile(notCert, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    const bad = await relay(spec(s.url, { identity: { kind: 'mtls', cert: notCert, key: pki.client.keyFile } }));
    expect(rejection(bad)).toMatchObject({ code: 'SUP_ERR_RELAY_CREDENTIALS', message: expect.stringContaining(`attest-cert ${notCert}`) });
    expect(s.requests).toEqual([]);
  });

  it.each([
    ['a token file others can read', 'token', 0o644],
    ['a token file its group can read', 'token', 0o640],
    ['a client key others can read', 'key', 0o604],
  ] as const)('%s is refused as ssh refuses it', async (_what, which, mode) => {
    const file = join(dir, `open-${which}-${mode}`);
    await writeFile(file, which === 'token' ? `${pki.token}\n` : pki.client.key);
    await chmod(file, mode);
    const s = await owner((r) => answer.approve(r), { mtls: which === 'key' });
    const identity: RelaySpec['identity'] =
      which === 'token' ? { kind: 'token', tokenFile: file } : { kind: 'mtls', cert: pki.client.certFile, key: file };
    const run = await relay(spec(s.url, { identity }));
    expect(rejection(run)).toMatchObject({
      code: 'SUP_ERR_RELAY_CREDENTIALS',
      message: expect.stringContaining(`has permissions 0${mode.toString(8)}, which are too open`),
    });
    expect(s.requests).toEqual([]);
    expect(run.auditText).not.toContain(pki.token);
  });

  it('a token with a line break inside (header smuggling) is refused', async () => {
    const file = join(dir, 'two-lines.token');
    await writeFile(file, 'abc\nX-Evil: 1\n', { mode: 0o600 });
    const run = await relay(spec('https://localhost:1/attest', { identity: { kind: 'token', tokenFile: file } }));
    expect(rejection(run)).toMatchObject({
      code: 'SUP_ERR_RELAY_CREDENTIALS',
      message: expect.stringContaining('is not one bearer token'),
    });
    expect(run.outcome.approved === false && run.outcome.error.message).not.toContain('X-Evil');
  });

  it('a CA file that is not PEM, or missing', async () => {
    const run = await relay(spec('https://localhost:1/attest', { ca: pki.tokenFile }));
    expect(rejection(run)).toMatchObject({
      code: 'SUP_ERR_RELAY_CREDENTIALS',
      message: expect.stringContaining('holds no PEM certificate'),
    });
    const missing = await relay(spec('https://localhost:1/attest', { ca: join(dir, 'nope.crt') }));
    expect(rejection(missing)).toMatchObject({ code: 'SUP_ERR_RELAY_CREDENTIALS', message: expect.stringContaining('cannot be read') });
  });
});
