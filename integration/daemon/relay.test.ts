// attest: relay end to end on the simulated platform: `sevsup daemon --platform sim` as a real
// process relays each held guest to a real HTTPS owner service on loopback (test/support/
// relay-owner.ts, certificates made once for the file) and acts on the answer: approve → running; inject → the
// secret reaches the platform's secret area, then running; reject → never resumed, the reason in
// the guest's error and the audit; retries until the owner comes up; past the deadline rejected;
// every hostile path fails closed. The API cannot approve a relayed guest without --force. The
// guests' firmware has the test firmware's secret area and halts at its reset vector.
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLaunchSecret } from '../../src/sev/launch-secret.js';
import { auditPathFor } from '../../src/relay/relay.js';
import {
  answer,
  freePort,
  makeRelayPki,
  OwnerServer,
  type Behaviour,
  type ReceivedRequest,
  type RelayPki,
  type TlsPair,
} from '../../test/support/relay-owner.js';
import { SIM, missingPrerequisite, simStatus, testDir } from '../run/harness.js';
import { daemonScope, haltingFirmware, nothingLeft, writeVm, type Daemon, type GuestStatus } from './harness.js';

const missing = missingPrerequisite(SIM);
const scope = daemonScope();

// The certificates (seven RSA keys) are made once for the file: no test changes them.
let pkiDir: { dir: string; remove: () => Promise<void> } | undefined;
let sharedPki: RelayPki;
beforeAll(async () => {
  if (missing !== null) return;
  pkiDir = await testDir();
  sharedPki = await makeRelayPki(pkiDir.dir);
});
afterAll(async () => {
  await pkiDir?.remove();
});
const LUKS_KEY_GUID = '736869e5-84f0-4973-92ec-06879ce3da0b';
const SECRET_TEXT = 'correct horse battery staple';

/** One test's rig: a daemon, the file's PKI, and owner servers closed at the end. */
async function rig(): Promise<{
  dir: string;
  pki: RelayPki;
  daemon: Daemon;
  owner(b: Behaviour, tls?: TlsPair, port?: number): Promise<OwnerServer>;
  close(): Promise<void>;
}> {
  const dir = await scope.dir();
  const pki = sharedPki;
  const daemon = scope.daemon(dir, ['--host-id', 'node-7']);
  const servers: OwnerServer[] = [];
  return {
    dir,
    pki,
    daemon,
    owner: async (behaviour, tls = pki.server, port) => {
      const s = await OwnerServer.start({ tls, behaviour, token: pki.token, ...(port === undefined ? {} : { port }) });
      servers.push(s);
      return s;
    },
    close: async () => {
      for (const s of servers) await s.close();
    },
  };
}

/**
 * A relayed VM config (bearer token) on a firmware with the test firmware's launch-secret area, which
 * halts at its reset vector (the relay, not the guest's code, is the subject).
 */
async function relayVm(dir: string, name: string, pki: RelayPki, url: string, extra: readonly string[] = []): Promise<void> {
  await writeVm(dir, name, [
    await haltingFirmware(dir, 'secret-area'),
    'attest: relay',
    `attest-url: ${url}`,
    `attest-ca: ${pki.caFile}`,
    `attest-token-file: ${pki.tokenFile}`,
    'attest-timeout: 2',
    'hold-timeout: 30',
    ...extra,
  ]);
}

/** Start without waiting for the outcome (a rejected launch fails the start call). */
function launch(daemon: Daemon, vm: string): void {
  void daemon.api('POST', `/v1/vms/${vm}/start`).catch(() => undefined);
}

