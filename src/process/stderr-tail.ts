// A bounded, redacted tail of QEMU's stderr, split into lines as it arrives.
// Owns: the byte bound and line splitting, reading the same bound back from a log file (a
// detached QEMU's stderr), and the redaction every copy of QEMU's words goes through (errors,
// state.json, log lines, the API). Must not: log (the launcher logs the lines).
// Why bounded: QEMU can print without end (a guest flooding a warning); failures need only the
// last messages, as qemu.machine's VMLaunchFailure and libvirt's "unexpectedly closed" do.
// Why redacted: QEMU's stderr can carry command arguments: trace events print them (an enabled
// `qmp_enter_sev_inject_launch_secret` printed the owner's packet header and secret), and error
// locations echo a command-line option's whole value. Only QEMU's own error/warning lines are kept,
// an echoed option value and long base64/hex runs are cut, and each line is bounded.
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

  /**
   * The last bytes of stderr as text, as the child wrote them (the launcher redacts QEMU's); a cut
   * first line is dropped so the tail starts on a line.
   */
  text(): string {
    const text = this.#tail.toString('utf8');
    if (this.#tail.length < this.#max) return text;
    const newline = text.indexOf('\n');
    return newline >= 0 && newline < text.length - 1 ? text.slice(newline + 1) : text;
  }
}

/** The program names whose own messages (error_report, warn_report) are kept: QEMU's, and the simulator's. */
const OWN_LINE = /^(qemu-system-[a-z0-9_]+|qemu-[a-z0-9_-]+|sevsup-sim): /;
/** `prog: -option VALUE: message`, VALUE a JSON object (greedy to its last brace) or one token. */
const OPTION_ECHO = /^(-[a-z0-9_-]+) (?:\{.*\}|[^\s:]+|[^\s]+(?=: )): /i;
/** Long runs that look like key material or packets (base64 of >= 24 bytes, hex of >= 32). */
const BLOB = /[A-Za-z0-9+/]{32,}={0,2}|[0-9a-fA-F]{64,}/g;
/**
 * QEMU's accelerator messages that carry no program prefix (kvm-all.c prints them with fprintf):
 * fixed texts with an errno string, never an argument, and often the only reason QEMU gives.
 */
const KVM_LINE = /^(Could not access KVM kernel module: |ioctl\(KVM_CREATE_VM\) failed: |KVM internal error\. |kvm_init_vcpu: )/;
/** A kept line is cut to this many characters. */
export const MAX_STDERR_LINE = 400;

/**
 * One line of QEMU's stderr as it may be copied anywhere, or null when it must be left out (it is
 * not one of QEMU's own messages: trace output, a guest's or a library's text).
 */
export function redactQemuLine(line: string): string | null {
  const own = OWN_LINE.exec(line);
  if (own === null) return KVM_LINE.test(line) ? bounded(line.replace(BLOB, '[redacted]')) : null;
  let rest = line.slice(own[0].length);
  const echo = OPTION_ECHO.exec(rest);
  // A short plain value (`-accel kvm`) says which option failed; a JSON object or long value is cut.
  const value = echo?.[0].slice(echo[1]!.length + 1, -2) ?? '';
  const shown = /^[A-Za-z0-9._-]{1,32}$/.test(value) ? value : '…';
  if (echo !== null) rest = `${echo[1]} ${shown}: ${rest.slice(echo[0].length)}`;
  else if (/^-[A-Za-z0-9_-]+ /.test(rest)) rest = `${rest.split(' ', 1)[0]} …: (message left out: it echoes the option)`;
  rest = rest.replace(BLOB, '[redacted]');
  return bounded(`${own[1]}: ${rest}`);
}

function bounded(line: string): string {
  return line.length > MAX_STDERR_LINE ? `${line.slice(0, MAX_STDERR_LINE)}…` : line;
}

/** Text of QEMU's stderr with every line through redactQemuLine; how many were left out is said once. */
export function redactQemuOutput(text: string): string {
  const kept: string[] = [];
  let dropped = 0;
  const lines = text.split('\n');
  const last = lines.pop();
  for (const line of lines) {
    const safe = redactQemuLine(line);
    if (safe === null) dropped += line.trim() === '' ? 0 : 1;
    else kept.push(safe);
  }
  const tail = last === undefined || last === '' ? null : redactQemuLine(last);
  if (last !== undefined && last !== '' && tail === null) dropped += 1;
  if (dropped > 0)
    kept.unshift(
      `(sevsup left out ${dropped} line${dropped === 1 ? '' : 's'} of QEMU output that can carry command arguments; see qemu.log)`,
    );
  return kept.length === 0 ? '' : `${kept.join('\n')}${tail === null ? '\n' : `\n${tail}`}`;
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
 * appended log), cut to whole lines and redacted as StderrTail.text() does; '' when the file cannot
 * be read.
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
    // A rotated log (log-cap.ts) is shorter than where this launch started: read what is there.
    const start = Math.max(offset > size ? 0 : offset, size - maxBytes);
    if (size <= start) return '';
    const buffer = Buffer.alloc(size - start);
    const text = buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, start)).toString('utf8');
    if (start === offset) return redactQemuOutput(text);
    // Cut in the middle of the output: start on a whole line, as StderrTail.text() does.
    const newline = text.indexOf('\n');
    return redactQemuOutput(newline >= 0 && newline < text.length - 1 ? text.slice(newline + 1) : text);
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}
