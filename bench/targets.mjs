// The one way a benchmark reports its targets to bench/run.mjs: each bench calls reportTargets()
// once with its rows; when SEVSUP_BENCH_REPORT names a file (run.mjs sets it) the rows are
// appended to it as one JSON line, for run.mjs's table. A bench run on its own just prints its
// own output as before. Owns: the row shape. Must not: measure anything.
import { appendFileSync } from 'node:fs';

/**
 * A target row. `value` is what was measured, in `unit` ('×' for a ratio against the baseline
 * measured in the same run, 'ms' for an absolute or an excess over the baseline); `max`/`min` the
 * bound; `detail` the medians it came from.
 * @param {string} metric
 * @param {number} value
 * @param {{ unit: string, max?: number, min?: number, detail?: string }} bound
 */
export function target(metric, value, bound) {
  const ok = (bound.max === undefined || value <= bound.max) && (bound.min === undefined || value >= bound.min);
  return { metric, value, unit: bound.unit, max: bound.max, min: bound.min, ok, detail: bound.detail ?? '' };
}

/** Hand `rows` (from target()) to bench/run.mjs, if it is the caller. */
export function reportTargets(bench, rows) {
  const file = process.env['SEVSUP_BENCH_REPORT'];
  if (file) appendFileSync(file, `${JSON.stringify({ bench, rows })}\n`);
}
