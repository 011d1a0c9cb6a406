// The owner service's pure decision: approve, inject (the packet opens under the owner's keys for
// this measurement only), and a reject for every reason; SNP records; and the replay memory
// (reservations, durable entries that survive a reopen, a corrupt state file refused).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decideAttestation, type LoadedSevGuest, type LoadedSnpGuest } from '../../../src/attestation/owner-decide.js';
import { AnsweredStore } from '../../../src/attestation/owner-replay.js';
import { ATTEST_REQUEST_SCHEMA, readAttestRequest, replayKey, type AttestRequest } from '../../../src/attestation/relay-protocol.js';
import { verifyLaunchSecret } from '../../../src/sev/launch-secret.js';
import { computeMeasurementMac, encodeMeasurement } from '../../../src/sev/measurement.js';
import { buildIdAuth, buildIdBlock, snpKeyDigest } from '../../../src/sev/snp-id-block.js';
import { buildRecord, type MeasurementRecord } from '../../../src/vm/record.js';
import { buildSnpRecord } from '../../../src/vm/snp-record.js';
import { snpMeasured } from '../../support/snp-measured.js';
import { catchSupervisorErrorAsync } from '../../support/catch-error.js';

const tik = randomBytes(16);
const tek = randomBytes(16);
const digest = randomBytes(32);
const HOST = { apiMajor: 1, apiMinor: 55, buildId: 21 };

function record(
  o: { policy?: number; digest?: Buffer; tik?: Buffer; vm?: string; state?: string; api?: typeof HOST; sevType?: 'sev' | 'sev-es' } = {},
): MeasurementRecord {
  const policy = o.policy ?? 0x1;
  const api = o.api ?? HOST;
  const mnonce = randomBytes(16);
  const mac = computeMeasurementMac({ tik: o.tik ?? tik, ...api, policy, digest: o.digest ?? digest, mnonce });
  return buildRecord({
    vm: o.vm ?? 'web1',
    capturedAt: new Date('2026-12-02T04:00:00Z'),
    platform: 'simulated',
    sevType: o.sevType ?? 'sev',
    reported: { ...api, policy, state: o.state ?? 'launch-secret' },
    expectedPolicy: policy,
    measurement: encodeMeasurement(mac, mnonce),
    mnonce,
    launch: {
      firmware: null,
      kernel: null,
      initrd: null,
      cmdline: null,
      kernelHashes: false,
      vcpus: 1,
      cpuModel: 'EPYC',
      qemuVersion: '7.2.22',
    },
    expectedLaunchDigest: digest.toString('hex'),
    ...(o.sevType === 'sev-es' ? { cpuSignature: { family: 23, model: 1, stepping: 2 } } : {}),
  });
}

function request(rec: unknown, launchId = 'launch-1'): AttestRequest {
  const read = readAttestRequest({
    schema: ATTEST_REQUEST_SCHEMA,
    host: 'node-7',
    vm: 'web1',
    launchId,
    attempt: 1,
    sentAt: '2026-12-02T04:00:00.000Z',
    record: rec,
  });
  if (!read.ok) throw new Error(read.problem);
  return read.request;
}

const guest: LoadedSevGuest = {
  type: 'sev',
  host: 'node-7',
  vm: 'web1',
  digest,
  policies: [0x1, 0x3],
  minApi: { major: 1, minor: 50 },
  buildIds: [20, 21],
  tik,
  tek,
  secrets: [],
  firmware: null,
};

