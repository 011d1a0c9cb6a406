// Benchmark: SNP report verification with a warm certificate cache, on a report and AMD-shaped chain
// made in a temp dir (fixture RSA-4096 keys, a fresh P-384 VCEK). Interleaved rounds; medians and
// ratios:
//  1. whole commands: `bin/sevsup verify --report` (every check, certificates from the cache) vs
//     OpenSSL doing only the chain and signature steps (`openssl verify` with PSS, then
//     `openssl dgst -sha384 -verify`), and vs go-sev-guest 0.15 (.cache/snporacle, built by
//     scripts/build-snp-oracle.sh) doing its verify + validate. Target: faster.
//  2. in process: verifySnpReport (all checks) per call, and the cache lookup alone
//     (lookupReportCerts: two reads and a parse of the chain PEM) vs reading the same files raw.
// Needs the build: `npm run build && node bench/verify-snp.mjs`. Env: BENCH_ROUNDS (7).
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lookupReportCerts, vcekPath, chainPath, writeCached } from '../dist/attestation/kds-cache.js';
import { verifySnpReport } from '../dist/attestation/verify-snp.js';
import { buildChain, derToPem } from '../dist/sev/snp-cert-builder.js';
import { buildSignedReport, encodeTcb, parseSnpReport } from '../dist/sev/snp-report.js';
import { median, run } from './bench-lib.mjs';
import { reportTargets, target } from './targets.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const BIN = new URL('../bin/sevsup', import.meta.url).pathname;
const KEYS = new URL('../test/fixtures/snp-keys/', import.meta.url);
const key = (n) => createPrivateKey(readFileSync(new URL(`${n}.key`, KEYS)));

const ORACLE = process.env.SNP_ORACLE ?? new URL('../.cache/snporacle', import.meta.url).pathname;

