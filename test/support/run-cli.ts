// Test helper: run the sevsup CLI in-process (runCli) and collect what it writes to stdout and
// stderr, for asserting exact output and exit codes without a build.
import { runCli } from '../../src/cli/main.js';

export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** `sevsup ARGS…`; stdout and stderr are restored whatever happens. */
export async function runCliCaptured(...args: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const saved = { out: process.stdout.write, err: process.stderr.write };
  process.stdout.write = ((chunk: string | Uint8Array) => out.push(String(chunk)) > 0) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => err.push(String(chunk)) > 0) as typeof process.stderr.write;
  // runCli reports through process.exitCode too: start each run from a clean slate.
  process.exitCode = undefined;
  try {
    const code = await runCli(['node', 'sevsup', ...args]);
    return { code, out: out.join(''), err: err.join('') };
  } finally {
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
    process.exitCode = undefined;
  }
}