describe('decideAttestation (SEV, SEV-ES)', () => {
  it('approves a measurement of the owner digest under its TIK with an allowed policy', () => {
    const d = decideAttestation(request(record()), guest);
    expect(d.verdict).toBe('approve');
    expect(d.reasons).toContain('the measurement matches the launch digest of your inputs');
  });

  it('injects a packet that only this launch accepts', () => {
    const secret = Buffer.from('correct horse battery staple');
    const rec = record({ policy: 0x3 });
    const d = decideAttestation(request(rec), { ...guest, secrets: [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: secret }] });
    if (d.verdict !== 'inject') throw new Error(`expected inject, got ${d.verdict}`);
    const mac = Buffer.from(rec.measurement, 'base64').subarray(0, 32);
    expect(verifyLaunchSecret({ tik, tek, measurementMac: mac, header: d.header, payload: d.payload })).toEqual({
      ok: true,
      secrets: [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', length: secret.length }],
    });
    // Another launch's measurement (fresh mnonce, same inputs): the platform refuses the packet.
    const other = Buffer.from(record({ policy: 0x3 }).measurement, 'base64').subarray(0, 32);
    expect(verifyLaunchSecret({ tik, tek, measurementMac: other, header: d.header, payload: d.payload }).ok).toBe(false);
  });

  const es = { ...guest, type: 'sev-es' as const, policies: [0x5] };
  const rejects: readonly [string, AttestRequest, LoadedSevGuest, string][] = [
    ['not a record', request({ schema: 'x' }), guest, 'the record is not a sevsup.measurement/v1 measurement record (SEV, SEV-ES)'],
    ['another VM', request(record({ vm: 'web2' })), guest, 'the record is for another VM than the request names'],
    ['another type', request(record({ policy: 0x5, sevType: 'sev-es' })), guest, 'the record is an sev-es launch; the owner expects sev'],
    [
      'state running',
      request(record({ state: 'running' })),
      guest,
      'the record was captured in SEV state "running", not launch-secret (held before the first cont)',
    ],
    ['policy not allowed', request(record({ policy: 0x0 })), guest, 'policy 0x0 is not one the owner allows (0x1, 0x3)'],
    [
      'another digest (changed kernel)',
      request(record({ digest: randomBytes(32) })),
      guest,
      'the measurement does not match: the VM is not trustworthy (different inputs, policy, platform or TIK)',
    ],
    ['another TIK', request(record({ tik: randomBytes(16) })), guest, 'the measurement does not match'],
    ['old API', request(record({ api: { ...HOST, apiMinor: 40 } })), guest, 'SEV API 1.40 is older than 1.50'],
    ['build id', request(record({ api: { ...HOST, buildId: 3 } })), guest, 'build id 3 is not one of the allowed 20, 21'],
    ['ES with wrong policy', request(record({ policy: 0x7, sevType: 'sev-es' })), es, 'policy 0x7 is not one the owner allows (0x5)'],
    [
      'malformed measurement',
      request({ ...record(), measurement: Buffer.alloc(47).toString('base64') }),
      guest,
      'cannot verify: measurement:',
    ],
  ];
  /** Rejects whose MAC verified under the TIK (remembered against replay); the others are not. */
  const authenticated = new Set(['policy not allowed', 'old API', 'build id', 'ES with wrong policy']);
  it.each(rejects)('rejects %s', (name, req, g, reason) => {
    const d = decideAttestation(req, g);
    expect(d.verdict).toBe('reject');
    expect(d.reasons.some((r) => r.startsWith(reason))).toBe(true);
    expect(d).toMatchObject({ authenticated: authenticated.has(name) });
  });

  it('never puts key or secret bytes in reasons', () => {
    const secret = Buffer.from('s3cr3t-s3cr3t-s3cr3t');
    for (const req of [request(record()), request(record({ digest: randomBytes(32) }))]) {
      const d = decideAttestation(req, { ...guest, secrets: [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: secret }] });
      const text = d.reasons.join('\n');
      for (const b of [tik, tek, secret]) for (const enc of ['hex', 'base64'] as const) expect(text).not.toContain(b.toString(enc));
      expect(text).not.toContain('s3cr3t');
    }
  });
});

