// "Did you mean …?" for misspelt config keys and property names (e.g. the seed's own typo
// `reduced-phys-bios` for QEMU's `reduced-phys-bits`). Pure: no I/O.
// Owns: the edit-distance rule for suggestions. Must not: decide whether a name is valid.

/** Largest edit distance still offered as a suggestion: one or two typos, not a different word. */
const MAX_SUGGEST_DISTANCE = 2;

/** Names longer than this are not compared (hostile input must not cost quadratic time). */
const MAX_COMPARED_CHARS = 64;

/** Levenshtein distance, case-insensitive (so `Memory` suggests `memory`). */
function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= y.length; j += 1) {
      const substitution = (previous[j - 1] ?? 0) + (x[i - 1] === y[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[y.length] ?? 0;
}

/** The known name closest to `name`, if it is within MAX_SUGGEST_DISTANCE; ties go to the first. */
export function closestName(name: string, known: readonly string[]): string | undefined {
  if (name.length > MAX_COMPARED_CHARS) return undefined;
  let best: string | undefined;
  let bestDistance = MAX_SUGGEST_DISTANCE + 1;
  for (const candidate of known) {
    const distance = editDistance(name, candidate);
    // Two edits turn `os` into `cpu`-like noise; keep suggestions to names mostly still intact.
    if (distance < bestDistance && distance * 2 < candidate.length) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** `" (did you mean 'x'?)"` or `''`, to append to an "unknown …" message. */
export function didYouMean(name: string, known: readonly string[]): string {
  const suggestion = closestName(name, known);
  return suggestion === undefined ? '' : ` (did you mean '${suggestion}'?)`;
}
