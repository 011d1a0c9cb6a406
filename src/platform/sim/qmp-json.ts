// JSON as QEMU's monitor reads and writes it, so the simulated platform understands what QEMU
// would accept and writes replies byte-compatible with QEMU 7.2's.
// Owns: a reader that also accepts '…' strings (QEMU's json-lexer does) and reports duplicate keys
// (QEMU rejects them), and a writer with QEMU's key order, spacing and escapes. Pure: no I/O.
// Must not: be used by the supervisor's own QMP client or proxy (those are strict on purpose).

export type QemuJsonParse = { readonly ok: true; readonly value: unknown; readonly duplicateKeys: boolean } | { readonly ok: false };

/** Deepest nesting read; QEMU's json-streamer bound (MAX_NESTING). */
const MAX_DEPTH = 1024;

class Reader {
  pos = 0;
  duplicate = false;
  constructor(readonly text: string) {}

  fail(): never {
    throw new SyntaxError(`bad JSON at ${this.pos}`);
  }

  ws(): void {
    while (this.pos < this.text.length && ' \t\r\n'.includes(this.text[this.pos] as string)) this.pos++;
  }

  value(depth: number): unknown {
    if (depth > MAX_DEPTH) this.fail();
    this.ws();
    const c = this.text[this.pos];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"' || c === "'") return this.string();
    for (const [word, value] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.text.slice(this.pos, this.pos + 400));
    if (m === null) this.fail();
    this.pos += m[0].length;
    return Number(m[0]);
  }

  object(depth: number): Record<string, unknown> {
    this.pos++;
    const out: Record<string, unknown> = {};
    this.ws();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      const q = this.text[this.pos];
      if (q !== '"' && q !== "'") this.fail();
      const key = this.string();
      this.ws();
      if (this.text[this.pos] !== ':') this.fail();
      this.pos++;
      const value = this.value(depth + 1);
      if (Object.hasOwn(out, key)) this.duplicate = true;
      Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
      this.ws();
      const sep = this.text[this.pos++];
      if (sep === '}') return out;
      if (sep !== ',') this.fail();
    }
  }

  array(depth: number): unknown[] {
    this.pos++;
    const out: unknown[] = [];
    this.ws();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.value(depth + 1));
      this.ws();
      const sep = this.text[this.pos++];
      if (sep === ']') return out;
      if (sep !== ',') this.fail();
    }
  }

  string(): string {
    const quote = this.text[this.pos++];
    let out = '';
    for (;;) {
      const c = this.text[this.pos++];
      if (c === undefined) this.fail();
      if (c === quote) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.text[this.pos++];
      const simple: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e !== undefined && simple[e] !== undefined) out += simple[e];
      else if (e === 'u') {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail();
        out += String.fromCharCode(Number.parseInt(hex, 16));
        this.pos += 4;
      } else this.fail();
    }
  }
}

/** Read one complete value as QEMU's parser would (single quotes allowed, duplicates noted). */
export function parseQemuJson(text: string): QemuJsonParse {
  const reader = new Reader(text);
  try {
    const value = reader.value(0);
    reader.ws();
    if (reader.pos !== text.length) return { ok: false };
    return { ok: true, value, duplicateKeys: reader.duplicate };
  } catch {
    return { ok: false };
  }
}

/** QDict's bucket count (qobject/qdict.h QDICT_BUCKET_MAX). */
const QDICT_BUCKETS = 512;

/** QEMU's QDict key hash (qobject/qdict.c tdb_hash): its iteration order is bucket order. */
export function qdictBucket(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) value = (value + (((bytes[i] as number) << ((i * 5) % 24)) >>> 0)) >>> 0;
  return ((Math.imul(1103515243, value) + 12345) >>> 0) % QDICT_BUCKETS;
}

function quoteString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    switch (ch) {
      case '"':
        out += '\\"';
        break;
      case '\\':
        out += '\\\\';
        break;
      case '\b':
        out += '\\b';
        break;
      case '\f':
        out += '\\f';
        break;
      case '\n':
        out += '\\n';
        break;
      case '\r':
        out += '\\r';
        break;
      case '\t':
        out += '\\t';
        break;
      default:
        if (cp > 0xffff) {
          const hi = 0xd800 + ((cp - 0x10000) >> 10);
          const lo = 0xdc00 + ((cp - 0x10000) & 0x3ff);
          out += `\\u${hex4(hi)}\\u${hex4(lo)}`;
        } else if (cp < 0x20 || cp >= 0x7f) out += `\\u${hex4(cp)}`;
        else out += ch;
    }
  }
  return `${out}"`;
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

/**
 * Serialise as QEMU's json-writer does (7.2 qobject_to_json): `": "` and `", "` separators,
 * non-ASCII as \uXXXX, and object members in QDict iteration order — by hash bucket, and within a
 * bucket the member inserted last first. Insertion order is the object's own key order.
 */
export function formatQemuJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') return quoteString(value);
  if (Array.isArray(value)) return value.length === 0 ? '[]' : `[${value.map(formatQemuJson).join(', ')}]`;
  if (typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) return '{}';
    const ordered = keys
      .map((key, inserted) => ({ key, inserted, bucket: qdictBucket(key) }))
      .sort((a, b) => a.bucket - b.bucket || b.inserted - a.inserted);
    return `{${ordered.map(({ key }) => `${quoteString(key)}: ${formatQemuJson((value as Record<string, unknown>)[key])}`).join(', ')}}`;
  }
  return 'null';
}
