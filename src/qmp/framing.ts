// Splits a QMP byte stream into top-level JSON values the way QEMU's json-streamer does: a value
// ends when its braces and brackets balance (not at a newline), counted outside "…" and '…'
// strings with backslash escapes. Bytes are scanned once, as they arrive; UTF-8 is decoded only
// for complete values, so a character split across chunks is never seen half-decoded.
// Owns: message boundaries, the size and nesting bounds, resynchronisation (see QmpFramer).
// Must not: parse JSON (callers do, strictly or not), do I/O, or throw on bad input — bad input
// is an `error` item and the stream goes on.

/** A framed item: a complete top-level JSON value's text, or one report of bad input. */
export type FramedItem =
  | { readonly kind: 'value'; readonly text: string }
  | { readonly kind: 'error'; readonly reason: FramingErrorReason; readonly message: string };

export type FramingErrorReason = 'too-large' | 'too-deep' | 'bad-input';

export interface FramerLimits {
  /** Largest value in bytes. @default MAX_QMP_MESSAGE_BYTES */
  readonly maxBytes?: number;
  /** Deepest nesting of objects and arrays. @default MAX_QMP_NESTING */
  readonly maxDepth?: number;
}

/** 10 MiB, as libvirt and qemu.qmp bound a QMP message (query-qmp-schema is ~200 KiB on 7.2). */
export const MAX_QMP_MESSAGE_BYTES = 10 * 1024 * 1024;
/** QEMU's own MAX_NESTING in json-streamer.c; nothing QEMU sends comes close. */
export const MAX_QMP_NESTING = 1024;
/** How much of a stray token an error message quotes; enough to recognise, bounded for logs. */
const QUOTE_LIMIT = 32;

// Scanner states.
const IDLE = 0; // between values
const NEST = 1; // inside an object or array, outside strings
const STR = 2; // inside a string (top-level or nested)
const STR_ESC = 3; // just after a backslash inside a string
const TOKEN = 4; // inside a bare top-level scalar (number or literal)
const RECOVER = 5; // skipping stray bytes between values

// Byte classes, looked up once per byte.
const C_OTHER = 0;
const C_WS = 1;
const C_OPEN = 2; // { [
const C_CLOSE = 3; // } ]
const C_QUOTE = 4; // " '
const C_BACKSLASH = 5;
const C_FORBIDDEN = 6; // control bytes other than \t \r \n; 0xFE, 0xFF
const C_TOKEN = 7; // bytes that may form a bare number or literal
const C_LINE = 8; // \n and \r: whitespace that also ends recovery

const CLASS = new Uint8Array(256);
for (let b = 0; b < 0x20; b++) CLASS[b] = C_FORBIDDEN;
const CLASS_MEMBERS: readonly (readonly [string, number])[] = [
  ['\xfe\xff', C_FORBIDDEN],
  [' \t', C_WS],
  ['\n\r', C_LINE],
  ['{[', C_OPEN],
  ['}]', C_CLOSE],
  ['"\'', C_QUOTE],
  ['\\', C_BACKSLASH],
  ['abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.', C_TOKEN],
];
for (const [chars, cls] of CLASS_MEMBERS) for (const ch of chars) CLASS[ch.charCodeAt(0)] = cls;

/** Bytes that need no action inside an object or array (outside strings). */
const NEST_SKIP = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const cls = CLASS[b];
  NEST_SKIP[b] = cls === C_OTHER || cls === C_WS || cls === C_LINE || cls === C_TOKEN || cls === C_BACKSLASH ? 1 : 0;
}

const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;

/** RFC 8259 number, or one of the three literal names. */
const BARE_SCALAR = /^(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null)$/;

function describeByte(byte: number): string {
  return byte >= 0x20 && byte < 0x7f ? `'${String.fromCharCode(byte)}'` : `byte 0x${byte.toString(16).padStart(2, '0')}`;
}

function quote(text: string): string {
  return text.length > QUOTE_LIMIT ? `'${text.slice(0, QUOTE_LIMIT)}…'` : `'${text}'`;
}

/**
 * Incremental splitter of a QMP byte stream into top-level JSON values.
 *
 * Resynchronisation (how it gets back in step after an error):
 * - An error inside a value (too large, too deep, a closer that does not match its opener) is
 *   reported once; the rest of that value is then skipped without buffering, still tracking
 *   strings and nesting, until the nesting returns to zero. This is what QEMU's current
 *   json-streamer does ("during error recovery eat tokens until parentheses balance").
 * - A control byte other than \t \r \n, or 0xFE/0xFF, anywhere (even inside a string) drops
 *   whatever is in progress and returns to the top level: the QMP spec's way for a peer to force
 *   the parser into a known-good state (QEMU's lexer treats them as lexical errors). It is
 *   reported as an error only when it cut a value short.
 * - Stray bytes between values are reported once, then skipped up to the next `{`, `[` or line
 *   end (QEMU's lexer recovery state); a stray `}` or `]` is reported on its own.
 *
 * ```ts
 * const framer = new QmpFramer();
 * socket.on('data', (chunk) => { for (const item of framer.push(chunk)) … });
 * ```
 * Each byte is examined once; bytes of an unfinished value are kept (copied) until it completes.
 */
