// Benchmark: the QMP proxy against talking to QEMU directly, in the same run, on ONE real paused
// QEMU with two monitors: one carries the supervisor's QmpClient (the proxy's upstream), the other
// a raw client (the baseline). Both measured clients are the same minimal raw client sending the
// same bytes, so the difference is the proxy alone: two more socket hops, strict parse, decide(),
// re-serialisation, id mapping.
// 1. Sequential query-status round trips, interleaved in rounds (order rotated each round so the
//    noise of a shared machine hits both alike): medians, p99, ratio proxy/direct (target ≤ 1.25×;
//    for scale, libvirt's virt-qemu-qmp-proxy takes ~1.4 ms a command here, 5–7× direct).
// 2. 50 proxy clients at once, each doing sequential round trips for a fixed time: completed per
//    client (min/max: no client starved) and total throughput against one proxy client alone.
// Needs the build: `npm run build && node bench/proxy.mjs`.
// Env: QEMU_BIN, BENCH_ROUNDS (20), BENCH_SEQ (200 round trips per client per round),
// BENCH_SECONDS (3, per throughput phase), BENCH_CLIENTS (50).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../dist/log.js';
import { startQmpProxy } from '../dist/proxy/proxy-server.js';
import { QmpClient } from '../dist/qmp/client.js';
import { RawQmpClient } from './raw-qmp-client.mjs';
import { reportTargets, target } from './targets.mjs';

const QEMU = process.env.QEMU_BIN ?? '/usr/bin/qemu-system-x86_64';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const SEQ = Number(process.env.BENCH_SEQ ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 50);
const WARMUP = 1000;
const TARGET = 1.25;
const HELD = { vmState: 'held', held: true, sev: true, allow: [], deny: [] };

/**
 * A second upstream for the proxy with numeric ids: the QmpUpstream interface over the raw
 * client. It shows what the proxy costs when its upstream sends as few bytes as the client did.
 */
class NumericIdUpstream extends RawQmpClient {
  static async open(path) {
    const socket = createConnection({ path });
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const upstream = new NumericIdUpstream(socket, undefined);
    upstream.greeting = await upstream.next();
    await upstream.call('qmp_capabilities');
    upstream.oob = false;
    upstream.closed = new Promise((resolve) => socket.once('close', () => resolve(undefined)));
    return upstream;
  }

  /** QmpUpstream.request: the whole reply, our id removed. */
  request(message) {
    this.counter += 1;
    const id = this.counter;
    return new Promise((resolve) => {
      this.waiting.set(id, ({ id: _id, ...reply }) => resolve(reply));
      this.socket.write(`${JSON.stringify({ ...message, id })}\n`);
    });
  }

  onEvent() {
    return () => {};
  }
}

function stats(samples) {
  const sorted = Float64Array.from(samples).sort();
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { n: sorted.length, median: at(0.5), p99: at(0.99), mean: sorted.reduce((a, b) => a + b, 0) / sorted.length };
}

async function sequential(client, n, into) {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await client.call('query-status');
    into.push(performance.now() - t0);
  }
}

/** Sequential round trips until the deadline; how many completed. */
async function untilDeadline(client, deadline) {
  let done = 0;
  while (performance.now() < deadline) {
    await client.call('query-status');
    done += 1;
  }
  return done;
}

const us = (ms) => `${(ms * 1000).toFixed(1)} µs`;

