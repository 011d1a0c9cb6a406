#!/usr/bin/env node
// Start-up cost of `sevsup --version` and `sevsup status <vm>` against `node -e ''` in the same
// run: a daemon (simulated platform) knows one guest that is not started (no QEMU needed: status
// is served from memory), and the three commands run in turn, each a fresh process, wall time to
// exit. Targets: the median of each sevsup command ≤ median of `node -e ''` + 15 ms.
// Usage: node bench/cli-start.mjs [--runs N] [--json]   (needs the build: npm run build)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { reportTargets, target } from './targets.mjs';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const SEVSUP = join(REPO, 'bin', 'sevsup');
const args = process.argv.slice(2);
const runsArg = args.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 40;
const JSON_OUT = args.includes('--json');
const TARGET_EXTRA_MS = 15;

if (!existsSync(join(REPO, 'dist', 'bundle', 'sevsup.mjs'))) {
  process.stderr.write('bench/cli-start: the build is missing (npm run build)\n');
  process.exit(2);
}

const root = await mkdtemp(join(tmpdir(), 'bs-'));
const socket = join(root, 's.sock');
await mkdir(join(root, 'vms'));
await writeFile(join(root, 'vms', 'web.conf'), 'name: web\nmemory: 256\ncores: 1\nbios: ovmf\namd_sev: type=std\n');
const daemon = spawn(
  process.execPath,
  [
    SEVSUP,
    'daemon',
    '--platform',
    'sim',
    '--vm-dir',
    join(root, 'vms'),
    '--run-dir',
    join(root, 'run'),
    '--state-dir',
    join(root, 'state'),
    '--socket',
    socket,
    '--log-level',
    'warn',
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);

/** Wall time of one process from spawn to exit, in ms; rejects on a non-zero exit. */
function timed(argv) {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) =>
      code === 0 ? resolve(performance.now() - start) : reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr}`)),
    );
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

try {
  const status = [SEVSUP, 'status', 'web', '--socket', socket];
  for (let i = 0; ; i += 1) {
    if (
      await timed(status).then(
        () => true,
        () => false,
      )
    )
      break;
    if (i > 100) throw new Error('the daemon did not answer within 10 s');
    await delay(100);
  }
  const version = [SEVSUP, '--version'];
  const node = [];
  const sevsup = [];
  const versions = [];
  await timed(['-e', '']); // warm the file cache for all
  await timed(version);
  for (let i = 0; i < RUNS; i += 1) {
    node.push(await timed(['-e', '']));
    sevsup.push(await timed(status));
    versions.push(await timed(version));
  }
  const round1 = (ms) => Number(ms.toFixed(1));
  const result = {
    runs: RUNS,
    nodeMedianMs: round1(median(node)),
    statusMedianMs: round1(median(sevsup)),
    versionMedianMs: round1(median(versions)),
    extraMs: round1(median(sevsup) - median(node)),
    versionExtraMs: round1(median(versions) - median(node)),
    targetExtraMs: TARGET_EXTRA_MS,
  };
  result.pass = result.extraMs <= TARGET_EXTRA_MS && result.versionExtraMs <= TARGET_EXTRA_MS;
  reportTargets('cli-start', [
    target("sevsup --version − node -e ''", result.versionExtraMs, {
      unit: 'ms',
      max: TARGET_EXTRA_MS,
      detail: `${result.versionMedianMs} vs ${result.nodeMedianMs} ms`,
    }),
    target("sevsup status − node -e ''", result.extraMs, {
      unit: 'ms',
      max: TARGET_EXTRA_MS,
      detail: `${result.statusMedianMs} vs ${result.nodeMedianMs} ms`,
    }),
  ]);
  if (JSON_OUT) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(
      `node -e '': median ${result.nodeMedianMs} ms [${RUNS} runs each, in turn]\n` +
        `sevsup --version: median ${result.versionMedianMs} ms, extra ${result.versionExtraMs} ms (target ≤ ${TARGET_EXTRA_MS}) ${result.versionExtraMs <= TARGET_EXTRA_MS ? 'PASS' : 'FAIL'}\n` +
        `sevsup status:    median ${result.statusMedianMs} ms, extra ${result.extraMs} ms (target ≤ ${TARGET_EXTRA_MS}) ${result.extraMs <= TARGET_EXTRA_MS ? 'PASS' : 'FAIL'}\n`,
    );
  }
} finally {
  daemon.kill('SIGTERM');
  await new Promise((resolve) => daemon.once('close', resolve));
  await rm(root, { recursive: true, force: true });
}