export class QmpFramer {
  readonly maxBytes: number;
  readonly maxDepth: number;

  private state = IDLE;
  private quoteByte = 0;
  /** Nesting depth; the openers up to maxDepth are kept to detect `{]`. */
  private depth = 0;
  private readonly openers: Uint8Array;
  /** Bytes of the current value held in earlier chunks (always copies). */
  private pieces: Buffer[] = [];
  private heldBytes = 0;
  /** True while the rest of a value that was already reported is being skipped. */
  private discarding = false;

  constructor(limits: FramerLimits = {}) {
    this.maxBytes = limits.maxBytes ?? MAX_QMP_MESSAGE_BYTES;
    this.maxDepth = limits.maxDepth ?? MAX_QMP_NESTING;
    if (!(Number.isInteger(this.maxBytes) && this.maxBytes > 0)) throw new RangeError('maxBytes must be a positive integer');
    if (!(Number.isInteger(this.maxDepth) && this.maxDepth > 0)) throw new RangeError('maxDepth must be a positive integer');
    this.openers = new Uint8Array(this.maxDepth);
  }

  /** Feed the next chunk (a string as UTF-8); returns what it completed, in stream order. */
  push(chunk: Buffer | Uint8Array | string): FramedItem[] {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const out: FramedItem[] = [];
    const n = buf.length;
    // Start of the current value within this chunk (-1: none, or it started in an earlier chunk).
    let start = -1;
    // Index at which the current value would exceed maxBytes.
    let limitAt = this.state === IDLE || this.state === RECOVER || this.discarding ? n + 1 : this.maxBytes - this.heldBytes;
    let state = this.state;
    let i = 0;

    while (i < n) {
      const byte = buf[i] as number;
      const cls = CLASS[byte] as number;
      // limitAt is past the chunk unless a value is being held; a bare scalar's terminator is
      // not part of it.
      if (i >= limitAt && state !== IDLE && state !== RECOVER && (state !== TOKEN || cls === C_TOKEN)) {
        this.overflow(out);
        start = -1;
        limitAt = n + 1;
      }
      if (cls === C_FORBIDDEN && (state === NEST || state === STR || state === STR_ESC)) {
        state = this.forbidden(out, byte);
        start = -1;
        limitAt = n + 1;
        i++;
        continue;
      }
      switch (state) {
        case IDLE:
          if (cls === C_WS || cls === C_LINE || cls === C_FORBIDDEN) {
            // A forbidden byte here is a peer forcing known-good state while already in it.
            i++;
            continue;
          }
          if (cls === C_OPEN) {
            start = i;
            limitAt = i + this.maxBytes;
            this.discarding = false;
            this.depth = 1;
            this.openers[0] = byte;
            state = NEST;
          } else if (cls === C_QUOTE) {
            start = i;
            limitAt = i + this.maxBytes;
            this.discarding = false;
            this.depth = 0;
            this.quoteByte = byte;
            state = STR;
          } else if (cls === C_TOKEN) {
            start = i;
            limitAt = i + this.maxBytes;
            this.discarding = false;
            state = TOKEN;
          } else if (cls === C_CLOSE) {
            out.push(badInput(`stray ${describeByte(byte)}`));
          } else {
            out.push(badInput(`stray ${describeByte(byte)}`));
            state = RECOVER;
          }
          i++;
          continue;

        case NEST:
          if (cls === C_QUOTE) {
            this.quoteByte = byte;
            state = STR;
          } else if (cls === C_OPEN) {
            if (this.depth < this.maxDepth) {
              this.openers[this.depth] = byte;
            } else if (!this.discarding) {
              out.push({ kind: 'error', reason: 'too-deep', message: `nesting deeper than ${this.maxDepth}` });
              this.startDiscarding();
              start = -1;
              limitAt = n + 1;
            }
            this.depth++;
          } else if (cls === C_CLOSE) {
            if (!this.discarding && this.depth <= this.maxDepth) {
              const opener = this.openers[this.depth - 1];
              if ((opener === OPEN_BRACE) !== (byte === CLOSE_BRACE)) {
                out.push(badInput(`mismatched ${describeByte(byte)} closing ${describeByte(opener ?? OPEN_BRACKET)}`));
                this.startDiscarding();
                start = -1;
                limitAt = n + 1;
              }
            }
            this.depth--;
            if (this.depth === 0) {
              state = this.finish(out, buf, start, i + 1, false);
              start = -1;
            }
          } else {
            // Fast path: skip the run of bytes that cannot change the nesting (stopping at the
            // size limit so that the check at the loop top fires on the right byte).
            const stop = Math.min(limitAt, n);
            i++;
            while (i < stop && NEST_SKIP[buf[i] as number] === 1) i++;
            continue;
          }
          i++;
          continue;

        case STR:
          if (byte === this.quoteByte) {
            if (this.depth === 0) {
              state = this.finish(out, buf, start, i + 1, false);
              start = -1;
            } else {
              state = NEST;
            }
          } else if (cls === C_BACKSLASH) {
            state = STR_ESC;
          } else {
            // Fast path through string contents, as for NEST.
            const q = this.quoteByte;
            const stop = Math.min(limitAt, n);
            i++;
            while (i < stop) {
              const b = buf[i] as number;
              if (b === q || b === BACKSLASH || CLASS[b] === C_FORBIDDEN) break;
              i++;
            }
            continue;
          }
          i++;
          continue;

        case STR_ESC:
          state = STR;
          i++;
          continue;

        case TOKEN:
          if (cls === C_TOKEN) {
            i++;
            continue;
          }
          // The byte after a bare scalar ends it and is then looked at again from IDLE.
          state = this.finish(out, buf, start, i, true);
          start = -1;
          continue;

        case RECOVER:
          if (cls === C_OPEN) {
            state = IDLE;
            continue;
          }
          if (cls === C_LINE || cls === C_FORBIDDEN) state = IDLE;
          i++;
          continue;

        default:
          throw new Error(`unreachable framer state ${state}`);
      }
    }

    this.state = state;
    if (start >= 0 && !this.discarding) {
      // Copy: the caller may reuse its buffer, and a subarray would pin the whole chunk.
      this.pieces.push(Buffer.from(buf.subarray(start, n)));
      this.heldBytes += n - start;
    } else if (start < 0 && state !== IDLE && state !== RECOVER && !this.discarding) {
      // The value started in an earlier chunk and goes on: hold this whole chunk.
      this.pieces.push(Buffer.from(buf));
      this.heldBytes += n;
    }
    return out;
  }

