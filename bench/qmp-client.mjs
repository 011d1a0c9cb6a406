// Benchmark: sevsup's QmpClient against a minimal raw-socket QMP client, all on ONE real paused QEMU
// (one monitor each), interleaved in short rounds with the order rotated, so the noise of a shared
// machine hits every client alike. Prints medians, p99 and ours/raw (target ≤ 1.10×). Baselines:
// `raw` sends our exact bytes (client overhead); `raw-numeric` uses numeric ids, 8 bytes shorter —
// QEMU 7.2 reads monitor input one byte per main-loop iteration (monitor_can_read() returns 1), so
// that shows what our `sevsup-<n>` id format costs inside QEMU.
// Run: `npm run build && node bench/qmp-client.mjs`. Env: QEMU_BIN, BENCH_ROUNDS (20),
// BENCH_SEQ (100 round trips per client per round), BENCH_BATCHES (3 × 50 concurrent per round).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient } from '../dist/qmp/client.js';
import { RawQmpClient } from './raw-qmp-client.mjs';
import { reportTargets, target } from './targets.mjs';

const QEMU = process.env.QEMU_BIN ?? '/usr/bin/qemu-system-x86_64';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const SEQ = Number(process.env.BENCH_SEQ ?? 100);
const BATCHES = Number(process.env.BENCH_BATCHES ?? 3);
const CONCURRENCY = 50;
const WARMUP = 500;
const TARGET = 1.1;

function stats(samples) {
  const sorted = Float64Array.from(samples).sort();
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { n: sorted.length, median: at(0.5), p99: at(0.99) };
}

async function sequential(call, n, into) {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call();
    into.push(performance.now() - t0);
  }
}

async function concurrent(call, batches, into) {
  for (let b = 0; b < batches; b++) {
    const t0 = performance.now();
    const calls = [];
    for (let i = 0; i < CONCURRENCY; i++) calls.push(call());
    await Promise.all(calls);
    into.push(performance.now() - t0);
  }
}

const us = (ms) => `${(ms * 1000).toFixed(1)} µs`;

async function main() {
  if (!existsSync(QEMU)) {
    console.error(`bench/qmp-client: ${QEMU} not found (set QEMU_BIN)`);
    process.exit(2);
  }
  const dir = await mkdtemp(join(tmpdir(), 'sevsup-bench-qmp-'));
  const names = ['ours', 'raw', 'raw-numeric'];
  const paths = Object.fromEntries(names.map((n) => [n, join(dir, `${n}.sock`)]));
  const accel = existsSync('/dev/kvm') ? 'kvm' : 'tcg';
  const monitors = names.flatMap((n, i) => [
    '-chardev',
    `socket,id=m${i},path=${paths[n]},server=on,wait=off`,
    '-mon',
    `chardev=m${i},mode=control`,
  ]);
  const qemu = spawn(QEMU, ['-machine', 'none', '-accel', accel, '-nodefaults', '-display', 'none', '-S', ...monitors], {
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => qemu.once('exit', resolve));
  const isAlive = () => qemu.exitCode === null && qemu.signalCode === null;
  try {
    const ours = await QmpClient.connect({ path: paths.ours, isAlive, exited });
    const raw = await RawQmpClient.connect(paths.raw, 'sevsup-');
    const rawNumeric = await RawQmpClient.connect(paths['raw-numeric'], undefined);
    const calls = {
      ours: () => ours.execute('query-status'),
      raw: () => raw.call('query-status'),
      'raw-numeric': () => rawNumeric.call('query-status'),
    };

    for (const name of names) await sequential(calls[name], WARMUP, []); // JIT warm-up

    const seq = Object.fromEntries(names.map((n) => [n, []]));
    const conc = Object.fromEntries(names.map((n) => [n, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate who goes first so drift in machine load cancels out.
      const order = names.map((_, i) => names[(i + round) % names.length]);
      for (const name of order) await sequential(calls[name], SEQ, seq[name]);
      for (const name of order) await concurrent(calls[name], BATCHES, conc[name]);
    }
    await ours.execute('quit');
    raw.close();
    rawNumeric.close();
    await ours.closed;

    const { major, minor, micro } = ours.greeting.QMP.version.qemu;
    console.log(`QMP client benchmark: QEMU ${major}.${minor}.${micro} (${accel}), ${ROUNDS} interleaved rounds`);
    const ratios = {};
    const report = (title, table, key) => {
      const s = Object.fromEntries(names.map((n) => [n, stats(table[n])]));
      console.log(`\n${title}`);
      for (const n of names)
        console.log(`  ${n.padEnd(12)} median ${us(s[n].median).padStart(11)}   p99 ${us(s[n].p99).padStart(11)}   (${s[n].n} samples)`);
      for (const base of ['raw', 'raw-numeric']) {
        const m = s.ours.median / s[base].median;
        console.log(`  ours/${base.padEnd(11)} median ${m.toFixed(3)}×   p99 ${(s.ours.p99 / s[base].p99).toFixed(3)}×`);
        ratios[`${key}/${base}`] = m;
      }
    };
    report(`sequential query-status round trips (${SEQ} per client per round)`, seq, 'sequential');
    report(`${CONCURRENCY} concurrent query-status (time per batch; ${BATCHES} batches per client per round)`, conc, 'concurrent');
    const worst = Math.max(ratios['sequential/raw'], ratios['concurrent/raw']);
    console.log(
      `\nclient overhead (same bytes on the wire): worst median ratio ${worst.toFixed(3)}× (target ≤ ${TARGET.toFixed(2)}×): ${worst <= TARGET ? 'OK' : 'OVER TARGET'}`,
    );
    reportTargets('qmp-client', [
      target('QmpClient / raw client, worst median', worst, { unit: '×', max: TARGET, detail: 'sequential and concurrent query-status' }),
    ]);
    const idCost = Math.max(ratios['sequential/raw-numeric'], ratios['concurrent/raw-numeric']);
    console.log(`against numeric ids (8 request bytes fewer, read one byte per QEMU loop iteration): worst ${idCost.toFixed(3)}×`);
  } finally {
    if (isAlive()) qemu.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
