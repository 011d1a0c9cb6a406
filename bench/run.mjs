#!/usr/bin/env node
// `npm run bench`: every benchmark in bench/, one after another (each alternates its own
// baseline and subject in the same run, so the ratios hold on a busy machine), then one table of
// every target: measured value, bound, PASS/MISS. Exit 1 when a benchmark fails to run; a missed
// target is reported, not an error (the numbers are what matter).
// Usage: node bench/run.mjs [name…]   (names without .mjs; default: all). Needs `npm run build`
// and the test assets (bash scripts/setup.sh).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('./', import.meta.url));
/** Modules of bench/ that are helpers, not benchmarks. */
const HELPERS = new Set(['run.mjs', 'targets.mjs', 'raw-qmp-client.mjs', 'bench-lib.mjs']);
const all = readdirSync(BENCH)
  .filter((f) => f.endsWith('.mjs') && !HELPERS.has(f))
  .sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !all.includes(`${w}.mjs`));
if (unknown.length > 0) {
  process.stderr.write(
    `bench: no benchmark ${unknown.join(', ')} in bench/ (there are: ${all.map((f) => f.replace(/\.mjs$/, '')).join(', ')})\n`,
  );
  process.exit(2);
}
const benches = wanted.length > 0 ? wanted.map((w) => `${w}.mjs`) : all;

const dir = mkdtempSync(join(tmpdir(), 'sevsup-bench-'));
const report = join(dir, 'targets.jsonl');
const failed = [];
try {
  for (const file of benches) {
    process.stdout.write(`\n=== bench/${file}\n`);
    const started = Date.now();
    const r = spawnSync(process.execPath, [join(BENCH, file)], { stdio: 'inherit', env: { ...process.env, SEVSUP_BENCH_REPORT: report } });
    process.stdout.write(
      `=== bench/${file}: ${r.status === 0 ? 'done' : `FAILED (exit ${r.status ?? r.signal})`} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
    );
    if (r.status !== 0) failed.push(file);
  }
  const lines = (() => {
    try {
      return readFileSync(report, 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  })();
  const rows = lines.flatMap((l) => {
    const { bench, rows: r } = JSON.parse(l);
    return r.map((row) => ({ bench, ...row }));
  });
  const fmt = (v, unit) => (unit === '×' ? `${v.toFixed(2)}×` : `${v.toFixed(v < 10 ? 2 : 1)} ${unit}`);
  const bound = (row) =>
    [row.max === undefined ? '' : `≤ ${fmt(row.max, row.unit)}`, row.min === undefined ? '' : `≥ ${fmt(row.min, row.unit)}`]
      .filter(Boolean)
      .join(', ');
  const table = [
    ['bench', 'target', 'measured', 'bound', '', 'from'],
    ...rows.map((r) => [r.bench, r.metric, fmt(r.value, r.unit), bound(r), r.ok ? 'PASS' : 'MISS', r.detail]),
  ];
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  process.stdout.write('\n');
  for (const row of table)
    process.stdout.write(`${row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')}\n`);
  const missed = rows.filter((r) => !r.ok).length;
  process.stdout.write(
    `\n${rows.length} targets: ${rows.length - missed} met, ${missed} missed${failed.length ? `; benchmarks that failed to run: ${failed.join(', ')}` : ''}\n`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = failed.length > 0 ? 1 : 0;