  /**
   * End of stream: a pending bare scalar completes (`42` has no closing byte); an unfinished
   * object, array or string is reported as bad input. The framer is then back at the top level.
   */
  flush(): FramedItem[] {
    const out: FramedItem[] = [];
    if (this.state === TOKEN && !this.discarding) {
      out.push(this.completeToken(Buffer.alloc(0), -1, 0));
    } else if ((this.state === NEST || this.state === STR || this.state === STR_ESC) && !this.discarding) {
      out.push(badInput('incomplete JSON value at end of input'));
    }
    this.reset();
    return out;
  }

  /** Bytes held for the value in progress (for tests and metrics). */
  get bufferedBytes(): number {
    return this.heldBytes;
  }

  private reset(): void {
    this.state = IDLE;
    this.depth = 0;
    this.discarding = false;
    this.pieces = [];
    this.heldBytes = 0;
  }

  private startDiscarding(): void {
    this.discarding = true;
    this.pieces = [];
    this.heldBytes = 0;
  }

  /** The value passed maxBytes: report it and skip the rest (a bare scalar: to its end). */
  private overflow(out: FramedItem[]): void {
    out.push({ kind: 'error', reason: 'too-large', message: `JSON value larger than ${this.maxBytes} bytes` });
    this.startDiscarding();
  }

  /** A forbidden byte: abandon whatever was in progress and return to the top level. */
  private forbidden(out: FramedItem[], byte: number): number {
    if (!this.discarding) out.push(badInput(`control character ${describeByte(byte)} inside a JSON value`));
    this.reset();
    return IDLE;
  }

  /** The value in progress ends at `end` (exclusive): emit it unless it was being skipped. */
  private finish(out: FramedItem[], buf: Uint8Array, start: number, end: number, bare: boolean): number {
    if (!this.discarding) out.push(bare ? this.completeToken(buf, start, end) : { kind: 'value', text: this.take(buf, start, end) });
    this.discarding = false;
    return IDLE;
  }

  private completeToken(buf: Uint8Array, start: number, end: number): FramedItem {
    const text = this.take(buf, start, end);
    return BARE_SCALAR.test(text) ? { kind: 'value', text } : badInput(`invalid token ${quote(text)}`);
  }

  /** The current value's text: held pieces plus this chunk's [start, end) (start -1: from 0). */
  private take(buf: Uint8Array, start: number, end: number): string {
    const from = Math.max(start, 0);
    let text: string;
    if (this.pieces.length === 0) {
      text = Buffer.isBuffer(buf)
        ? buf.toString('utf8', from, end)
        : Buffer.from(buf.buffer, buf.byteOffset + from, end - from).toString('utf8');
    } else {
      this.pieces.push(Buffer.from(buf.buffer, buf.byteOffset + from, end - from));
      text = Buffer.concat(this.pieces, this.heldBytes + end - from).toString('utf8');
      this.pieces = [];
    }
    this.heldBytes = 0;
    return text;
  }
}

function badInput(message: string): FramedItem {
  return { kind: 'error', reason: 'bad-input', message };
}
