// What the CLI does when whoever reads its standard output goes away (`sevsup … | head -1`): end at
// once, silently, with the status a Unix tool killed by SIGPIPE has in a shell (128 + 13), as
// `yes | head -1` does. Node ignores SIGPIPE and turns it into an 'error' event that, unhandled,
// prints a stack trace. Owns: that one listener, and the light commands' direct writes to fd 1
// and 2 (writeOut/writeErr), which end the same way. Must not: swallow any other stream error.
import { writeSync } from 'node:fs';

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

/** Set by writeStdioDirectly(): the light commands' process writes to fd 1 and 2 itself. */
let direct = false;

/**
 * From now on writeOut/writeErr write straight to fd 1 and 2 instead of through process.stdout and
 * process.stderr. The light commands' entry (cli/light-main.ts) turns it on: the first use of
 * process.stdout makes Node build a stream for the fd (for a file or /dev/null it also loads
 * node:stream), about a tenth of `sevsup --version`'s and `status`'s cost over `node -e ''`
 * (callgrind instruction counts). Everything else keeps the streams (tests capture them).
 */
export function writeStdioDirectly(): void {
  direct = true;
}

/** process.stdout.write(text), or (writeStdioDirectly) the same bytes straight to fd 1; EPIPE ends the process with 141 either way. */
export function writeOut(text: string): void {
  if (direct) writeFd(1, text);
  else process.stdout.write(text);
}

/** process.stderr.write(text), or (writeStdioDirectly) the same bytes straight to fd 2. */
export function writeErr(text: string): void {
  if (direct) writeFd(2, text);
  else process.stderr.write(text);
}

/**
 * What a direct write cannot finish goes to the fd's stream: EAGAIN (an fd someone left
 * non-blocking, which the stream waits out) or any other error, which the stream then reports as
 * it always did. EPIPE on fd 1 is the SIGPIPE exit.
 */
function writeFd(fd: 1 | 2, text: string): void {
  let rest = Buffer.from(text, 'utf8');
  try {
    while (rest.length > 0) rest = rest.subarray(writeSync(fd, rest));
    return;
  } catch (error: unknown) {
    if (fd === 1 && (error as NodeJS.ErrnoException).code === 'EPIPE') process.exit(EXIT_SIGPIPE);
  }
  const stream = fd === 1 ? process.stdout : process.stderr;
  if (fd === 1) exitQuietlyOnEpipe(stream);
  stream.write(rest);
}
