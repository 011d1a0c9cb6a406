// The host's certificate keeper against a loopback fake of AMD's key server: the platform's TCB
// read at each refresh, a change detected and its VCEK fetched once (the chain stays cached), the
// tables rewritten with the new VCEK, offline never asking, a failed fetch backing off instead of
// hammering, an unknown platform leaving no table behind.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HostCertKeeper, type KeeperEvent } from '../../../src/attestation/host-certs.js';
import { amdPinnedArks } from '../../../src/attestation/verify-snp.js';
import type { PlatformTcbSource, SnpPlatformIdentity, SnpPlatformReading } from '../../../src/host/snp-platform.js';
import { derToPem } from '../../../src/sev/snp-cert-builder.js';
import { CERT_TABLE_GUID, decodeCertTable } from '../../../src/sev/snp-certs.js';
import { encodeTcb, type TcbParts } from '../../../src/sev/snp-report.js';
import { startFakeKds, type FakeKds } from '../../support/fake-kds.js';
import { chainFor, CHIP_ID, pinnedFor, TCB } from '../../support/snp-fixtures.js';

const OLD: TcbParts = TCB.Milan;
const NEW: TcbParts = { ...TCB.Milan, snp: 9, microcode: 116 };
const query = (t: TcbParts): string => `blSPL=${t.bootloader}&teeSPL=${t.tee}&snpSPL=${t.snp}&ucodeSPL=${t.microcode}`;
const vcekPathAtKds = `/vcek/v1/Milan/${CHIP_ID.toString('hex')}`;
const chainOld = chainFor({ product: 'Milan', kind: 'vcek' });
const chainNew = chainFor({ product: 'Milan', kind: 'vcek' }, { tcb: NEW });
const identity = (t: TcbParts): SnpPlatformIdentity => ({ product: 'Milan', chipId: CHIP_ID, reportedTcb: encodeTcb(t, 'milan-genoa') });

/** A source the test moves: a firmware update is `platform.now = …`. */
function movableSource(first: SnpPlatformReading): PlatformTcbSource & { now: SnpPlatformReading } {
  const s = { name: 'test', now: first, read: () => Promise.resolve(s.now) };
  return s;
}
const known = (t: TcbParts): SnpPlatformReading => ({ known: true, identity: identity(t), source: 'test' });

let kds: FakeKds;
let dir: string;
let cache: string;
beforeAll(async () => {
  kds = await startFakeKds();
  kds.serve('/vcek/v1/Milan/cert_chain', Buffer.from(derToPem(chainOld.intermediate) + derToPem(chainOld.ark)));
});
afterAll(async () => {
  await kds.close();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sevsup-hostcerts-'));
  cache = join(dir, 'cache');
  kds.requests.length = 0;
  kds.serve(vcekPathAtKds, chainOld.leaf, query(OLD));
  return () => rmSync(dir, { recursive: true, force: true });
});

function keeper(
  source: PlatformTcbSource,
  over: { offline?: boolean; now?: () => number; tables?: string[]; pinned?: ReturnType<typeof pinnedFor> } = {},
) {
  const events: KeeperEvent[] = [];
  const tables = over.tables ?? [join(dir, 'a.bin'), join(dir, 'b.bin')];
  const k = new HostCertKeeper({
    cacheDir: cache,
    offline: over.offline ?? false,
    source,
    tables: () => tables,
    pinned: over.pinned ?? pinnedFor(chainOld),
    kds: { baseUrl: kds.base, retries: 1, backoffMs: 10 },
    failureBackoffMs: 60_000,
    ...(over.now === undefined ? {} : { now: over.now }),
    onEvent: (e) => events.push(e),
  });
  return { k, events, tables };
}

const leafOf = (file: string): Buffer | undefined => decodeCertTable(readFileSync(file)).find((e) => e.guid === CERT_TABLE_GUID.vcek)?.data;

