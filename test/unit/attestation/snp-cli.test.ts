// `sevsup verify --report` and `sevsup certs` in-process, on a report and chain the test builds:
// exit codes as `sevsup verify` (0, 1, 2, 4), --json with every field and verdict, certificates
// from --certs or from the cache that `certs fetch` (fake key server) or `certs import` filled.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { derToPem } from '../../../src/sev/snp-cert-builder.js';
import { CERT_TABLE_GUID, decodeCertTable } from '../../../src/sev/snp-certs.js';
import { startFakeKds, type FakeKds } from '../../support/fake-kds.js';
import { runCliCaptured } from '../../support/run-cli.js';
import { CHIP_ID, fieldsFor, signedReport, snpCliFiles } from '../../support/snp-fixtures.js';

const { dir, file, chain, certs, ark, remove } = snpCliFiles('sevsup-snp-cli-');
const fields = fieldsFor({ product: 'Genoa', kind: 'vcek', version: 3 });
const report = file('report.bin', signedReport(fields, chain));
const tampered = file(
  'tampered.bin',
  (() => {
    const b = signedReport(fields, chain);
    b[0xc0] = (b[0xc0] ?? 0) ^ 1; // host data
    return b;
  })(),
);
const emptyCache = join(dir, 'empty-cache');

let kds: FakeKds;
beforeAll(async () => {
  kds = await startFakeKds();
  kds.serve('/vcek/v1/Genoa/cert_chain', Buffer.from(derToPem(chain.intermediate) + derToPem(chain.ark)));
  kds.serve(`/vcek/v1/Genoa/${CHIP_ID.toString('hex')}`, chain.leaf);
});
afterAll(async () => {
  await kds.close();
  remove();
});

/** `sevsup verify --report <file>` with the test's chain (--certs) and its ARK as the root of trust. */
const verifyChecked = (reportFile: string, ...more: string[]) =>
  runCliCaptured('verify', '--report', reportFile, '--certs', certs, '--ark', ark, ...more);

const measurement = Buffer.alloc(48, 0x4d).toString('hex');
const hostData = Buffer.alloc(32, 0x48).toString('base64');

describe('sevsup verify --report', () => {
  it('exit 0 for a genuine report, and says when only the evidence was checked', async () => {
    const r = await verifyChecked(report, '--cache', emptyCache);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^OK: SNP report v3, Genoa, VCEK/);
    expect(r.out).toMatch(/OK: the VCEK signature over bytes 0–0x29f verifies/);
    expect(r.out).toMatch(/WARNING: no expectation was given/);
  });

  it("exit 0 with the owner's expectations met; exit 1 naming each one that is not", async () => {
    const good = await verifyChecked(
      report,
      '--expected-measurement',
      measurement,
      '--host-data',
      hostData,
      '--report-data',
      '5a'.repeat(64),
      '--min-tcb',
      'bl=7,snp=14',
      '--vmpl',
      '0',
      '--smt',
      'allowed',
    );
    expect(good.code).toBe(0);
    expect(good.out).not.toMatch(/WARNING/);
    const bad = await verifyChecked(report, '--expected-measurement', '00'.repeat(48), '--min-guest-svn', '9');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/ERROR: the measurement 4d4d.* is not the expected 0000/);
    expect(bad.err).toMatch(/ERROR: guest SVN 2 is below 9/);
  });

  it("exit 1 for a tampered report (the signature), and against AMD's real roots (the chain)", async () => {
    const t = await verifyChecked(tampered);
    expect(t.code).toBe(1);
    expect(t.err).toMatch(/ERROR: the VCEK signature does not verify/);
    const amd = await runCliCaptured('verify', '--report', report, '--certs', certs);
    expect(amd.code).toBe(1);
    expect(amd.err).toMatch(/is not a pinned root/);
  });

  it("--reference-values: the owner's published values, refused when the measurement differs", async () => {
    const rv = (m: string): string =>
      JSON.stringify({
        schema: 'sevsup.snp-reference-values/v1',
        measurement: m,
        policy: '0x30000',
        hostData: '48'.repeat(32),
        minTcb: { bootloader: 7, tee: 0, snp: 14, microcode: 72 },
        inputs: {},
      });
    const good = await verifyChecked(report, '--reference-values', file('rv.json', rv(measurement)));
    expect(good.code).toBe(0);
    expect(good.out).toMatch(/OK: policy 0x30000 is the expected 0x30000/);
    const bad = await verifyChecked(report, '--reference-values', file('rv-bad.json', rv('00'.repeat(48))));
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/ERROR: the measurement/);
    expect((await verifyChecked(report, '--reference-values', file('rv-junk.json', '{'))).code).toBe(4);
  });

  it('--json decodes every field and gives every verdict', async () => {
    const r = await verifyChecked(report, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as {
      valid: boolean;
      product: string;
      checks: { name: string; ok: boolean }[];
      report: Record<string, unknown>;
    };
    expect(j.valid).toBe(true);
    expect(j.product).toBe('Genoa');
    expect(j.checks.map((c) => c.name)).toEqual([
      'structure',
      'ark',
      'chain',
      'product',
      'signature',
      'certificate-tcb',
      'chip-id',
      'policy-debug',
      'policy-migration-agent',
    ]);
    expect(Object.keys(j.report)).toEqual(
      expect.arrayContaining([
        'version',
        'guestSvn',
        'policy',
        'familyId',
        'imageId',
        'vmpl',
        'signatureAlgo',
        'currentTcb',
        'platformInfo',
        'authorKeyEn',
        'maskChipKey',
        'signingKey',
        'reportData',
        'measurement',
        'hostData',
        'idKeyDigest',
        'authorKeyDigest',
        'reportId',
        'reportIdMa',
        'reportedTcb',
        'cpuid',
        'chipId',
        'committedTcb',
        'currentVersion',
        'committedVersion',
        'launchTcb',
        'launchMitVector',
        'currentMitVector',
        'signature',
      ]),
    );
    expect(j.report['reportedTcb']).toMatchObject({ bootloader: 7, snp: 14, microcode: 72 });
  });

  it('exit 4 without certificates, for a report of the wrong size and an unreadable --ark; exit 2 for SEV options', async () => {
    const none = await runCliCaptured('verify', '--report', report, '--cache', emptyCache);
    expect(none.code).toBe(4);
    expect(none.err).toMatch(/no VCEK for this report in the cache .*sevsup certs fetch --report/);
    const short = await runCliCaptured('verify', '--report', file('short.bin', Buffer.alloc(100)), '--certs', certs);
    expect(short.code).toBe(4);
    expect((await runCliCaptured('verify', '--report', report, '--certs', certs, '--ark', join(dir, 'nope.pem'))).code).toBe(4);
    const sev = await runCliCaptured('verify', '--report', report, '--tik', 'x');
    expect(sev.code).toBe(2);
    expect(sev.err).toMatch(/--tik is for SEV/);
    expect((await runCliCaptured('verify', '--report', report, '--host-data', 'abc')).code).toBe(2);
  });
});

