// Fetching certificates from a loopback fake of AMD's key server: cache hits ask nothing, 429 waits
// at least Retry-After and then succeeds, a too-long Retry-After and a lasting 429 are errors that
// say so, 404 is final (one request), a corrupt or wrong certificate is never cached, --offline
// never touches the network.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { listCache, lookupReportCerts, vcekPath } from '../../../src/attestation/kds-cache.js';
import { fetchChain, fetchCrl, fetchVcek, retryAfterMs, type KdsOptions } from '../../../src/attestation/kds-fetch.js';
import { hasCode } from '../../../src/errors.js';
import { derToPem } from '../../../src/sev/snp-cert-builder.js';
import { encodeTcb } from '../../../src/sev/snp-report.js';
import { startFakeKds, type FakeKds } from '../../support/fake-kds.js';
import { chainFor, CHIP_ID, TCB } from '../../support/snp-fixtures.js';

const chain = chainFor({ product: 'Milan', kind: 'vcek' });
const tcb = encodeTcb(TCB.Milan, 'milan-genoa');
const key = { product: 'Milan' as const, chipId: CHIP_ID, reportedTcb: tcb };
const vcekUrlPath = `/vcek/v1/Milan/${CHIP_ID.toString('hex')}`;
const chainPem = derToPem(chain.intermediate) + derToPem(chain.ark);

let kds: FakeKds;
let dir: string;
let opts: KdsOptions;
beforeAll(async () => {
  kds = await startFakeKds();
  kds.serve('/vcek/v1/Milan/cert_chain', Buffer.from(chainPem));
  kds.serve(vcekUrlPath, chain.leaf, 'blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115');
  kds.serve('/vcek/v1/Milan/crl', Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]));
});
afterAll(async () => {
  await kds.close();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sevsup-kds-'));
  kds.requests.length = 0;
  opts = { cacheDir: dir, baseUrl: kds.base, backoffMs: 10, retries: 3 };
  return () => rmSync(dir, { recursive: true, force: true });
});