describe('decideAttestation (SNP launch records)', () => {
  // Records as the daemon writes them (vm/snp-record.ts buildSnpRecord), with a real ID block.
  const snpDigest = randomBytes(48);
  const idKey = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
  const snpHostData = randomBytes(32);
  const snp: LoadedSnpGuest = {
    type: 'snp',
    host: 'node-7',
    vm: 'web1',
    digest: snpDigest,
    policy: 0x30000n,
    hostData: snpHostData,
    idKeyDigest: snpKeyDigest(idKey),
  };
  const snpRecord = (
    o: {
      digest?: Buffer;
      policy?: bigint;
      hostData?: Buffer | null;
      idBlock?: boolean;
      vm?: string;
      state?: string;
      qemuVersion?: string;
    } = {},
  ): Record<string, unknown> => {
    const d = o.digest ?? snpDigest;
    const policy = o.policy ?? 0x30000n;
    const block = buildIdBlock({ launchDigest: d, familyId: Buffer.alloc(16), imageId: Buffer.alloc(16), guestSvn: 0, policy });
    const hostData = o.hostData === undefined ? snpHostData : o.hostData;
    const r = buildSnpRecord({
      vm: o.vm ?? 'web1',
      capturedAt: new Date('2026-12-02T04:00:00Z'),
      platform: 'simulated',
      reported: { snpPolicy: policy, ...HOST, state: o.state ?? 'launch-update' },
      measured: snpMeasured(d, { firmwareDigest: randomBytes(48) }),
      kernel: null,
      initrd: null,
      cmdline: null,
      kernelHashes: false,
      cpuModel: 'EPYC-Milan',
      qemuVersion: o.qemuVersion ?? '10.0.13',
      hostData: hostData === null ? null : { base64: hostData.toString('base64'), path: null },
      idBlock:
        o.idBlock === false
          ? null
          : { block: block.toString('base64'), auth: buildIdAuth(block, idKey).idAuth.toString('base64'), blockPath: '/b', authPath: '/a' },
    });
    return JSON.parse(JSON.stringify(r)) as Record<string, unknown>;
  };
  it('approves the expected digest, policy, host data and ID key', () => {
    expect(decideAttestation(request(snpRecord()), snp).verdict).toBe('approve');
  });
  it('approves a simulated record whose QEMU is the 7.2 the simulator ran underneath (which QEMU ran is not the criterion)', () => {
    expect(decideAttestation(request(snpRecord({ qemuVersion: '7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)' })), snp).verdict).toBe('approve');
  });
  it.each([
    ['digest', { digest: randomBytes(48) }, "the launch digest is not the owner's expected digest"],
    ['policy', { policy: 0x70000n }, 'policy 0x70000 is not the expected 0x30000'],
    ['host data', { hostData: Buffer.alloc(32) }, 'host data differs from the expected'],
    ['no host data', { hostData: null }, 'the launch has no host data; the owner expects some'],
    ['no ID block', { idBlock: false }, 'the launch has no ID block; the owner expects one signed by its ID key'],
    ['VM', { vm: 'web2' }, 'the record is for another VM than the request names'],
    ['state', { state: 'running' }, 'the SNP record was captured in state "running", not launch-update (held before the first run)'],
  ])('rejects another %s', (_n, change, reason) => {
    const d = decideAttestation(request(snpRecord(change)), snp);
    expect(d).toEqual({ verdict: 'reject', reasons: [reason], authenticated: false });
  });
  it.each([
    [
      'an SEV record',
      (r: Record<string, unknown>) => ({ ...r, sevType: 'sev' }),
      'the record is not an SNP launch record (sevType sev-snp)',
    ],
    [
      'a record of another writer (policy as a number)',
      (r: Record<string, unknown>) => ({ ...r, policy: 0x30000 }),
      'the SNP record is not a well-formed sevsup.snp-launch/v1 record (docs/snp-attestation.md)',
    ],
    [
      'a record without its schema',
      (r: Record<string, unknown>) => ({ ...r, schema: undefined }),
      'the SNP record is not a well-formed sevsup.snp-launch/v1 record (docs/snp-attestation.md)',
    ],
    [
      'a short digest',
      (r: Record<string, unknown>) => ({ ...r, expectedLaunchDigest: 'ab'.repeat(32) }),
      'the SNP record is not a well-formed sevsup.snp-launch/v1 record (docs/snp-attestation.md)',
    ],
  ])("rejects %s through the record module's narrowing", (_n, change, reason) => {
    expect(decideAttestation(request(change(snpRecord())), snp)).toEqual({ verdict: 'reject', reasons: [reason], authenticated: false });
  });

  it('an SNP record for an SEV guest is rejected', () => {
    expect(decideAttestation(request(snpRecord()), guest).verdict).toBe('reject');
  });
});

