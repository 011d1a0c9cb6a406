#!/usr/bin/env node
// A forced stop (`sevsup stop --force`, the lifecycle's stop({force:true}) → QemuProcess.kill()) on a
// process that ignores SIGTERM, against a hand-made baseline in the same run: spawn the same process,
// SIGKILL it, wait for its exit. Alternating runs, medians. The unit test (lifecycle-attach) checks
// that a forced stop goes straight to SIGKILL; this is where its speed is measured. Target: ratio ≤ 1.5.
// Usage: node bench/force-stop.mjs [--runs N] [--json]   (needs dist/)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { reportTargets, target } from './targets.mjs';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const FIXTURE = join(REPO, 'test', 'unit', 'process', 'fixtures', 'ignore-sigterm.mjs');
const LAUNCHER = join(REPO, 'dist', 'process', 'launcher.js');
const args = process.argv.slice(2);
const runsArg = args.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 15;
const JSON_OUT = args.includes('--json');
const TARGET_RATIO = 1.5;

if (!existsSync(LAUNCHER)) {
  process.stderr.write(`bench/force-stop: ${LAUNCHER} is missing (npm run build)\n`);
  process.exit(2);
}
const { launchQemu } = await import(LAUNCHER);

/** Resolves once the child has installed its SIGTERM handler (it says "ready" on stderr). */
function readyOn(stream) {
  return new Promise((resolve) => {
    let seen = '';
    stream.on('data', (chunk) => {
      seen += String(chunk);
      if (seen.includes('ready')) resolve();
    });
  });
}

/** The launcher's ready check: wait until the child's stderr tail says `text`. */
const stderrSays = (text) => async (proc) => {
  while (!proc.stderrTail().includes(text)) await new Promise((resolve) => setTimeout(resolve, 5));
};

async function baselineOnce() {
  const child = spawn(process.execPath, [FIXTURE], { stdio: ['ignore', 'ignore', 'pipe'] });
  await readyOn(child.stderr);
  const started = performance.now();
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
  return performance.now() - started;
}

async function sevsupOnce() {
  const proc = await launchQemu({ binary: process.execPath, argv: [FIXTURE], ready: stderrSays('ready') });
  const started = performance.now();
  const exit = await proc.kill();
  const ms = performance.now() - started;
  if (exit.how !== 'sigkill') throw new Error(`forced stop ended by ${exit.how}, expected sigkill`);
  return ms;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x) => Math.round(x * 100) / 100;
const base = [];
const ours = [];
await baselineOnce();
await sevsupOnce().catch(() => undefined);
for (let i = 0; i < RUNS; i++) {
  base.push(await baselineOnce());
  ours.push(await sevsupOnce());
}
const result = {
  runs: RUNS,
  baselineMedianMs: round(median(base)),
  forceStopMedianMs: round(median(ours)),
  ratio: round(median(ours) / median(base)),
};
const pass = result.ratio <= TARGET_RATIO;
if (JSON_OUT) process.stdout.write(`${JSON.stringify({ ...result, target: TARGET_RATIO, pass })}\n`);
else
  process.stdout.write(
    `force stop ${result.forceStopMedianMs} ms vs SIGKILL by hand ${result.baselineMedianMs} ms: ratio ${result.ratio} (target ≤ ${TARGET_RATIO}) ${pass ? 'ok' : 'SLOW'} [${RUNS} runs each, alternating]\n`,
  );
reportTargets('force-stop', [
  target('forced stop / SIGKILL by hand', result.ratio, {
    unit: '×',
    max: TARGET_RATIO,
    detail: `${result.forceStopMedianMs} vs ${result.baselineMedianMs} ms`,
  }),
]);
