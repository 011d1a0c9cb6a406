// A bounded tail of a child's stderr, split into lines as it arrives.
// Owns: the byte bound and line splitting, and reading the same bound back from a log file (a
// detached QEMU's stderr). Must not: log (the launcher logs the lines).
// Why bounded: QEMU can print without end (a guest flooding a warning); failures need only the
// last messages, as qemu.machine's VMLaunchFailure and libvirt's "unexpectedly closed" do.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

/** Bytes of stderr kept for error messages: a few dozen QEMU lines. */
export const STDERR_TAIL_BYTES = 8 * 1024;

export class StderrTail {
  readonly #max: number;
  #tail: Buffer = Buffer.alloc(0);
  #partial = '';
  // Keeps a UTF-8 sequence split across chunks whole.
  readonly #decoder = new StringDecoder('utf8');

  constructor(maxBytes = STDERR_TAIL_BYTES) {
    this.#max = maxBytes;
  }

  /** Add a chunk; returns the lines it completed (without the newline). */
  push(chunk: Buffer | string): string[] {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const joined = Buffer.concat([this.#tail, bytes]);
    this.#tail = joined.length > this.#max ? joined.subarray(joined.length - this.#max) : joined;
    const text = this.#partial + this.#decoder.write(bytes);
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    // A line without end must not grow without bound either; hand it out in pieces.
    if (this.#partial.length > this.#max) {
      lines.push(this.#partial);
      this.#partial = '';
    }
    return lines;
  }

  /** The unterminated last line, if any (call at end of stream). */
  flush(): string[] {
    const rest = this.#partial + this.#decoder.end();
    this.#partial = '';
    return rest === '' ? [] : [rest];
  }

  /** The last bytes of stderr as text; a cut first line is dropped so the tail starts on a line. */
  text(): string {
    const text = this.#tail.toString('utf8');
    if (this.#tail.length < this.#max) return text;
    const newline = text.indexOf('\n');
    return newline >= 0 && newline < text.length - 1 ? text.slice(newline + 1) : text;
  }
}

/** Lines QEMU printed to stderr that say what went wrong: non-blank, warnings left out. */
export function errorLines(stderrTail: string): string[] {
  return stderrTail
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.trim() !== '' && !/: warning: /.test(line));
}

/**
 * The last `maxBytes` of `path` written after byte `offset` (where one launch's output starts in an
 * appended log), cut to whole lines as StderrTail.text() does; '' when the file cannot be read.
 */
export function readFileTail(path: string, offset = 0, maxBytes = STDERR_TAIL_BYTES): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(offset, size - maxBytes);
    if (size <= start) return '';
    const buffer = Buffer.alloc(size - start);
    const text = buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, start)).toString('utf8');
    if (start === offset) return text;
    // Cut in the middle of the output: start on a whole line, as StderrTail.text() does.
    const newline = text.indexOf('\n');
    return newline >= 0 && newline < text.length - 1 ? text.slice(newline + 1) : text;
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}