describe('readAttestRequest', () => {
  const good = {
    schema: ATTEST_REQUEST_SCHEMA,
    host: 'node-7',
    vm: 'web1',
    launchId: 'a-1',
    attempt: 1,
    sentAt: '2026-12-02T04:00:00.000Z',
    record: {},
  };
  it.each([
    ['an array', [], 'the body is not a JSON object'],
    ['an extra key', { ...good, extra: 1 }, 'unknown key in the request (1)'],
    ['no record', { ...good, record: undefined }, 'record is not an object'],
    ['a bad schema', { ...good, schema: 'v0' }, `schema is not ${ATTEST_REQUEST_SCHEMA}`],
    ['a bad host', { ...good, host: 'a b' }, 'host is not a host name'],
    ['attempt 0', { ...good, attempt: 0 }, 'attempt is not a positive integer'],
    ['a launch id with quotes', { ...good, launchId: '"x"' }, 'launchId is not an id (1 to 128 of A-Z a-z 0-9 . _ : -)'],
  ])('refuses %s', (_n, value, problem) => {
    expect(readAttestRequest(value)).toEqual({ ok: false, problem });
  });
});

describe('AnsweredStore (replay)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sevsup-owner-replay-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const entry = { at: '2026-12-02T04:00:00.000Z', host: 'node-7', vm: 'web1', launchId: 'l1', decision: 'approve' as const };
  const launch = { host: 'node-7', vm: 'web1', launchId: 'l1' };
  const key = (rec: unknown, launchId = 'l1'): string => {
    const k = replayKey(request(rec, launchId), 'sev');
    if (k === null) throw new Error('no replay key');
    return k;
  };

  it('refuses a second claim while in flight and after the answer, across a restart', async () => {
    const file = join(dir, 'state.json');
    const store = await AnsweredStore.open(file);
    const k = key(record());
    expect(store.claim(k, launch)).toEqual({ kind: 'claimed' });
    expect(store.claim(k, { ...launch, launchId: 'l2' })).toEqual({ kind: 'in-flight', sameLaunch: false });
    expect(store.claim(k, launch)).toEqual({ kind: 'in-flight', sameLaunch: true });
    store.claim('other', { ...launch, launchId: 'l2' });
    await Promise.all([store.commit(k, entry), store.commit('other', { ...entry, launchId: 'l2' })]);
    expect(store.claim(k, { ...launch, launchId: 'l3' })).toEqual({ kind: 'replay', entry });
    const again = await AnsweredStore.open(file);
    expect(again.claim(k, { ...launch, host: 'node-9' })).toEqual({ kind: 'replay', entry });
    expect(again.size).toBe(2);
    expect(JSON.parse(readFileSync(file, 'utf8')).schema).toBe('sevsup.owner-answered/v1');
  });

  it('the same launch asking again (a retry, e.g. after a daemon restart) is a retry, not a replay, across a restart', async () => {
    const file = join(dir, 'retry.json');
    const store = await AnsweredStore.open(file);
    const k = key(record());
    store.claim(k, launch);
    await store.commit(k, entry);
    const again = await AnsweredStore.open(file);
    expect(again.claim(k, launch)).toEqual({ kind: 'retry', entry });
    // While that retry is decided, the launch's next attempt waits; another launch is a replay.
    expect(again.claim(k, launch)).toEqual({ kind: 'in-flight', sameLaunch: true });
    again.release(k);
    expect(again.claim(k, { ...launch, vm: 'web2' })).toEqual({ kind: 'replay', entry });
  });

  it("bounds each guest's entries (max-answered): past it new evidence is refused, other guests and retries go on", async () => {
    const store = await AnsweredStore.open(join(dir, 'bounded.json'), { maxPerGuest: 2 });
    for (const id of ['a', 'b']) {
      expect(store.claim(`k-${id}`, { ...launch, launchId: id }).kind).toBe('claimed');
      await store.commit(`k-${id}`, { ...entry, launchId: id });
    }
    expect(store.claim('k-c', { ...launch, launchId: 'c' })).toEqual({ kind: 'full', limit: 2 });
    expect(store.claim('k-a', { ...launch, launchId: 'a' }).kind).toBe('retry');
    store.release('k-a');
    expect(store.claim('k-x', { ...launch, vm: 'web2', launchId: 'x' }).kind).toBe('claimed');
    // Claims in flight count: two requests at once cannot both take the last place.
    const small = await AnsweredStore.open(join(dir, 'bounded-2.json'), { maxPerGuest: 1 });
    expect(small.claim('k-1', launch).kind).toBe('claimed');
    expect(small.claim('k-2', { ...launch, launchId: 'l2' })).toEqual({ kind: 'full', limit: 1 });
    // The bound holds across a restart (counted from the file).
    const reopened = await AnsweredStore.open(join(dir, 'bounded.json'), { maxPerGuest: 2 });
    expect(reopened.claim('k-c', { ...launch, launchId: 'c' })).toEqual({ kind: 'full', limit: 2 });
  });

  it('a released claim can be taken again; a corrupt state file refuses to start', async () => {
    const store = await AnsweredStore.open(join(dir, 'fresh.json'));
    expect(store.claim('k', launch).kind).toBe('claimed');
    store.release('k');
    expect(store.claim('k', launch).kind).toBe('claimed');
    writeFileSync(join(dir, 'bad.json'), '{"schema":"nope"}');
    expect((await catchSupervisorErrorAsync(() => AnsweredStore.open(join(dir, 'bad.json')))).code).toBe('SUP_ERR_OWNER_STATE');
  });

  it('a state file with an entry it cannot read refuses to start (dropping it would re-open that replay)', async () => {
    const file = join(dir, 'damaged.json');
    const answered = { 'sev-measurement:aa': entry, 'sev-measurement:bb': { ...entry, decision: 'maybe' } };
    writeFileSync(file, JSON.stringify({ schema: 'sevsup.owner-answered/v1', answered }));
    const e = await catchSupervisorErrorAsync(() => AnsweredStore.open(file));
    expect(e.code).toBe('SUP_ERR_OWNER_STATE');
    expect(e.message).toContain('sev-measurement:bb');
  });

  it('a failed write remembers nothing and says why', async () => {
    const store = await AnsweredStore.open(join(dir, 'missing-dir', 'state.json'));
    store.claim('k', launch);
    const e = await catchSupervisorErrorAsync(() => store.commit('k', entry));
    expect(e.code).toBe('SUP_ERR_OWNER_STATE');
    expect(store.claim('k', { ...launch, launchId: 'l9' }).kind).toBe('claimed');
  });

  it('keys SEV requests by measurement, whatever the launch id; SNP requests are not keyed (nothing in them is fresh)', () => {
    const rec = record();
    expect(replayKey(request(rec, 'a'), 'sev')).toBe(replayKey(request(rec, 'b'), 'sev'));
    expect(replayKey(request(rec, 'a'), 'sev')).toMatch(/^sev-measurement:[0-9a-f]{64}$/);
    expect(replayKey(request({ sevType: 'sev-snp' }, 'a'), 'snp')).toBeNull();
    // A record without a measurement cannot be authenticated: nothing to remember.
    expect(replayKey(request({ sevType: 'sev' }, 'a'), 'sev')).toBeNull();
  });
});
