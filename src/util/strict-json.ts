// Strict RFC 8259 JSON parser for everything a hostile peer sends: QMP proxy clients (the one reading
// of client bytes that proxy/decide() and the forwarder act on) and the attestation relay (requests
// to the owner's service, its answers to the daemon). Owns: that parser, with size and depth bounds.
// Errors carry SUP_ERR_PROXY_BAD_INPUT and `details.reason` (a StrictJsonProblem); other callers
// map the reason to their own code.
// Must not: accept anything QEMU's more lenient parser would read differently (duplicate keys,
// single quotes, comments, lone surrogates), echo client input in errors, or do I/O.
// Invariants: results are plain data built with own properties (`__proto__` included, as
// JSON.parse does); every number in the result re-serialises to the value the client wrote.
// Cost: about 2–3× JSON.parse for 30–200-byte commands (~0.5–3.5 µs, Node 20, this machine).
import { SupervisorError } from '../errors.js';

/** Same bound as the QMP framer: a QMP command is tiny; this is a denial-of-service cap. */
export const DEFAULT_MAX_JSON_BYTES = 10 * 1024 * 1024;
/** QEMU's json-streamer MAX_NESTING: deeper input could never be a valid QMP command. */
export const DEFAULT_MAX_JSON_DEPTH = 1024;

export interface StrictJsonOptions {
  /** UTF-8 size cap; default DEFAULT_MAX_JSON_BYTES. */
  readonly maxBytes?: number;
  /** Nesting cap (open arrays/objects); default DEFAULT_MAX_JSON_DEPTH. */
  readonly maxDepth?: number;
  /**
   * Refuse integer literals beyond ±(2^53−1) that QEMU would read as exact 64-bit integers
   * (default true): a JS number cannot hold them, so forwarding our re-serialisation would
   * silently send a different value.
   */
  readonly exactIntegers?: boolean;
}

/** Why the input was refused; also `details.reason` of the thrown error. */
export type StrictJsonProblem =
  | 'not-a-string'
  | 'too-large'
  | 'too-deep'
  | 'empty'
  | 'duplicate-key'
  | 'single-quote'
  | 'comment'
  | 'trailing-garbage'
  | 'control-character'
  | 'bad-escape'
  | 'lone-surrogate'
  | 'bad-number'
  | 'number-range'
  | 'inexact-integer'
  | 'bad-literal'
  | 'unexpected-character'
  | 'unexpected-end';

const PROBLEM_TEXT: Readonly<Record<StrictJsonProblem, string>> = {
  'not-a-string': 'input is not text',
  'too-large': 'message too large',
  'too-deep': 'nesting too deep',
  empty: 'no JSON value',
  'duplicate-key': 'duplicate key',
  'single-quote': 'single-quoted strings are not JSON',
  comment: 'comments are not JSON',
  'trailing-garbage': 'unexpected data after the JSON value',
  'control-character': 'unescaped control character in string',
  'bad-escape': 'invalid escape in string',
  'lone-surrogate': 'lone UTF-16 surrogate in string',
  'bad-number': 'malformed number',
  'number-range': 'number out of range',
  'inexact-integer': 'integer too large to forward exactly',
  'bad-literal': 'invalid literal',
  'unexpected-character': 'unexpected character',
  'unexpected-end': 'unexpected end of input',
};

/** Keys are quoted in errors only this far: enough to find the culprit, never a huge echo. */
const MAX_KEY_IN_ERROR = 32;

// Character codes the scanner compares against (charCodeAt is the fast path in V8).
const TAB = 9;
const LF = 10;
const CR = 13;
const SPACE = 32;
const QUOTE = 34;
const APOSTROPHE = 39;
const PLUS = 43;
const COMMA = 44;
const MINUS = 45;
const DOT = 46;
const SLASH = 47;
const ZERO = 48;
const NINE = 57;
const COLON = 58;
const UPPER_E = 69;
const LEFT_BRACKET = 91;
const BACKSLASH = 92;
const RIGHT_BRACKET = 93;
const LOWER_E = 101;
const LEFT_BRACE = 123;
const RIGHT_BRACE = 125;

