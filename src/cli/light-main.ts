// The light commands' own entry (commands/light.ts: plain `status <vm>`, `list`, `--version`):
// bin/sevsup runs it first, from a small CommonJS bundle of its own (scripts/bundle.mjs), and
// loads the full CLI (an ES module bundle, commander, the command table) only when it answers
// null. An ES module entry alone costs a process about 12 ms more than `node -e ''` (Node's ESM
// loader and its asynchronous file reads), which is most of the light commands' budget.
// Owns: that dispatch. Must not: import anything cli/main.ts would load anyway but a light command
// does not need (commander, the command table).
import { EXIT } from '../errors.js';
import { parseLight, runLight } from './commands/light.js';
import { writeStdioDirectly } from './epipe.js';
import { reportError } from './report-error.js';

/** Run `argv` (process.argv form) if it is a light invocation and resolve to its exit code; null otherwise. Never rejects. */
export function runLightCli(argv: readonly string[]): Promise<number> | null {
  const light = parseLight(argv);
  if (light === null) return null;
  writeStdioDirectly();
  return runLight(light).then(() => (typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok), reportError);
}
