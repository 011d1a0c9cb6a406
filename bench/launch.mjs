#!/usr/bin/env node
// Launch overhead of `sevsup run`, against a hand-made baseline in the same run: spawn the same
// simulated QEMU with the same argv, connect to its monitor socket by hand (raw socket, retry until
// it exists), negotiate, `query-sev` and `query-sev-launch-measure`. Same firmware, same kernel,
// alternating runs, medians. Two sevsup numbers:
//  - launch: its `starting` event → its `measured` event (preflight, run dir, argv, spawn, QMP,
//    checks, measurement, durable record): the lifecycle's cost. Target: ratio ≤ 1.15.
//  - process: spawning `node bin/sevsup run` → `measured`, i.e. plus Node start-up and module
//    loading, which the in-process baseline does not pay. Target: ratio ≤ 1.4.
// Usage: node bench/launch.mjs [--runs N] [--json]   (needs dist/ and .cache/test-assets)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onJsonLines } from './bench-lib.mjs';
import { reportTargets, target } from './targets.mjs';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const SEVSUP = join(REPO, 'bin', 'sevsup');
const SIM = join(REPO, 'bin', 'sevsup-sim-qemu');
const FIRMWARE = join(REPO, '.cache', 'test-assets', 'ovmf-sev-test.fd');
const KERNEL = join(REPO, '.cache', 'test-assets', 'vmlinuz');

const args = process.argv.slice(2);
const runsArg = args.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 7;
const JSON_OUT = args.includes('--json');
const TARGETS = { launch: 1.15, process: 1.4 };
/** One launch must not hang the bench. */
const STEP_TIMEOUT_MS = 60_000;

for (const p of [join(REPO, 'dist', 'bundle', 'sevsup.mjs'), SIM, FIRMWARE, KERNEL]) {
  if (!existsSync(p)) {
    process.stderr.write(`bench/launch: ${p} is missing (npm run build; bash scripts/setup-test-assets.sh)\n`);
    process.exit(2);
  }
}

const { loadVmConfig } = await import(join(REPO, 'dist', 'config', 'vm-config.js'));
const { buildQemuArgv } = await import(join(REPO, 'dist', 'qemu', 'argv.js'));
const { SIMULATED_HOST_CAPS } = await import(join(REPO, 'dist', 'host', 'simulated.js'));
const { prepareVmRunDir } = await import(join(REPO, 'dist', 'process', 'run-dir.js'));

const root = await mkdtemp(join(tmpdir(), 'sb-'));
const conf = join(root, 'bench.conf');
await writeFile(
  conf,
  [
    'name: bench',
    'memory: 256',
    'cores: 1',
    'cpu: EPYC-v3',
    'bios: ovmf',
    `firmware: ${FIRMWARE}`,
    `kernel: ${KERNEL}`,
    'cmdline: console=ttyS0',
    'amd_sev: type=std,nodbg=1,noks=1,kernel-hashes=1',
    '',
  ].join('\n'),
);

