// What the CLI does when whoever reads its standard output goes away (`sevsup … | head -1`): end at
// once, silently, with the status a Unix tool killed by SIGPIPE has in a shell (128 + 13), as
// `yes | head -1` does. Node ignores SIGPIPE and turns it into an 'error' event that, unhandled,
// prints a stack trace. Owns: that one listener. Must not: swallow any other stream error.

/** 128 + SIGPIPE (13): what a shell reports for a writer whose reader has gone. */
export const EXIT_SIGPIPE = 141;

interface ErrorEmitter {
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/**
 * On EPIPE from `stream`, call `exit(EXIT_SIGPIPE)` (no output: nobody reads it). Any other error
 * is thrown again, as it would have been without the listener.
 */
export function exitQuietlyOnEpipe(stream: ErrorEmitter, exit: (code: number) => never = (code) => process.exit(code)): void {
  stream.on('error', (error: Error) => {
    if ((error as NodeJS.ErrnoException).code === 'EPIPE') exit(EXIT_SIGPIPE);
    throw error;
  });
}
