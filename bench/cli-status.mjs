#!/usr/bin/env node
// Start-up cost of `sevsup status <vm>` against `node -e ''` in the same run: a daemon (simulated
// platform) knows one guest that is not started (no QEMU needed: status is served from memory),
// and the two commands run alternately, each a fresh process, wall time to exit. Target: the
// median of `sevsup status` ≤ median of `node -e ''` + 30 ms.
// Usage: node bench/cli-status.mjs [--runs N] [--json]   (needs dist/: npm run build)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const SEVSUP = join(REPO, 'bin', 'sevsup');
const args = process.argv.slice(2);
const runsArg = args.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 40;
const JSON_OUT = args.includes('--json');
const TARGET_EXTRA_MS = 30;

if (!existsSync(join(REPO, 'dist', 'cli', 'main.js'))) {
  process.stderr.write('bench/cli-status: dist/ is missing (npm run build)\n');
  process.exit(2);
}

const root = await mkdtemp(join(tmpdir(), 'bs-'));
const socket = join(root, 's.sock');
await mkdir(join(root, 'vms'));
await writeFile(join(root, 'vms', 'web.conf'), 'name: web\nmemory: 256\ncores: 1\nbios: ovmf\namd_sev: type=std\n');
const daemon = spawn(
  process.execPath,
  [SEVSUP, 'daemon', '--platform', 'sim', '--vm-dir', join(root, 'vms'), '--run-dir', join(root, 'run'), '--state-dir', join(root, 'state'), '--socket', socket, '--log-level', 'warn'],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);

/** Wall time of one process from spawn to exit, in ms; rejects on a non-zero exit. */
function timed(argv) {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => (code === 0 ? resolve(performance.now() - start) : reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr}`))));
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

try {
  const status = [SEVSUP, 'status', 'web', '--socket', socket];
  for (let i = 0; ; i += 1) {
    if (await timed(status).then(() => true, () => false)) break;
    if (i > 100) throw new Error('the daemon did not answer within 10 s');
    await delay(100);
  }
  const node = [];
  const sevsup = [];
  await timed(['-e', '']); // warm the file cache for both
  for (let i = 0; i < RUNS; i += 1) {
    node.push(await timed(['-e', '']));
    sevsup.push(await timed(status));
  }
  const result = {
    runs: RUNS,
    nodeMedianMs: Number(median(node).toFixed(1)),
    statusMedianMs: Number(median(sevsup).toFixed(1)),
    extraMs: Number((median(sevsup) - median(node)).toFixed(1)),
    targetExtraMs: TARGET_EXTRA_MS,
  };
  result.pass = result.extraMs <= TARGET_EXTRA_MS;
  if (JSON_OUT) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(
      `sevsup status: median ${result.statusMedianMs} ms; node -e '': median ${result.nodeMedianMs} ms; ` +
        `extra ${result.extraMs} ms (target ≤ ${TARGET_EXTRA_MS}) ${result.pass ? 'PASS' : 'FAIL'} [${RUNS} runs each, alternating]\n`,
    );
  }
} finally {
  daemon.kill('SIGTERM');
  await new Promise((resolve) => daemon.once('close', resolve));
  await rm(root, { recursive: true, force: true });
}