describe('HostCertKeeper', () => {
  it('fills the cache at start, keeps it while the TCB stands, and fetches only the new VCEK when it changes', async () => {
    const platform = movableSource(known(OLD));
    const { k, events, tables } = keeper(platform);
    expect(await k.refresh('start')).toBe('network');
    expect(kds.requests.map((r) => r.url)).toEqual(['/vcek/v1/Milan/cert_chain', `${vcekPathAtKds}?${query(OLD)}`]);
    for (const t of tables) {
      const entries = decodeCertTable(readFileSync(t)).map((e) => e.guid);
      expect(entries).toEqual([CERT_TABLE_GUID.ark, CERT_TABLE_GUID.ask, CERT_TABLE_GUID.vcek]);
      expect(leafOf(t)).toEqual(chainOld.leaf);
      expect(statSync(t).mode & 0o777).toBe(0o644);
    }
    expect(k.status()).toMatchObject({ tables: 'ready', networkFetches: 1, tcbChanges: 0, lastError: null });

    expect(await k.refresh('interval')).toBe('unchanged');
    expect(kds.requests).toHaveLength(2);

    // A firmware update: the platform now reports NEW.
    kds.serve(vcekPathAtKds, chainNew.leaf, query(NEW));
    platform.now = known(NEW);
    expect(await k.refresh('interval')).toBe('network');
    expect(kds.requests.map((r) => r.url).slice(2)).toEqual([`${vcekPathAtKds}?${query(NEW)}`]);
    for (const t of tables) expect(leafOf(t)).toEqual(chainNew.leaf);
    expect(k.status()).toMatchObject({ tables: 'ready', tcbChanges: 1, networkFetches: 2 });
    expect(events).toContainEqual(expect.objectContaining({ kind: 'tcb-changed' }));

    // Back to OLD (a rollback of the configured TCB): the cache answers, the key server is not asked.
    platform.now = known(OLD);
    expect(await k.refresh('interval')).toBe('cache');
    expect(kds.requests).toHaveLength(3);
    for (const t of tables) expect(leafOf(t)).toEqual(chainOld.leaf);
  });

  it('offline never touches the network: a miss serves the empty table, a later import is picked up', async () => {
    const { k, events, tables } = keeper(movableSource(known(OLD)), { offline: true });
    expect(await k.refresh('start')).toBe('offline-miss');
    expect(kds.requests).toHaveLength(0);
    for (const t of tables) expect(decodeCertTable(readFileSync(t))).toEqual([]);
    expect(k.status()).toMatchObject({ tables: 'empty', lastError: { code: 'SUP_ERR_CERTS_OFFLINE' } });
    expect(events.filter((e) => e.kind === 'error')).toHaveLength(1);
    // Someone fills the cache (an online keeper here; `sevsup certs import` in life).
    const online = keeper(movableSource(known(OLD)), { tables: [] }).k;
    expect(await online.refresh('start')).toBe('network');
    kds.requests.length = 0;
    expect(await k.refresh('interval')).toBe('cache');
    expect(kds.requests).toHaveLength(0);
    for (const t of tables) expect(leafOf(t)).toEqual(chainOld.leaf);
  });

  it('after a failed fetch it waits out its backoff (no request), unless the operator asks; and never serves the old VCEK', async () => {
    let clock = 1_000_000;
    const platform = movableSource(known(OLD));
    const { k, tables } = keeper(platform, { now: () => clock });
    expect(await k.refresh('start')).toBe('network');
    platform.now = known(NEW); // the key server does not know NEW: 404
    expect(await k.refresh('interval')).toBe('failed');
    expect(k.status()).toMatchObject({ tables: 'empty', lastError: { code: 'SUP_ERR_KDS_NOT_FOUND' } });
    for (const t of tables) expect(decodeCertTable(readFileSync(t))).toEqual([]);
    const asked = kds.requests.length;
    expect(await k.refresh('interval')).toBe('deferred');
    expect(kds.requests).toHaveLength(asked);
    clock += 60_001;
    expect(await k.refresh('interval')).toBe('failed');
    expect(kds.requests).toHaveLength(asked + 1);
    // The backoff doubled: 60 s later is still too early.
    clock += 60_001;
    expect(await k.refresh('interval')).toBe('deferred');
    kds.serve(vcekPathAtKds, chainNew.leaf, query(NEW));
    expect(await k.refresh('reload')).toBe('network');
    for (const t of tables) expect(leafOf(t)).toEqual(chainNew.leaf);
  });

  it("never hands guests a chain whose ARK is not pinned (AMD's by default), and does not fetch it again", async () => {
    const { k, tables } = keeper(movableSource(known(OLD)), { pinned: amdPinnedArks() });
    expect(await k.refresh('start')).toBe('failed');
    expect(k.status()).toMatchObject({ tables: 'empty', vcek: null, lastError: { code: 'SUP_ERR_KDS_BAD_CERT' } });
    expect(k.status().lastError?.message).toMatch(/cert_chain\.pem is not AMD's: it is not handed to guests/);
    for (const t of tables) expect(decodeCertTable(readFileSync(t))).toEqual([]);
    const asked = kds.requests.length;
    expect(await k.refresh('reload')).toBe('failed');
    expect(kds.requests).toHaveLength(asked);
  });

  it('a cache that cannot be read after a TCB change empties the tables (never the old VCEK)', async () => {
    const platform = movableSource(known(OLD));
    const { k, tables } = keeper(platform);
    expect(await k.refresh('start')).toBe('network');
    platform.now = known(NEW);
    // The NEW VCEK is in the cache, but the product's chain file is garbage now.
    kds.serve(vcekPathAtKds, chainNew.leaf, query(NEW));
    const other = keeper(movableSource(known(NEW)), { tables: [] }).k;
    expect(await other.refresh('start')).toBe('network');
    writeFileSync(join(cache, 'Milan', 'cert_chain.pem'), 'not a chain');
    expect(await k.refresh('interval')).toBe('failed');
    expect(k.status()).toMatchObject({ tables: 'empty', lastError: { code: 'SUP_ERR_CERTS_CACHE' } });
    for (const t of tables) expect(decodeCertTable(readFileSync(t))).toEqual([]);
  });

  it('an unknown platform writes nothing, removes a stale table at launch, and keeps a known identity when its file breaks', async () => {
    const platform = movableSource({ known: false, reason: 'give snp-platform', source: 'hardware' });
    const { k, events } = keeper(platform);
    expect(await k.refresh('start')).toBe('unknown');
    expect(kds.requests).toHaveLength(0);
    const stale = join(dir, 'stale.bin');
    writeFileSync(stale, 'old table');
    expect(await k.writeTable(stale)).toBe(false);
    expect(existsSync(stale)).toBe(false);
    expect(k.status()).toMatchObject({ tables: 'unknown', platformProblem: 'give snp-platform' });
    expect(events).toContainEqual({ kind: 'error', code: 'SUP_ERR_SNP_PLATFORM', message: 'give snp-platform' });

    platform.now = known(OLD);
    expect(await k.refresh('interval')).toBe('network');
    const launched = join(dir, 'launched.bin');
    expect(await k.writeTable(launched)).toBe(true);
    expect(leafOf(launched)).toEqual(chainOld.leaf);
    platform.now = { known: false, reason: 'facts file: bad line', source: 'file' };
    expect(await k.refresh('interval')).toBe('unknown');
    expect(leafOf(launched)).toEqual(chainOld.leaf);
    expect(k.status()).toMatchObject({ tables: 'ready', platformProblem: 'facts file: bad line' });
  });
});