function timeout(what) {
  return new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`${what}: no result within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS).unref(),
  );
}

function exited(child) {
  return new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('close', () => resolve()),
  );
}

/** sevsup run: spawn → `measured` on stdout. Held, so the guest never runs; then SIGTERM. */
async function sevsupOnce(i) {
  const dir = join(root, `s${i}`);
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [SEVSUP, 'run', conf, '--platform', 'sim', '--json', '--hold', '--run-dir', join(dir, 'run'), '--state-dir', join(dir, 'state')],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  let tStarting = t0;
  const measured = new Promise((resolve, reject) => {
    onJsonLines(child.stdout, (event) => {
      if (event.event === 'starting') tStarting = performance.now();
      if (event.event === 'measured') resolve({ process: performance.now() - t0, launch: performance.now() - tStarting });
      if (event.event === 'failed') reject(new Error(`sevsup run failed: ${event.message}`));
    });
    child.once('close', () => reject(new Error(`sevsup run exited early: ${stderr}`)));
  });
  try {
    return await Promise.race([measured, timeout('sevsup run')]);
  } finally {
    child.kill('SIGTERM');
    await exited(child);
  }
}

/** Baseline: the same sim + argv, QMP by hand on a raw socket. */
async function baselineOnce(i) {
  const spec = await loadVmConfig(conf);
  const paths = await prepareVmRunDir(join(root, `b${i}`, 'run'), spec.name);
  const argv = buildQemuArgv({ spec, caps: SIMULATED_HOST_CAPS, paths: { monitorSocket: paths.monitorSocket, pidFile: paths.pidFile } });
  const t0 = performance.now();
  const child = spawn(SIM, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  try {
    const socket = await new Promise((resolve, reject) => {
      const attempt = () => {
        const s = connect(paths.monitorSocket);
        s.once('connect', () => resolve(s));
        s.once('error', (e) => {
          if (child.exitCode !== null) reject(new Error(`sim exited: ${stderr}`));
          else if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') setTimeout(attempt, 2);
          else reject(e);
        });
      };
      attempt();
    });
    const elapsed = await Promise.race([
      new Promise((resolve, reject) => {
        let buf = '';
        const steps = ['{"execute":"qmp_capabilities"}', '{"execute":"query-sev"}', '{"execute":"query-sev-launch-measure"}'];
        socket.on('data', (chunk) => {
          buf += chunk;
          for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const msg = JSON.parse(buf.slice(0, nl));
            buf = buf.slice(nl + 1);
            if ('event' in msg) continue;
            if ('error' in msg) return reject(new Error(JSON.stringify(msg.error)));
            if ('return' in msg && typeof msg.return.data === 'string') return resolve(performance.now() - t0);
            const next = steps.shift();
            if (next !== undefined) socket.write(`${next}\n`);
          }
        });
      }),
      timeout('baseline'),
    ]);
    socket.write('{"execute":"quit"}\n');
    socket.end();
    return elapsed;
  } finally {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited(child);
    clearTimeout(timer);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

try {
  // One warm-up of each (page cache, JIT of the sim), not counted.
  await baselineOnce('w');
  await sevsupOnce('w');
  const base = [];
  const launch = [];
  const proc = [];
  for (let i = 0; i < RUNS; i++) {
    base.push(await baselineOnce(i));
    const s = await sevsupOnce(i);
    launch.push(s.launch);
    proc.push(s.process);
  }
  const ratio = (xs) => Number((median(xs) / median(base)).toFixed(2));
  const result = {
    runs: RUNS,
    baselineMedianMs: Math.round(median(base)),
    launchMedianMs: Math.round(median(launch)),
    launchRatio: ratio(launch),
    processMedianMs: Math.round(median(proc)),
    processRatio: ratio(proc),
    targets: TARGETS,
    baselineMs: base.map(Math.round),
    launchMs: launch.map(Math.round),
    processMs: proc.map(Math.round),
  };
  reportTargets('launch', [
    target('sevsup run: spawn → measured / by hand', result.processRatio, {
      unit: '×',
      max: TARGETS.process,
      detail: `${result.processMedianMs} vs ${result.baselineMedianMs} ms`,
    }),
    target('sevsup run: starting → measured / by hand', result.launchRatio, {
      unit: '×',
      max: TARGETS.launch,
      detail: `${result.launchMedianMs} vs ${result.baselineMedianMs} ms`,
    }),
  ]);
  if (JSON_OUT) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(
      `median of ${RUNS}: by hand (spawn → measurement) ${result.baselineMedianMs} ms\n` +
        `  sevsup launch (starting → measured)  ${result.launchMedianMs} ms, ratio ${result.launchRatio} (target ≤ ${TARGETS.launch})\n` +
        `  sevsup process (spawn → measured)    ${result.processMedianMs} ms, ratio ${result.processRatio} (target ≤ ${TARGETS.process}; includes Node start-up and module loading)\n`,
    );
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
