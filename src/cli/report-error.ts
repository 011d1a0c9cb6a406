// Top-level error printing for the `sevsup` command. Owns: error → text on stderr + exit code (never
// a stack trace for a user error). Used by cli/main.ts and by actions that finish the process
// themselves (`sevsup daemon`), so no action imports cli/main. Must not: load commander (cli/main
// does, on first use, and notes it here so that its errors are recognised).
import type * as CommanderModule from 'commander';
import { isSupervisorError, EXIT } from '../errors.js';
import { writeErr } from './epipe.js';

let commander: typeof CommanderModule | undefined;

/** cli/main.ts loaded commander: from now on its CommanderError is a usage error (or --help's 0). */
export function noteCommander(loaded: typeof CommanderModule): void {
  commander = loaded;
}

/** Print an error for people (never a stack trace for a user error) and return its exit code. */
export function reportError(error: unknown): number {
  if (commander !== undefined && error instanceof commander.CommanderError) {
    // --help and --version exit through here with code 0; commander already printed its text.
    if (error.exitCode === 0) return EXIT.ok;
    return EXIT.usage;
  }
  if (isSupervisorError(error)) {
    writeErr(`sevsup: ${error.message} [${error.code}]\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  writeErr(`sevsup: internal error: ${message} [SUP_ERR_INTERNAL]\n`);
  if (process.env['SEVSUP_DEBUG'] && error instanceof Error && error.stack) writeErr(`${error.stack}\n`);
  return EXIT.internal;
}