/** The two-character escapes of RFC 8259 §7, by the code of the character after the backslash. */
const SIMPLE_ESCAPES: ReadonlyMap<number, string> = new Map([
  [QUOTE, '"'],
  [BACKSLASH, '\\'],
  [SLASH, '/'],
  [98 /* b */, '\b'],
  [102 /* f */, '\f'],
  [110 /* n */, '\n'],
  [114 /* r */, '\r'],
  [116 /* t */, '\t'],
]);

function fail(problem: StrictJsonProblem, offset: number, extra?: string): never {
  const where = offset >= 0 ? ` at offset ${offset}` : '';
  const suffix = extra === undefined ? '' : ` ${extra}`;
  throw new SupervisorError('SUP_ERR_PROXY_BAD_INPUT', `malformed QMP input: ${PROBLEM_TEXT[problem]}${suffix}${where}`, {
    details: { reason: problem, offset },
  });
}

function quoteKeyForError(key: string): string {
  const shown = key.length > MAX_KEY_IN_ERROR ? `${key.slice(0, MAX_KEY_IN_ERROR)}…` : key;
  return JSON.stringify(shown);
}

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  const lower = code | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

type Container = unknown[] | Record<string, unknown>;

class StrictParser {
  pos = 0;

  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
    private readonly exactIntegers: boolean,
  ) {}

  private skipWhitespace(): void {
    const text = this.text;
    let pos = this.pos;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === SPACE || c === LF || c === CR || c === TAB) pos++;
      else break;
    }
    this.pos = pos;
  }

  /** Iterative so that depth is bounded by maxDepth, never by the JS stack. */
  parse(): unknown {
    const text = this.text;
    const stack: Container[] = [];
    const keys: string[] = [];
    this.skipWhitespace();
    if (this.pos >= text.length) fail('empty', this.pos);

    for (;;) {
      // Read one value; containers that open here are pushed and filled by the loop below.
      let value: unknown;
      const c = text.charCodeAt(this.pos);
      if (c === LEFT_BRACE || c === LEFT_BRACKET) {
        if (stack.length >= this.maxDepth) fail('too-deep', this.pos);
        this.pos++;
        this.skipWhitespace();
        if (c === LEFT_BRACE) {
          const obj: Record<string, unknown> = {};
          if (text.charCodeAt(this.pos) === RIGHT_BRACE) {
            this.pos++;
            value = obj;
          } else {
            stack.push(obj);
            keys.push(this.readKey(obj));
            continue;
          }
        } else {
          const arr: unknown[] = [];
          if (text.charCodeAt(this.pos) === RIGHT_BRACKET) {
            this.pos++;
            value = arr;
          } else {
            stack.push(arr);
            continue;
          }
        }
      } else {
        value = this.readScalar(c);
      }

      // Attach the value to its container; close every container that ends here.
      for (;;) {
        const top = stack[stack.length - 1];
        if (top === undefined) {
          this.skipWhitespace();
          if (this.pos < text.length) this.failAt(text.charCodeAt(this.pos), 'trailing-garbage');
          return value;
        }
        this.skipWhitespace();
        const next = text.charCodeAt(this.pos);
        if (Array.isArray(top)) {
          top.push(value);
          if (next === COMMA) {
            this.pos++;
            this.skipWhitespace();
            break;
          }
          if (next !== RIGHT_BRACKET) this.failAt(next, 'unexpected-character');
        } else {
          const key = keys.pop();
          if (key === undefined) fail('unexpected-character', this.pos); // unreachable: a key per open object
          if (key === '__proto__') {
            // A plain assignment would replace the object's prototype; JSON.parse makes an own
            // property, and so do we.
            Object.defineProperty(top, key, { value, writable: true, enumerable: true, configurable: true });
          } else {
            top[key] = value;
          }
          if (next === COMMA) {
            this.pos++;
            this.skipWhitespace();
            keys.push(this.readKey(top));
            break;
          }
          if (next !== RIGHT_BRACE) this.failAt(next, 'unexpected-character');
        }
        this.pos++;
        stack.pop();
        value = top;
      }
    }
  }

  /** Reads `"key" :` and refuses a key the object already has (compared after unescaping). */
  private readKey(obj: Record<string, unknown>): string {
    const start = this.pos;
    const c = this.text.charCodeAt(start);
    if (c !== QUOTE) this.failAt(c, 'unexpected-character');
    const key = this.readString();
    if (Object.hasOwn(obj, key)) fail('duplicate-key', start, quoteKeyForError(key));
    this.skipWhitespace();
    const colon = this.text.charCodeAt(this.pos);
    if (colon !== COLON) this.failAt(colon, 'unexpected-character');
    this.pos++;
    this.skipWhitespace();
    return key;
  }

  private readScalar(c: number): unknown {
    if (c === QUOTE) return this.readString();
    if (c === MINUS || (c >= ZERO && c <= NINE)) return this.readNumber();
    if (c === 116 /* t */) return this.readLiteral('true', true);
    if (c === 102 /* f */) return this.readLiteral('false', false);
    if (c === 110 /* n */) return this.readLiteral('null', null);
    return this.failAt(c, 'unexpected-character');
  }

  private readLiteral<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) fail('bad-literal', this.pos);
    this.pos += word.length;
    return value;
  }

  /** Names the likely mistake (single quotes, comments, NaN...) instead of a bare "unexpected". */
  private failAt(c: number, fallback: StrictJsonProblem): never {
    if (Number.isNaN(c)) fail('unexpected-end', this.pos);
    if (c === APOSTROPHE) fail('single-quote', this.pos);
    if (c === SLASH) fail('comment', this.pos);
    if (c === PLUS || c === DOT) fail('bad-number', this.pos);
    if (c === 78 /* N */ || c === 73 /* I */) fail('bad-literal', this.pos);
    fail(fallback, this.pos);
  }

  private readString(): string {
    const text = this.text;
    const start = this.pos + 1;
    let pos = start;
    // Fast path: no escapes, so the result is a slice of the input.
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === QUOTE) {
        this.pos = pos + 1;
        return text.slice(start, pos);
      }
      if (c === BACKSLASH) break;
      pos += c >= 0x20 && c < 0xd800 ? 1 : this.rawCharWidth(c, pos);
    }
    return this.readEscapedString(start, pos);
  }

  /** Unescaped string content beyond the common case: control characters and surrogates. */
  private rawCharWidth(c: number, pos: number): number {
    if (Number.isNaN(c)) fail('unexpected-end', pos);
    if (c < 0x20) fail('control-character', pos);
    if (c < 0xd800 || c > 0xdfff) return 1;
    if (isHighSurrogate(c) && isLowSurrogate(this.text.charCodeAt(pos + 1))) return 2;
    return fail('lone-surrogate', pos);
  }

  private readEscapedString(start: number, firstEscape: number): string {
    const text = this.text;
    let out = text.slice(start, firstEscape);
    let pos = firstEscape;
    let chunk = pos;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === QUOTE) {
        this.pos = pos + 1;
        return out + text.slice(chunk, pos);
      }
      if (c === BACKSLASH) {
        out += text.slice(chunk, pos);
        const e = text.charCodeAt(pos + 1);
        const simple = SIMPLE_ESCAPES.get(e);
        if (simple !== undefined) {
          out += simple;
          pos += 2;
        } else if (e === 117 /* u */) {
          const unit = this.readHex4(pos + 2);
          if (isHighSurrogate(unit)) {
            const low = text.charCodeAt(pos + 6) === BACKSLASH && text.charCodeAt(pos + 7) === 117 ? this.readHex4(pos + 8) : -1;
            if (!isLowSurrogate(low)) fail('lone-surrogate', pos);
            out += String.fromCharCode(unit, low);
            pos += 12;
          } else {
            if (isLowSurrogate(unit)) fail('lone-surrogate', pos);
            out += String.fromCharCode(unit);
            pos += 6;
          }
        } else {
          fail(Number.isNaN(e) ? 'unexpected-end' : 'bad-escape', pos);
        }
        chunk = pos;
        continue;
      }
      pos += c >= 0x20 && c < 0xd800 ? 1 : this.rawCharWidth(c, pos);
    }
  }

  private readHex4(at: number): number {
    const text = this.text;
    let value = 0;
    for (let i = 0; i < 4; i++) {
      const digit = hexValue(text.charCodeAt(at + i));
      if (digit < 0) fail('bad-escape', at - 2);
      value = (value << 4) | digit;
    }
    return value;
  }

  private readNumber(): number {
    const text = this.text;
    const start = this.pos;
    let pos = start;
    if (text.charCodeAt(pos) === MINUS) pos++;
    const first = text.charCodeAt(pos);
    if (first === ZERO) {
      pos++;
      const after = text.charCodeAt(pos);
      if (after >= ZERO && after <= NINE) fail('bad-number', start, '(leading zero)');
    } else if (first > ZERO && first <= NINE) {
      pos++;
      while (isDigit(text.charCodeAt(pos))) pos++;
    } else {
      fail('bad-number', start);
    }
    let integer = true;
    if (text.charCodeAt(pos) === DOT) {
      integer = false;
      pos++;
      if (!isDigit(text.charCodeAt(pos))) fail('bad-number', start);
      while (isDigit(text.charCodeAt(pos))) pos++;
    }
    const e = text.charCodeAt(pos);
    if (e === LOWER_E || e === UPPER_E) {
      integer = false;
      pos++;
      const sign = text.charCodeAt(pos);
      if (sign === PLUS || sign === MINUS) pos++;
      if (!isDigit(text.charCodeAt(pos))) fail('bad-number', start);
      while (isDigit(text.charCodeAt(pos))) pos++;
    }
    this.pos = pos;
    const value = Number(text.slice(start, pos));
    if (!Number.isFinite(value)) fail('number-range', start);
    // 15 digits always fit in 2^53; only longer integer literals need the check.
    if (integer && this.exactIntegers && pos - start > 15 && !Number.isSafeInteger(value)) {
      if (isQemuExactInteger(text.slice(start, pos))) fail('inexact-integer', start);
    }
    return value;
  }
}

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * QEMU keeps integer literals in [INT64_MIN, UINT64_MAX] exact (json-parser.c); beyond that it
 * falls back to a double, as JS does, so only literals in that range would change in transit.
 */