async function auditOf(status: GuestStatus): Promise<Record<string, unknown>[]> {
  const text = await readFile(auditPathFor(status.record ?? ''), 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The owner's packet for this launch, built with the simulated platform's TIK/TEK (as the owner's session would carry them). */
async function packetFor(dir: string, r: ReceivedRequest, bindTo: 'this' | 'another'): Promise<{ header: Buffer; payload: Buffer }> {
  const sim = simStatus(dir, r.body.vm) as unknown as { tikFile: string; tekFile: string };
  const measurement = Buffer.from(String(r.body.record['measurement']), 'base64');
  const mac = bindTo === 'this' ? measurement.subarray(0, 32) : Buffer.alloc(32, 0x42);
  const packet = buildLaunchSecret({
    tik: await readFile(sim.tikFile),
    tek: await readFile(sim.tekFile),
    measurementMac: mac,
    secrets: [{ guid: LUKS_KEY_GUID, data: Buffer.from(SECRET_TEXT) }],
  });
  return packet;
}

async function stopAll(daemon: Daemon, vms: readonly string[]): Promise<void> {
  for (const vm of vms) {
    const s = await daemon.status(vm).catch(() => null);
    if (s !== null && (s.state === 'running' || s.state === 'held')) await daemon.api('POST', `/v1/vms/${vm}/stop`, { force: true });
  }
}

describe.skipIf(missing !== null)(`attest: relay through the daemon${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it('approve, inject (the secret reaches the platform), reject; the API cannot approve a relayed guest without --force', async () => {
    const r = await rig();
    const payloads: string[] = [];
    const s = await r.owner(async (req) => {
      switch (req.body.vm) {
        case 'approved':
          return answer.approve(req);
        case 'vault': {
          const { header, payload } = await packetFor(r.dir, req, 'this');
          payloads.push(payload.toString('base64'), header.toString('base64'));
          return answer.inject(req, header, payload);
        }
        case 'forged': {
          const { header, payload } = await packetFor(r.dir, req, 'another');
          return answer.inject(req, header, payload);
        }
        case 'refused':
          return answer.reject(req, 'kernel sha256 is not the reference kernel');
        default:
          // 'manual': the owner's service is overloaded; the relay keeps retrying.
          return { status: 503 };
      }
    });
    const vms = ['approved', 'vault', 'forged', 'refused', 'manual'];
    for (const vm of vms) await relayVm(r.dir, vm, r.pki, s.url);
    await r.daemon.start();
    for (const vm of vms) launch(r.daemon, vm);

    const approved = await r.daemon.waitState('approved', ['running', 'failed']);
    expect(approved).toMatchObject({ state: 'running', error: null });
    expect((await auditOf(approved)).map((l) => l['event'])).toEqual(['launch', 'attempt', 'approved']);
    expect(s.requests.find((q) => q.body.vm === 'approved')?.body).toMatchObject({
      host: 'node-7',
      attempt: 1,
      record: { vm: 'approved' },
    });

    const vault = await r.daemon.waitState('vault', ['running', 'failed']);
    expect(vault).toMatchObject({ state: 'running', secretsInjected: 1, error: null });
    expect(simStatus(r.dir, 'vault').injectedSecrets).toEqual([
      expect.objectContaining({ secrets: [{ guid: LUKS_KEY_GUID, length: SECRET_TEXT.length }] }),
    ]);
    expect((await auditOf(vault)).map((l) => l['event'])).toEqual(['launch', 'attempt', 'injected', 'approved']);

    const forged = await r.daemon.waitState('forged', ['running', 'failed']);
    expect(forged).toMatchObject({ state: 'failed', error: { code: 'SUP_ERR_SECRET_REFUSED' } });
    expect(forged.error?.message).toMatch(/the owner's secret could not be injected: .*refused the launch secret/);
    expect(simStatus(r.dir, 'forged')).toMatchObject({ contCount: 0, injectedSecrets: [] });
    expect((await auditOf(forged)).at(-1)).toMatchObject({ event: 'rejected', code: 'SUP_ERR_SECRET_REFUSED' });

    const refused = await r.daemon.waitState('refused', ['running', 'failed']);
    expect(refused).toMatchObject({ state: 'failed', error: { code: 'SUP_ERR_RELAY_REJECTED' } });
    expect(refused.error?.message).toContain('kernel sha256 is not the reference kernel');
    expect(simStatus(r.dir, 'refused').contCount).toBe(0);
    expect((await auditOf(refused)).at(-1)).toMatchObject({
      event: 'rejected',
      reason: expect.stringContaining('not the reference kernel'),
    });

    // Nobody else resumes a relayed guest: approve and inject are refused; reject would be allowed.
    await r.daemon.waitState('manual', ['held']);
    await expect(r.daemon.api('POST', '/v1/vms/manual/attest', { action: 'approve' })).rejects.toMatchObject({
      code: 'SUP_ERR_ATTEST_RELAYED',
    });
    await expect(
      r.daemon.api('POST', '/v1/vms/manual/attest', {
        action: 'inject-secret',
        packetHeader: Buffer.alloc(52).toString('base64'),
        secret: Buffer.alloc(16).toString('base64'),
      }),
    ).rejects.toMatchObject({ code: 'SUP_ERR_ATTEST_RELAYED' });
    expect(await r.daemon.status('manual')).toMatchObject({ state: 'held' });
    expect(simStatus(r.dir, 'manual').contCount).toBe(0);
    // The operator overrides, and it is logged with who asked.
    expect(await r.daemon.api('POST', '/v1/vms/manual/attest', { action: 'approve', force: true })).toMatchObject({ state: 'running' });
    expect(r.daemon.output).toMatch(/"event":"relay-override".*"action":"approve".*"peer":"(uid=\d+ pid=\d+|unknown)/);
    const manualAudit = await auditOf(await r.daemon.status('manual'));
    expect(manualAudit.filter((l) => l['event'] === 'attempt').every((l) => l['status'] === 503)).toBe(true);
    expect(manualAudit.at(-1)).toMatchObject({ event: 'ended' });

    // Secrets: never in the daemon's output or any audit.
    const audits = (
      await Promise.all(vms.map(async (vm) => readFile(auditPathFor((await r.daemon.status(vm)).record ?? ''), 'utf8')))
    ).join('');
    for (const text of [r.daemon.output, audits]) {
      expect(text).not.toContain(r.pki.token);
      for (const p of payloads) expect(text).not.toContain(p);
    }
    await stopAll(r.daemon, vms);
    await r.close();
    r.daemon.signal('SIGTERM');
    expect(await r.daemon.exited()).toEqual({ code: 0, signal: null });
    expect(await nothingLeft(r.dir)).toEqual([]);
  });

  it('the owner down until shortly before the deadline: retries get through; down past it: rejected', async () => {
    const r = await rig();
    const latePort = await freePort();
    const gonePort = await freePort();
    await relayVm(r.dir, 'late', r.pki, `https://localhost:${latePort}/attest`, ['hold-timeout: 6']);
    await relayVm(r.dir, 'gone', r.pki, `https://localhost:${gonePort}/attest`, ['hold-timeout: 3']);
    await r.daemon.start();
    launch(r.daemon, 'late');
    launch(r.daemon, 'gone');
    const held = await r.daemon.waitState('late', ['held']);
    // Come up about 3 s before the late guest's deadline (down for its first 3 s: several attempts
    // refused); the relay's backoff is at most 2 s, so its next attempt still comes in time.
    const upAt = new Date(held.holdDeadline ?? '').getTime() - 3000;
    await delay(Math.max(0, upAt - Date.now()));
    await r.owner((req) => answer.approve(req), r.pki.server, latePort);
    const late = await r.daemon.waitState('late', ['running', 'failed']);
    expect(late).toMatchObject({ state: 'running', error: null });
    const attempts = (await auditOf(late)).filter((l) => l['event'] === 'attempt');
    expect(attempts.length).toBeGreaterThan(1);
    expect(attempts[0]).toMatchObject({ code: 'SUP_ERR_RELAY_UNREACHABLE', reason: expect.stringContaining('ECONNREFUSED') });
    expect(attempts.at(-1)).toMatchObject({ status: 200, decision: 'approve' });

    const gone = await r.daemon.waitState('gone', ['running', 'failed']);
    expect(gone).toMatchObject({ state: 'failed', error: { code: 'SUP_ERR_ATTEST_TIMEOUT' } });
    expect(simStatus(r.dir, 'gone').contCount).toBe(0);
    expect((await auditOf(gone)).every((l) => l['event'] !== 'approved')).toBe(true);
    await stopAll(r.daemon, ['late', 'gone']);
    await r.close();
    r.daemon.signal('SIGTERM');
    expect(await r.daemon.exited()).toEqual({ code: 0, signal: null });
    expect(await nothingLeft(r.dir)).toEqual([]);
  });

  it('a daemon killed mid-relay asks again under the same launch id after re-attaching, so an owner that refuses replays approves it', async () => {
    const r = await rig();
    // The owner as `sevsup owner serve` behaves: evidence answered once per launch; the first
    // attempt is never answered (the daemon dies meanwhile); a new launch id for the same
    // measurement is a replay (409, final).
    const launchOf = new Map<string, string>();
    const owner = await r.owner((req) => {
      const m = String(req.body.record['measurement']);
      const first = launchOf.get(m);
      if (first === undefined) {
        launchOf.set(m, req.body.launchId);
        return { ...answer.approve(req), delayMs: 60_000 };
      }
      if (first !== req.body.launchId) return answer.json({ error: 'replay: this measurement was already answered' }, 409);
      return answer.approve(req);
    });
    await relayVm(r.dir, 'g1', r.pki, owner.url, ['attest-timeout: 30', 'hold-timeout: 60']);
    await r.daemon.start();
    launch(r.daemon, 'g1');
    while (owner.requests.length === 0) await delay(50);
    await r.daemon.crash();
    await r.daemon.start();
    const s = await r.daemon.waitState('g1', ['running', 'failed']);
    expect({ state: s.state, error: s.error }).toEqual({ state: 'running', error: null });
    expect(owner.requests.map((q) => q.body.launchId)).toEqual([owner.requests[0]?.body.launchId, owner.requests[0]?.body.launchId]);
    const audit = await auditOf(s);
    expect(audit.filter((l) => l['event'] === 'launch')).toHaveLength(1);
    expect(simStatus(r.dir, 'g1').contCount).toBe(1);
    await stopAll(r.daemon, ['g1']);
    await r.close();
    r.daemon.signal('SIGTERM');
    expect(await r.daemon.exited()).toEqual({ code: 0, signal: null });
    expect(await nothingLeft(r.dir)).toEqual([]);
  });

  it('credentials that cannot work fail the start before QEMU is spawned, naming the config key and the file', async () => {
    const r = await rig();
    await relayVm(r.dir, 'nokey', r.pki, 'https://localhost:1/attest', [`attest-token-file: ${r.dir}/missing.token`]);
    await r.daemon.start();
    const started = await r.daemon.api('POST', '/v1/vms/nokey/start').then(
      () => null,
      (e: unknown) => e,
    );
    expect(String(started)).toContain(`attest-token-file ${r.dir}/missing.token cannot be read`);
    const s = await r.daemon.waitState('nokey', ['failed']);
    expect(s.error?.code).toBe('SUP_ERR_RELAY_CREDENTIALS');
    // Before spawn: no launch record, no QEMU, nothing to stop.
    expect(s.record ?? null).toBeNull();
    expect(s.error?.message).not.toContain('QEMU was stopped');
    r.daemon.signal('SIGTERM');
    expect(await r.daemon.exited()).toEqual({ code: 0, signal: null });
    expect(await nothingLeft(r.dir)).toEqual([]);
  });

  it('every hostile path ends in a rejected, never-resumed guest with its reason in the audit', async () => {
    const r = await rig();
    const ok: Behaviour = (req) => answer.approve(req);
    const servers = {
      wrongca: await r.owner(ok, r.pki.foreign),
      expired: await r.owner(ok, r.pki.expired),
      wronghost: await r.owner(ok, r.pki.wrongHost),
      redirect: await r.owner(() => ({ status: 302, headers: { location: 'https://localhost:1/' } })),
      slow: await r.owner((req) => ({ ...answer.approve(req), delayMs: 10_000 })),
      huge: await r.owner(() => ({ status: 200, streamBytes: 8 * 1024 * 1024 })),
      otherlaunch: await r.owner(() =>
        answer.json({ schema: 'sevsup.attest-answer/v1', launchId: '00000000-0000-4000-8000-000000000000', decision: 'approve' }),
      ),
      badjson: await r.owner(() => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '{"decision":"approve",}' })),
    };
    const expected: Record<keyof typeof servers, [string, RegExp]> = {
      wrongca: ['SUP_ERR_RELAY_TLS', /TLS check failed/],
      expired: ['SUP_ERR_RELAY_TLS', /expired/i],
      wronghost: ['SUP_ERR_RELAY_TLS', /ALTNAME|altnames/],
      redirect: ['SUP_ERR_RELAY_HTTP', /HTTP 302.*never follows/],
      slow: ['SUP_ERR_ATTEST_TIMEOUT', /hold deadline|nobody approved/],
      huge: ['SUP_ERR_RELAY_ANSWER', /65536/],
      otherlaunch: ['SUP_ERR_RELAY_ANSWER', /another launch/],
      badjson: ['SUP_ERR_RELAY_ANSWER', /not strict JSON/],
    };
    const names = Object.keys(servers) as (keyof typeof servers)[];
    for (const vm of names) await relayVm(r.dir, vm, r.pki, servers[vm].url, vm === 'slow' ? ['hold-timeout: 4', 'attest-timeout: 1'] : []);
    await r.daemon.start();
    for (const vm of names) launch(r.daemon, vm);
    for (const vm of names) {
      const s = await r.daemon.waitState(vm, ['running', 'failed']);
      const [code, reason] = expected[vm];
      expect({ vm, state: s.state, code: s.error?.code }).toEqual({ vm, state: 'failed', code });
      expect(s.error?.message).toMatch(reason);
      expect(simStatus(r.dir, vm).contCount).toBe(0);
      const audit = await auditOf(s);
      expect(audit.some((l) => l['event'] === 'approved')).toBe(false);
      if (vm !== 'slow') expect(audit.at(-1)).toMatchObject({ event: 'rejected', code, reason: expect.stringMatching(reason) });
    }
    expect(servers.wrongca.requests).toEqual([]);
    expect(servers.redirect.requests).toHaveLength(1);
    await r.close();
    r.daemon.signal('SIGTERM');
    expect(await r.daemon.exited()).toEqual({ code: 0, signal: null });
    expect(await nothingLeft(r.dir)).toEqual([]);
  });
});
