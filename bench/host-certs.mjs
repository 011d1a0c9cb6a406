// Benchmark: what the daemon's SNP certificate keeping costs per refresh, in process.
//  1. a refresh with the TCB unchanged (the every-`snp-certs-refresh` case: read and parse the
//     operator's facts file, compare) vs reading that file raw (the floor);
//  2. a TCB change served from the cache (cache lookup, table build, one table rewritten atomically
//     with fsync) vs the bare cache lookup (lookupReportCerts, as bench/verify-snp.mjs times it).
// Ratios against baselines in the same run; nothing leaves the machine.
// Needs the build: `npm run build && node bench/host-certs.mjs`. Env: BENCH_ROUNDS (7).
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostCertKeeper } from '../dist/attestation/host-certs.js';
import { chainPath, lookupReportCerts, vcekPath, writeCached } from '../dist/attestation/kds-cache.js';
import { fileTcbSource } from '../dist/host/snp-platform.js';
import { buildChain, derToPem } from '../dist/sev/snp-cert-builder.js';
import { encodeTcb } from '../dist/sev/snp-report.js';
import { reportTargets, target } from './targets.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const KEYS = new URL('../test/fixtures/snp-keys/', import.meta.url);
const key = (n) => createPrivateKey(readFileSync(new URL(`${n}.key`, KEYS)));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const dir = mkdtempSync(join(tmpdir(), 'sevsup-bench-hostcerts-'));
try {
  const chipId = Buffer.alloc(64, 0x5a);
  const parts = [
    { bootloader: 3, tee: 0, snp: 8, microcode: 115 },
    { bootloader: 3, tee: 0, snp: 9, microcode: 116 },
  ];
  const cache = join(dir, 'cache');
  const ark = key('ark');
  const ask = key('ask');
  let arkDer;
  for (const tcb of parts) {
    const chain = buildChain({
      product: 'Milan',
      kind: 'vcek',
      keys: { ark, intermediate: ask, leaf: generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey },
      tcb,
      chipId,
    });
    await writeCached(chainPath(cache, 'Milan'), derToPem(chain.intermediate) + derToPem(chain.ark));
    arkDer = chain.ark;
    await writeCached(vcekPath(cache, { product: 'Milan', chipId, reportedTcb: encodeTcb(tcb, 'milan-genoa') }), chain.leaf);
  }
  const facts = join(dir, 'snp-platform');
  const write = (i) =>
    writeFileSync(
      facts,
      `product: Milan\nchip-id: ${chipId.toString('hex')}\nreported-tcb: 0x${encodeTcb(parts[i], 'milan-genoa').toString(16)}\n`,
    );
  write(0);
  const table = join(dir, 'snp-certs.bin');
  const keeper = new HostCertKeeper({
    cacheDir: cache,
    offline: true,
    source: fileTcbSource(facts),
    pinned: [{ der: arkDer, product: 'Milan', source: 'owner' }],
    tables: () => [table],
  });
  if ((await keeper.refresh('start')) !== 'cache') throw new Error('bench cache miss');

  const N = 200;
  const unchangedUs = [];
  const rawUs = [];
  const changeUs = [];
  const lookupUs = [];
  for (let r = 0; r < ROUNDS; r++) {
    let t0 = performance.now();
    for (let i = 0; i < N; i++) if ((await keeper.refresh('interval')) !== 'unchanged') throw new Error('not unchanged');
    unchangedUs.push(((performance.now() - t0) * 1000) / N);
    t0 = performance.now();
    for (let i = 0; i < N; i++) await readFile(facts, 'utf8');
    rawUs.push(((performance.now() - t0) * 1000) / N);
    const M = 40;
    let flip = 0;
    let spent = 0;
    for (let i = 0; i < M; i++) {
      flip = 1 - flip;
      write(flip);
      const s = performance.now();
      if ((await keeper.refresh('interval')) !== 'cache') throw new Error('not from the cache');
      spent += performance.now() - s;
    }
    changeUs.push((spent * 1000) / M);
    t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const hit = await lookupReportCerts(cache, {
        product: 'Milan',
        chipId,
        reportedTcb: encodeTcb(parts[0], 'milan-genoa'),
        kind: 'vcek',
      });
      if (hit === null) throw new Error('cache miss');
    }
    lookupUs.push(((performance.now() - t0) * 1000) / N);
  }
  const u = median(unchangedUs);
  const raw = median(rawUs);
  const c = median(changeUs);
  const l = median(lookupUs);
  console.log(
    `refresh, TCB unchanged: ${u.toFixed(0)} µs (raw read of the facts file ${raw.toFixed(0)} µs, ratio ${(u / raw).toFixed(2)})`,
  );
  console.log(
    `refresh, TCB changed, served from the cache (lookup + table + one atomic table write with fsync): ${c.toFixed(0)} µs (bare cache lookup ${l.toFixed(0)} µs, ratio ${(c / l).toFixed(2)})`,
  );
  reportTargets('host-certs', [
    target('SNP refresh (TCB unchanged) vs raw read of the facts file', u / raw, {
      unit: '×',
      max: 3,
      detail: `${u.toFixed(0)} µs vs ${raw.toFixed(0)} µs`,
    }),
  ]);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