const errorOf = async (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe('certs fetch against a fake key server', () => {
  it('fetches the chain, the VCEK (query from REPORTED_TCB) and the CRL once, then serves the cache', async () => {
    expect((await fetchChain('Milan', 'vcek', opts)).source).toBe('network');
    const v = await fetchVcek(key, opts);
    expect(v.source).toBe('network');
    expect(v.data).toEqual(chain.leaf);
    expect((await fetchCrl('Milan', opts)).source).toBe('network');
    expect(kds.requests.map((r) => r.url)).toEqual([
      '/vcek/v1/Milan/cert_chain',
      `${vcekUrlPath}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`,
      '/vcek/v1/Milan/crl',
    ]);
    // Cache hits: no request at all, even without --offline.
    expect((await fetchVcek(key, opts)).source).toBe('cache');
    expect((await fetchChain('Milan', 'vcek', opts)).source).toBe('cache');
    expect(kds.requests).toHaveLength(3);
    expect(await listCache(dir)).toEqual([
      'Milan/cert_chain.pem',
      'Milan/crl.der',
      `Milan/vcek/${CHIP_ID.toString('hex')}/${tcb.toString(16).padStart(16, '0')}.der`,
    ]);
    const hit = await lookupReportCerts(dir, { product: null, chipId: CHIP_ID, reportedTcb: tcb, kind: 'vcek' });
    expect(hit?.product).toBe('Milan');
    expect(hit?.leaf).toEqual(chain.leaf);
  });

  it('waits at least Retry-After on 429, then succeeds', async () => {
    kds.script('/vcek/v1/Milan/cert_chain', { status: 429, retryAfter: '1' });
    const waits: number[] = [];
    await fetchChain('Milan', 'vcek', { ...opts, onWait: (w) => waits.push(w.ms) });
    expect(kds.requests).toHaveLength(2);
    const [first, second] = kds.requests;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(990);
    expect(waits[0]).toBe(1000);
  });

  it('gives up on a Retry-After longer than allowed without waiting it, and says when to return', async () => {
    kds.script('/vcek/v1/Milan/cert_chain', { status: 429, retryAfter: '3600' });
    const e = await errorOf(fetchChain('Milan', 'vcek', { ...opts, maxRetryAfterMs: 5000 }));
    expect(hasCode(e, 'SUP_ERR_KDS_RATE_LIMITED')).toBe(true);
    expect(String(e)).toMatch(/3600 s/);
    expect(kds.requests).toHaveLength(1);
  });

  it('a lasting 429 ends after the retries, and nothing is cached', async () => {
    kds.script('/vcek/v1/Milan/cert_chain', { status: 429 }, { status: 429 }, { status: 429 });
    const e = await errorOf(fetchChain('Milan', 'vcek', { ...opts, retries: 2 }));
    expect(hasCode(e, 'SUP_ERR_KDS_RATE_LIMITED')).toBe(true);
    expect(kds.requests).toHaveLength(3);
    expect(await listCache(dir)).toEqual([]);
  });

  it('retries a 503 with backoff', async () => {
    kds.script('/vcek/v1/Milan/crl', { status: 503 });
    expect((await fetchCrl('Milan', opts)).source).toBe('network');
    expect(kds.requests).toHaveLength(2);
  });

  it('404 is final: one request', async () => {
    const e = await errorOf(fetchVcek({ ...key, reportedTcb: tcb + 1n }, opts));
    expect(hasCode(e, 'SUP_ERR_KDS_NOT_FOUND')).toBe(true);
    expect(kds.requests).toHaveLength(1);
  });

  it('never caches a corrupt certificate or a VCEK for another chip', async () => {
    kds.script(vcekUrlPath, { status: 200, body: Buffer.from('<html>not a certificate</html>') });
    expect(hasCode(await errorOf(fetchVcek(key, opts)), 'SUP_ERR_KDS_BAD_CERT')).toBe(true);
    const other = chainFor({ product: 'Milan', kind: 'vcek' }, { chipId: Buffer.alloc(64, 1) });
    kds.script(vcekUrlPath, { status: 200, body: other.leaf });
    expect(String(await errorOf(fetchVcek(key, opts)))).toMatch(/hwID/);
    kds.script('/vcek/v1/Milan/cert_chain', { status: 200, body: Buffer.from(derToPem(chain.ark)) });
    expect(hasCode(await errorOf(fetchChain('Milan', 'vcek', opts)), 'SUP_ERR_KDS_BAD_CERT')).toBe(true);
    expect(await listCache(dir)).toEqual([]);
  });

  it('refuses an answer larger than the cap without keeping it', async () => {
    kds.script('/vcek/v1/Milan/crl', { status: 200, body: Buffer.alloc(4096, 0x30) });
    const e = await errorOf(fetchCrl('Milan', { ...opts, maxBytes: 1024 }));
    expect(hasCode(e, 'SUP_ERR_KDS_BAD_CERT')).toBe(true);
    expect(String(e)).toMatch(/larger than 1024 bytes/);
    // Without a Content-Length the stream is cut at the cap.
    kds.script('/vcek/v1/Milan/crl', { status: 200, body: Buffer.alloc(4096, 0x30), chunked: true });
    expect(String(await errorOf(fetchCrl('Milan', { ...opts, maxBytes: 1024 })))).toMatch(/larger than 1024 bytes/);
    expect(kds.requests).toHaveLength(2);
    expect(await listCache(dir)).toEqual([]);
  });

  it('--offline reads the cache and never the network', async () => {
    const e = await errorOf(fetchVcek(key, { ...opts, offline: true }));
    expect(hasCode(e, 'SUP_ERR_CERTS_OFFLINE')).toBe(true);
    expect(String(e)).toContain(vcekPath(dir, key));
    expect(kds.requests).toHaveLength(0);
    await fetchVcek(key, opts);
    expect((await fetchVcek(key, { ...opts, offline: true })).source).toBe('cache');
    expect(kds.requests).toHaveLength(1);
    expect(readFileSync(vcekPath(dir, key))).toEqual(chain.leaf);
  });
});

describe('Retry-After', () => {
  it('reads seconds and HTTP dates', () => {
    expect(retryAfterMs('5')).toBe(5000);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(10_000);
    expect(retryAfterMs('soon')).toBeNull();
    expect(retryAfterMs(null)).toBeNull();
  });
});