describe('sevsup certs', () => {
  it('fetch fills the cache from the key server; verify --report then needs no --certs; --offline never asks', async () => {
    const cache = join(dir, 'cache-fetch');
    const miss = await runCliCaptured('certs', 'fetch', '--report', report, '--cache', cache, '--offline');
    expect(miss.code).toBe(9);
    expect(miss.err).toMatch(/SUP_ERR_CERTS_OFFLINE/);
    expect(kds.requests).toHaveLength(0);
    const f = await runCliCaptured('certs', 'fetch', '--report', report, '--cache', cache, '--kds-url', kds.base);
    expect(f.code).toBe(0);
    expect(f.out).toMatch(/^fetched Genoa VCEK cert_chain/m);
    expect(f.out).toMatch(/^fetched VCEK for chip/m);
    const again = await runCliCaptured('certs', 'fetch', '--report', report, '--cache', cache, '--kds-url', kds.base, '--offline');
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/^cached {2}VCEK for chip/m);
    expect(kds.requests).toHaveLength(2);
    const v = await runCliCaptured('verify', '--report', report, '--cache', cache, '--ark', ark, '--json');
    expect(v.code).toBe(0);
    expect((JSON.parse(v.out) as { certificates: string[] }).certificates[0]).toContain(join(cache, 'Genoa', 'vcek'));
  });

  it('table writes the GHCB certificate table from the cache, and says what to fetch on a miss', async () => {
    const cache = join(dir, 'cache-table');
    const out = join(dir, 'certs.table');
    const miss = await runCliCaptured('certs', 'table', '--report', report, '--cache', cache, '--out', out);
    expect(miss.code).toBe(9);
    expect(miss.err).toMatch(/sevsup certs fetch/);
    expect((await runCliCaptured('certs', 'import', certs, '--cache', cache, '--ark', ark)).code).toBe(0);
    const ok = await runCliCaptured('certs', 'table', '--report', report, '--cache', cache, '--out', out);
    expect(ok.code).toBe(0);
    const entries = decodeCertTable(readFileSync(out));
    expect(entries.map((e) => e.guid)).toEqual([CERT_TABLE_GUID.ark, CERT_TABLE_GUID.ask, CERT_TABLE_GUID.vcek]);
    expect(entries[2]?.data).toEqual(chain.leaf);
    expect(entries[1]?.data).toEqual(chain.intermediate);
  });

  it('import takes what snpguest wrote (with --ark for a non-AMD root) and refuses it without', async () => {
    const cache = join(dir, 'cache-import');
    const refused = await runCliCaptured('certs', 'import', certs, '--cache', cache);
    expect(refused.code).not.toBe(0);
    expect(refused.err).toMatch(/not one of AMD's/);
    const ok = await runCliCaptured('certs', 'import', certs, '--cache', cache, '--ark', ark);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/imported .*Genoa\/cert_chain\.pem/);
    expect((await runCliCaptured('verify', '--report', report, '--cache', cache, '--ark', ark)).code).toBe(0);
    const show = await runCliCaptured('certs', 'show', '--cache', cache);
    expect(show.out.trim().split('\n')).toHaveLength(2);
  });

  it('show decodes the AMD extensions; verify checks a chain alone', async () => {
    const s = await runCliCaptured('certs', 'show', join(certs, 'vcek.der'), '--json');
    expect(s.code).toBe(0);
    const [leaf] = JSON.parse(s.out) as { amdExtensions: Record<string, unknown>; signature: string }[];
    expect(leaf?.amdExtensions).toMatchObject({
      productName: 'Genoa-B0',
      blSpl: 7,
      snpSpl: 14,
      ucodeSpl: 72,
      hwId: CHIP_ID.toString('hex'),
    });
    expect(leaf?.signature).toMatch(/AMD/);
    expect((await runCliCaptured('certs', 'verify', certs, '--ark', ark)).code).toBe(0);
    expect((await runCliCaptured('certs', 'verify', certs)).code).toBe(1);
    expect((await runCliCaptured('certs', 'verify', join(dir, 'missing'))).code).toBe(4);
  });
});
