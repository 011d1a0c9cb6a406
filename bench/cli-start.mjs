#!/usr/bin/env node
// Start-up cost of the light commands against `node -e ''` in the same run: `sevsup --version`,
// `sevsup status <vm>` answered by a daemon (simulated platform; one guest that is not started, so
// status is served from memory, no QEMU needed) and `sevsup status <vm>` with no daemon (its error
// path, exit 8), each a fresh process, wall time to exit, in turn within each round.
// Targets (issue 11): the median of each ≤ the median of `node -e ''` + 15 ms.
// Usage: node bench/cli-start.mjs [--runs N] [--json]   (needs the build: npm run build)
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { median, rounds, SEVSUP, spawnSimDaemon, timeNode } from './bench-lib.mjs';
import { reportTargets, target } from './targets.mjs';

const args = process.argv.slice(2);
const runsArg = args.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 40;
const JSON_OUT = args.includes('--json');
const TARGET_EXTRA_MS = 15;
/** SUP_ERR_API_UNREACHABLE's exit code (src/errors.ts). */
const EXIT_UNREACHABLE = 8;

if (!existsSync(new URL('../dist/bundle/sevsup-light.cjs', import.meta.url))) {
  process.stderr.write('bench/cli-start: the build is missing (npm run build)\n');
  process.exit(2);
}

const root = await mkdtemp(join(tmpdir(), 'bs-'));
const socket = join(root, 's.sock');
await mkdir(join(root, 'vms'));
await writeFile(join(root, 'vms', 'web.conf'), 'name: web\nmemory: 256\ncores: 1\nbios: ovmf\namd_sev: type=std\n');
const daemon = spawnSimDaemon(root, socket);

const COMMANDS = {
  "node -e ''": { argv: ['-e', ''] },
  'sevsup --version': { argv: [SEVSUP, '--version'] },
  'sevsup status <vm> (daemon)': { argv: [SEVSUP, 'status', 'web', '--socket', socket] },
  'sevsup status <vm> (no daemon)': { argv: [SEVSUP, 'status', 'web', '--socket', join(root, 'none.sock')], ok: [EXIT_UNREACHABLE] },
};

try {
  for (
    let i = 0;
    !(await timeNode(COMMANDS['sevsup status <vm> (daemon)'].argv).then(
      () => true,
      () => false,
    ));
    i += 1
  ) {
    if (i > 100) throw new Error('the daemon did not answer within 10 s');
    await delay(100);
  }
  const names = Object.keys(COMMANDS);
  const samples = await rounds(names, RUNS, (name) => timeNode(COMMANDS[name].argv, COMMANDS[name].ok));
  const round1 = (ms) => Number(ms.toFixed(1));
  const base = median(samples[names[0]]);
  const rows = names.slice(1).map((name) => {
    const ms = median(samples[name]);
    return target(`${name} − node -e ''`, round1(ms - base), {
      unit: 'ms',
      max: TARGET_EXTRA_MS,
      detail: `${round1(ms)} vs ${round1(base)} ms`,
    });
  });
  reportTargets('cli-start', rows);
  if (JSON_OUT) process.stdout.write(`${JSON.stringify({ runs: RUNS, nodeMedianMs: round1(base), rows })}\n`);
  else {
    process.stdout.write(`node -e '': median ${round1(base)} ms [${RUNS} runs each, in turn]\n`);
    for (const r of rows)
      process.stdout.write(
        `${r.metric.padEnd(48)} ${String(r.value).padStart(6)} ms (${r.detail}; target ≤ ${TARGET_EXTRA_MS}) ${r.ok ? 'PASS' : 'FAIL'}\n`,
      );
  }
} finally {
  daemon.child.kill('SIGTERM');
  await daemon.exited;
  await rm(root, { recursive: true, force: true });
}