const dir = mkdtempSync(join(tmpdir(), 'sevsup-bench-snp-'));
try {
  const tcbParts = { bootloader: 7, tee: 0, snp: 14, microcode: 72 };
  const chipId = Buffer.alloc(64, 0x5c);
  const chain = buildChain({
    product: 'Genoa',
    kind: 'vcek',
    keys: { ark: key('ark'), intermediate: key('ask'), leaf: generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey },
    tcb: tcbParts,
    chipId,
  });
  const tcb = encodeTcb(tcbParts, 'milan-genoa');
  const z = (n, b = 0) => Buffer.alloc(n, b);
  const report = buildSignedReport(
    {
      version: 3,
      guestSvn: 1,
      policy: 0x30000n,
      familyId: z(16),
      imageId: z(16),
      vmpl: 0,
      signatureAlgo: 1,
      currentTcb: tcb,
      platformInfo: 1n,
      authorKeyEn: false,
      maskChipKey: false,
      signingKeyCode: 0,
      reportData: z(64, 7),
      measurement: z(48, 0x4d),
      hostData: z(32, 0x48),
      idKeyDigest: z(48),
      authorKeyDigest: z(48),
      reportId: z(32, 1),
      reportIdMa: z(32, 0xff),
      reportedTcb: tcb,
      cpuid: { family: 0x19, model: 0x11, stepping: 1 },
      chipId,
      committedTcb: tcb,
      currentVersion: { major: 1, minor: 55, build: 0 },
      committedVersion: { major: 1, minor: 55, build: 0 },
      launchTcb: tcb,
      launchMitVector: null,
      currentMitVector: null,
    },
    chain.leafKey,
  );
  const cache = join(dir, 'cache');
  await writeCached(chainPath(cache, 'Genoa'), derToPem(chain.intermediate) + derToPem(chain.ark));
  await writeCached(vcekPath(cache, { product: 'Genoa', chipId, reportedTcb: tcb }), chain.leaf);
  const f = (name, data) => {
    writeFileSync(join(dir, name), data);
    return join(dir, name);
  };
  const reportFile = f('report.bin', report);
  const arkFile = f('ark.pem', derToPem(chain.ark));
  const askFile = f('ask.pem', derToPem(chain.intermediate));
  const vcekFile = f('vcek.pem', derToPem(chain.leaf));
  const be = (at) =>
    `0x${Buffer.from(report.subarray(at, at + 72))
      .reverse()
      .toString('hex')}`;
  f('sig.cnf', `asn1=SEQUENCE:sig\n[sig]\nr=INTEGER:${be(0x2a0)}\ns=INTEGER:${be(0x2e8)}\n`);
  execFileSync('openssl', ['asn1parse', '-genconf', join(dir, 'sig.cnf'), '-out', join(dir, 'sig.der'), '-noout']);
  const bodyFile = f('body.bin', report.subarray(0, 0x2a0));
  const pubFile = f('pub.pem', execFileSync('openssl', ['x509', '-in', vcekFile, '-noout', '-pubkey']));
  const sevsupArgs = [
    'verify',
    '--report',
    reportFile,
    '--cache',
    cache,
    '--ark',
    arkFile,
    '--expected-measurement',
    '4d'.repeat(48),
    '--quiet',
  ];
  const opensslSteps = async () =>
    (await run('openssl', ['verify', '-CAfile', arkFile, '-untrusted', askFile, vcekFile])).ms +
    (await run('openssl', ['dgst', '-sha384', '-verify', pubFile, '-signature', join(dir, 'sig.der'), bodyFile])).ms;

  // 1. whole commands, interleaved.
  await run(BIN, sevsupArgs); // warm the page cache
  const ours = [];
  const theirs = [];
  const floor = [];
  const gsg = [];
  const haveOracle = existsSync(ORACLE);
  const oracleArgs = [reportFile, arkFile, askFile, vcekFile, '4d'.repeat(48), '48'.repeat(32), '07'.repeat(64)];
  for (let i = 0; i < ROUNDS; i++) {
    ours.push((await run(BIN, sevsupArgs)).ms);
    theirs.push(await opensslSteps());
    floor.push((await run(process.execPath, ['-e', ''])).ms);
    if (haveOracle) gsg.push((await run(ORACLE, oracleArgs, { PRODUCT_LINE: 'Genoa' })).ms);
  }
  // 2. in process.
  const pinned = [{ der: chain.ark, product: 'Genoa', source: 'owner' }];
  const parsed = parseSnpReport(report);
  const N = 200;
  const verifyUs = [];
  const lookupUs = [];
  const rawUs = [];
  const paths = [vcekPath(cache, { product: 'Genoa', chipId, reportedTcb: tcb }), chainPath(cache, 'Genoa')];
  for (let r = 0; r < ROUNDS; r++) {
    let t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const hit = await lookupReportCerts(cache, { product: 'Genoa', chipId, reportedTcb: tcb, kind: 'vcek' });
      if (hit === null) throw new Error('cache miss');
    }
    lookupUs.push(((performance.now() - t0) * 1000) / N);
    t0 = performance.now();
    for (let i = 0; i < N; i++) await Promise.all(paths.map((p) => readFile(p)));
    rawUs.push(((performance.now() - t0) * 1000) / N);
    const hit = await lookupReportCerts(cache, { product: 'Genoa', chipId, reportedTcb: tcb, kind: 'vcek' });
    t0 = performance.now();
    for (let i = 0; i < N / 10; i++) {
      const out = verifySnpReport({ report: parsed, certs: hit, pinned, expect: { measurement: z(48, 0x4d) } });
      if (!out.valid) throw new Error('bench report did not verify');
    }
    verifyUs.push(((performance.now() - t0) * 1000) / (N / 10));
  }
  const o = median(ours);
  const t = median(theirs);
  console.log(
    `verify --report (whole command, warm cache): sevsup ${o.toFixed(1)} ms, openssl chain+signature ${t.toFixed(1)} ms, ratio sevsup/openssl ${(o / t).toFixed(2)} (target < 1); node -e '' alone ${median(floor).toFixed(1)} ms`,
  );
  if (haveOracle)
    console.log(
      `vs go-sev-guest 0.15 (verify+validate, same expectations): ${median(gsg).toFixed(1)} ms, ratio sevsup/go-sev-guest ${(o / median(gsg)).toFixed(2)} (target < 1)`,
    );
  else console.log('go-sev-guest comparison skipped: scripts/build-snp-oracle.sh builds it');
  console.log(`verifySnpReport in process (all checks): ${median(verifyUs).toFixed(0)} µs per report`);
  console.log(
    `cache lookup: ${median(lookupUs).toFixed(0)} µs (raw reads of the same files ${median(rawUs).toFixed(0)} µs, ratio ${(median(lookupUs) / median(rawUs)).toFixed(2)})`,
  );
  reportTargets('verify-snp', [
    target('verify --report vs openssl chain+signature', o / t, { unit: '×', max: 1, detail: `${o.toFixed(1)} ms vs ${t.toFixed(1)} ms` }),
    ...(haveOracle
      ? [
          // Node's own start-up alone is the floor: `node -e ''` is already slower than go-sev-guest's whole run.
          target('verify --report vs go-sev-guest', o / median(gsg), {
            unit: '×',
            max: 1,
            detail: `${o.toFixed(1)} ms vs ${median(gsg).toFixed(1)} ms; floor node -e '' ${median(floor).toFixed(1)} ms`,
          }),
        ]
      : []),
    target('SNP cert cache lookup vs raw reads', median(lookupUs) / median(rawUs), {
      unit: '×',
      max: 2,
      detail: `${median(lookupUs).toFixed(0)} µs vs ${median(rawUs).toFixed(0)} µs`,
    }),
  ]);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