async function main() {
  if (!existsSync(QEMU)) {
    console.error(`bench/proxy: ${QEMU} not found (set QEMU_BIN)`);
    process.exit(2);
  }
  const dir = await mkdtemp(join(tmpdir(), 'sevsup-bench-proxy-'));
  const upstreamPath = join(dir, 'monitor.sock');
  const directPath = join(dir, 'direct.sock');
  const sameBytesPath = join(dir, 'same-bytes.sock');
  const numericUpstreamPath = join(dir, 'numeric-upstream.sock');
  const numericProxyPath = join(dir, 'qmp-numeric.sock');
  const proxyPath = join(dir, 'qmp.sock');
  const accel = existsSync('/dev/kvm') ? 'kvm' : 'tcg';
  const qemu = spawn(
    QEMU,
    [
      '-machine',
      'none',
      '-accel',
      accel,
      '-nodefaults',
      '-display',
      'none',
      '-S',
      '-chardev',
      `socket,id=monitor,path=${upstreamPath},server=on,wait=off`,
      '-mon',
      'chardev=monitor,mode=control',
      '-chardev',
      `socket,id=direct,path=${directPath},server=on,wait=off`,
      '-mon',
      'chardev=direct,mode=control',
      '-chardev',
      `socket,id=same,path=${sameBytesPath},server=on,wait=off`,
      '-mon',
      'chardev=same,mode=control',
      '-chardev',
      `socket,id=numeric,path=${numericUpstreamPath},server=on,wait=off`,
      '-mon',
      'chardev=numeric,mode=control',
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise((resolve) => qemu.once('exit', resolve));
  const isAlive = () => qemu.exitCode === null && qemu.signalCode === null;
  let upstream;
  let proxy;
  let numericProxy;
  try {
    upstream = await QmpClient.connect({ path: upstreamPath, isAlive, exited, oob: true });
    proxy = await startQmpProxy({ socketPath: proxyPath, vm: 'bench', upstream, context: () => HELD, logger: silentLogger() });
    const direct = await RawQmpClient.connect(directPath);
    const viaProxy = await RawQmpClient.connect(proxyPath);
    // What the proxy itself sends upstream: the upstream QmpClient's ids ("sevsup-N"). QEMU 7.2
    // reads monitor input one byte per main-loop iteration, so those longer ids cost QEMU time
    // that is not the proxy's own: this client shows how much.
    const sameBytes = await RawQmpClient.connect(sameBytesPath, 'sevsup-');
    numericProxy = await startQmpProxy({
      socketPath: numericProxyPath,
      vm: 'bench',
      upstream: await NumericIdUpstream.open(numericUpstreamPath),
      context: () => HELD,
      logger: silentLogger(),
    });
    const viaNumericProxy = await RawQmpClient.connect(numericProxyPath);
    const clients = { direct, 'direct-sevsup-ids': sameBytes, proxy: viaProxy, 'proxy-numeric-up': viaNumericProxy };
    const names = Object.keys(clients);

    for (const name of names) await sequential(clients[name], WARMUP, []); // JIT warm-up
    const seq = Object.fromEntries(names.map((n) => [n, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = names.map((_n, i) => names[(i + round) % names.length]);
      for (const name of order) await sequential(clients[name], SEQ, seq[name]);
    }

    const { major, minor, micro } = upstream.greeting.QMP.version.qemu;
    console.log(`QMP proxy benchmark: QEMU ${major}.${minor}.${micro} (${accel}), ${ROUNDS} interleaved rounds of ${SEQ}`);
    console.log('\nsequential query-status round trips');
    const s = Object.fromEntries(names.map((n) => [n, stats(seq[n])]));
    for (const n of names) {
      console.log(
        `  ${n.padEnd(18)} median ${us(s[n].median).padStart(10)}   mean ${us(s[n].mean).padStart(10)}   p99 ${us(s[n].p99).padStart(10)}   (${s[n].n} samples)`,
      );
    }
    const ratio = s.proxy.median / s.direct.median;
    console.log(
      `  proxy/direct median ${ratio.toFixed(3)}×   mean ${(s.proxy.mean / s.direct.mean).toFixed(3)}×   p99 ${(s.proxy.p99 / s.direct.p99).toFixed(3)}×   (target ≤ ${TARGET.toFixed(2)}×: ${ratio <= TARGET ? 'OK' : 'OVER TARGET'})`,
    );
    console.log(
      `  added per command: ${us(s.proxy.median - s.direct.median)} (median), of which QEMU reading the upstream's longer ids: ${us(s['direct-sevsup-ids'].median - s.direct.median)}`,
    );
    console.log(
      `  proxy/direct-sevsup-ids median ${(s.proxy.median / s['direct-sevsup-ids'].median).toFixed(3)}× (the proxy's own cost, same bytes reaching QEMU)`,
    );
    const numericRatio = s['proxy-numeric-up'].median / s.direct.median;
    console.log(
      `  proxy-numeric-up/direct median ${numericRatio.toFixed(3)}× (the proxy over an upstream with numeric ids; target ≤ ${TARGET.toFixed(2)}×: ${numericRatio <= TARGET ? 'OK' : 'OVER TARGET'})`,
    );

    // Throughput, in interleaved slices (machine noise hits all three alike): one direct client,
    // one proxy client, then CLIENTS proxy clients at once, each client sequential.
    const many = [];
    for (let i = 0; i < CLIENTS; i++) many.push(await RawQmpClient.connect(proxyPath));
    const SLICES = 6;
    const sliceMs = (SECONDS * 1000) / SLICES;
    let aloneDirect = 0;
    let alone = 0;
    const counts = many.map(() => 0);
    for (let slice = 0; slice < SLICES; slice++) {
      aloneDirect += await untilDeadline(direct, performance.now() + sliceMs);
      alone += await untilDeadline(viaProxy, performance.now() + sliceMs);
      const deadline = performance.now() + sliceMs;
      const done = await Promise.all(many.map((c) => untilDeadline(c, deadline)));
      for (const [i, n] of done.entries()) counts[i] += n;
    }
    for (const c of many) c.close();
    const total = counts.reduce((a, b) => a + b, 0);
    const min = Math.min(...counts);
    const max = Math.max(...counts);
    console.log(`\nthroughput, ${SECONDS} s each in ${SLICES} interleaved slices (query-status, each client sequential)`);
    console.log(`  1 direct client        ${(aloneDirect / SECONDS).toFixed(0).padStart(7)} commands/s`);
    console.log(`  1 proxy client         ${(alone / SECONDS).toFixed(0).padStart(7)} commands/s`);
    console.log(
      `  ${String(CLIENTS).padStart(2)} proxy clients       ${(total / SECONDS).toFixed(0).padStart(7)} commands/s in total (${(total / alone).toFixed(2)}× one proxy client)`,
    );
    console.log(
      `  per client completed: min ${min}, max ${max} (min/max ${(min / max).toFixed(2)}; no client starved: ${min > 0 ? 'yes' : 'NO'})`,
    );
    reportTargets('proxy', [
      target('query-status via proxy / direct', ratio, {
        unit: '×',
        max: TARGET,
        detail: `${us(s.proxy.median)} vs ${us(s.direct.median)}`,
      }),
      target(`${CLIENTS} proxy clients: fewest / most completed`, min / max, {
        unit: '×',
        min: 0.01,
        detail: `min ${min}, max ${max} (none starved)`,
      }),
    ]);
    direct.close();
    sameBytes.close();
    viaProxy.close();
    viaNumericProxy.close();
  } finally {
    await numericProxy?.close();
    await proxy?.close();
    if (upstream?.state === 'running') await upstream.execute('quit').catch(() => undefined);
    const timer = setTimeout(() => qemu.kill('SIGKILL'), 3000);
    if (!isAlive()) clearTimeout(timer);
    await exited;
    clearTimeout(timer);
    await upstream?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