function isQemuExactInteger(literal: string): boolean {
  const value = BigInt(literal);
  return value >= INT64_MIN && value <= UINT64_MAX;
}

function isDigit(code: number): boolean {
  return code >= ZERO && code <= NINE;
}

function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/**
 * Parses one JSON value strictly (RFC 8259) with size and depth bounds.
 * Refused: duplicate keys at any depth (compared after unescaping, so `"exe\u0063ute"` clashes
 * with `"execute"`), single-quoted strings, comments, trailing data, unescaped control
 * characters, leading zeros, NaN/Infinity and numbers that overflow, invalid escapes, lone
 * surrogates (escaped or raw; QEMU refuses them too), and integer literals a JS number cannot
 * hold exactly (unless `exactIntegers: false`).
 * @throws SupervisorError SUP_ERR_PROXY_BAD_INPUT with `details: {reason, offset}`; nothing else.
 */
export function parseStrictJson(text: string, limits: StrictJsonOptions = {}): unknown {
  if (typeof text !== 'string') fail('not-a-string', -1);
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_JSON_BYTES;
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_JSON_DEPTH;
  // Each UTF-16 unit is at least one UTF-8 byte and at most three: count bytes only in between.
  if (text.length > maxBytes || (text.length * 3 > maxBytes && utf8Length(text) > maxBytes)) {
    fail('too-large', -1, `(limit ${maxBytes} bytes)`);
  }
  return new StrictParser(text, maxDepth, limits.exactIntegers ?? true).parse();
}
