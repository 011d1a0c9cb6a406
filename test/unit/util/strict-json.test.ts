// The strict parser: what it accepts (exactly what JSON.parse gives), what it refuses and why,
// bounds, safe construction (__proto__), and properties against JSON.parse as the oracle.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hasCode, isSupervisorError } from '../../../src/errors.js';
import { DEFAULT_MAX_JSON_DEPTH, parseStrictJson, type StrictJsonOptions, type StrictJsonProblem } from '../../../src/util/strict-json.js';

function problemOf(text: string, options?: StrictJsonOptions): StrictJsonProblem | 'accepted' {
  try {
    parseStrictJson(text, options);
    return 'accepted';
  } catch (error) {
    if (!hasCode(error, 'SUP_ERR_PROXY_BAD_INPUT')) throw error;
    return error.details['reason'] as StrictJsonProblem;
  }
}

describe('parseStrictJson accepts RFC 8259 JSON as JSON.parse reads it', () => {
  it.each([
    '{"execute":"query-status"}',
    ' \t\r\n{ "execute" : "qom-get" , "arguments" : { "path" : "/machine" , "property" : "type" } , "id" : 1 } \n',
    '[]',
    '{}',
    '[[],[{}],{"a":[1,2,{"b":null}]}]',
    '"plain"',
    '"esc \\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0041\\u00e9\\u4e2d\\ud83d\\ude00"',
    '"raw unicode é 中 😀"',
    '"\\u0000"',
    '0',
    '-0',
    '1.5e-7',
    '-12.25E+3',
    '9007199254740991',
    '-9007199254740991',
    '1e308',
    '123456789012345678901234567890',
    'true',
    'false',
    'null',
    '{"a":{"b":1},"b":{"a":2}}',
    '{"id":{"execute":"x"},"execute":"query-status"}',
  ])('%s', (text) => {
    expect(parseStrictJson(text)).toStrictEqual(JSON.parse(text));
  });

  it('keeps a "__proto__" key as an own property, as JSON.parse does, and pollutes nothing', () => {
    const value = parseStrictJson('{"__proto__":{"polluted":true},"execute":"query-status"}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.hasOwn(value, '__proto__')).toBe(true);
    expect(Object.keys(value)).toEqual(['__proto__', 'execute']);
    expect((value as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(value).toStrictEqual(JSON.parse('{"__proto__":{"polluted":true},"execute":"query-status"}'));
    expect(problemOf('{"__proto__":1,"__proto__":2}')).toBe('duplicate-key');
    expect(problemOf('{"__proto__":1,"__pr\\u006fto__":2}')).toBe('duplicate-key');
  });

  it('builds keys like "constructor" and "toString" as plain own data', () => {
    const value = parseStrictJson('{"constructor":1,"toString":2,"hasOwnProperty":3}') as Record<string, unknown>;
    expect(value).toStrictEqual({ constructor: 1, toString: 2, hasOwnProperty: 3 });
  });
});

describe('parseStrictJson refuses', () => {
  it.each<[string, string, StrictJsonProblem]>([
    ['duplicate key, dangerous value last', '{"execute":"query-status","execute":"migrate"}', 'duplicate-key'],
    ['duplicate key, dangerous value first', '{"execute":"migrate","execute":"query-status"}', 'duplicate-key'],
    ['duplicate key spelt with an escape', '{"execute":"query-status","exe\\u0063ute":"migrate"}', 'duplicate-key'],
    ['duplicate key with escaped slash', '{"a/b":1,"a\\/b":2}', 'duplicate-key'],
    ['duplicate key nested in arguments', '{"execute":"x","arguments":{"a":1,"b":{"c":1,"c":2}}}', 'duplicate-key'],
    ['duplicate key inside an array', '[{"a":1},{"a":1,"a":1}]', 'duplicate-key'],
    ['duplicate empty key', '{"":1,"":2}', 'duplicate-key'],
    ['single-quoted value', '{"execute":\'migrate\'}', 'single-quote'],
    ['single-quoted key', '{\'execute\':"migrate"}', 'single-quote'],
    ['trailing object', '{"execute":"query-status"}{"execute":"migrate"}', 'trailing-garbage'],
    ['trailing text', '{"execute":"query-status"} x', 'trailing-garbage'],
    ['trailing comma in object', '{"a":1,}', 'unexpected-character'],
    ['trailing comma in array', '[1,]', 'unexpected-character'],
    ['missing comma', '[1 2]', 'unexpected-character'],
    ['missing colon', '{"a" 1}', 'unexpected-character'],
    ['bare key', '{a:1}', 'unexpected-character'],
    ['line comment', '{"a":1}// c', 'comment'],
    ['block comment', '{/* c */"a":1}', 'comment'],
    ['raw newline in string', '"a\nb"', 'control-character'],
    ['raw tab in string', '"a\tb"', 'control-character'],
    ['raw NUL in string', '"a\u0000b"', 'control-character'],
    ['invalid escape', '"\\x41"', 'bad-escape'],
    ['escaped single quote (QEMU-only)', '"\\\'"', 'bad-escape'],
    ['short unicode escape', '"\\u12"', 'bad-escape'],
    ['non-hex unicode escape', '"\\u12g4"', 'bad-escape'],
    ['escaped lone high surrogate', '"\\ud800"', 'lone-surrogate'],
    ['escaped high surrogate then letter', '"\\ud800x"', 'lone-surrogate'],
    ['escaped high surrogate then non-low escape', '"\\ud800\\u0041"', 'lone-surrogate'],
    ['escaped lone low surrogate', '"\\udc00"', 'lone-surrogate'],
    ['raw lone high surrogate', '"\ud800"', 'lone-surrogate'],
    ['raw lone low surrogate', '"a\udc00"', 'lone-surrogate'],
    ['leading zero', '01', 'bad-number'],
    ['negative leading zero', '-01', 'bad-number'],
    ['leading plus', '+1', 'bad-number'],
    ['leading dot', '.5', 'bad-number'],
    ['trailing dot', '1.', 'bad-number'],
    ['empty exponent', '1e', 'bad-number'],
    ['lone minus', '-', 'bad-number'],
    ['hex number', '0x10', 'trailing-garbage'],
    ['NaN', 'NaN', 'bad-literal'],
    ['Infinity', 'Infinity', 'bad-literal'],
    ['-Infinity', '-Infinity', 'bad-number'],
    ['overflowing number', '1e400', 'number-range'],
    ['int64 beyond 2^53', '9007199254740993', 'inexact-integer'],
    ['uint64 max', '18446744073709551615', 'inexact-integer'],
    ['int64 min', '-9223372036854775808', 'inexact-integer'],
    ['misspelt literal', 'nul', 'bad-literal'],
    ['capitalised literal', 'True', 'unexpected-character'],
    ['BOM', '\ufeff{}', 'unexpected-character'],
    ['non-JSON whitespace', '{\u00a0}', 'unexpected-character'],
    ['vertical tab as whitespace', '\u000b{}', 'unexpected-character'],
    ['empty input', '', 'empty'],
    ['whitespace only', ' \n', 'empty'],
    ['unterminated string', '"abc', 'unexpected-end'],
    ['unterminated escape', '"abc\\', 'unexpected-end'],
    ['unterminated object', '{"a":1', 'unexpected-end'],
    ['unterminated array', '[1,', 'unexpected-end'],
  ])('%s', (_label, text, problem) => {
    expect(problemOf(text)).toBe(problem);
  });

  it('allows the big integers when exactIntegers is off, as JSON.parse reads them', () => {
    expect(parseStrictJson('9007199254740993', { exactIntegers: false })).toBe(JSON.parse('9007199254740993'));
    // Beyond uint64 QEMU also reads a double: nothing changes in transit.
    expect(parseStrictJson('18446744073709551616')).toBe(2 ** 64);
  });

  it('says what is wrong and where, without echoing the input', () => {
    const huge = 'k'.repeat(5000);
    let caught: unknown;
    try {
      parseStrictJson(`{"${huge}":1,"${huge}":2}`);
    } catch (error) {
      caught = error;
    }
    expect(hasCode(caught, 'SUP_ERR_PROXY_BAD_INPUT')).toBe(true);
    const error = caught as Error & { details: Record<string, unknown> };
    expect(error.message).toMatch(/^malformed QMP input: duplicate key "k{32}…" at offset 5006$/);
    expect(error.details).toEqual({ reason: 'duplicate-key', offset: 5006 });
  });
});

describe('bounds', () => {
  const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);

  it.each<[number, number, StrictJsonProblem | 'accepted']>([
    [1, 1, 'accepted'],
    [2, 1, 'too-deep'],
    [DEFAULT_MAX_JSON_DEPTH, DEFAULT_MAX_JSON_DEPTH, 'accepted'],
    [DEFAULT_MAX_JSON_DEPTH + 1, DEFAULT_MAX_JSON_DEPTH, 'too-deep'],
    [100_000, DEFAULT_MAX_JSON_DEPTH, 'too-deep'],
    [50_000, 100_000, 'accepted'],
  ])('depth %i with maxDepth %i: %s', (depth, maxDepth, expected) => {
    expect(problemOf(nested(depth), { maxDepth })).toBe(expected);
  });

  it('counts depth over objects and arrays alike', () => {
    expect(problemOf('{"a":[{"b":[]}]}', { maxDepth: 4 })).toBe('accepted');
    expect(problemOf('{"a":[{"b":[[]]}]}', { maxDepth: 4 })).toBe('too-deep');
  });

  it.each<[string, number, StrictJsonProblem | 'accepted']>([
    ['"abcd"', 6, 'accepted'],
    ['"abcde"', 6, 'too-large'],
    ['"éé"', 6, 'accepted'], // 2 + 2×2 bytes
    ['"ééé"', 6, 'too-large'], // 5 code units, 8 bytes
    ['"中"', 5, 'accepted'],
    ['"中中"', 5, 'too-large'],
    ['"😀"', 6, 'accepted'],
  ])('%s with maxBytes %i: %s', (text, maxBytes, expected) => {
    expect(problemOf(text, { maxBytes })).toBe(expected);
  });

  it('refuses a non-string input with its own error, not a TypeError', () => {
    expect(problemOf(Buffer.from('{}') as unknown as string)).toBe('not-a-string');
  });
});

// --- properties -------------------------------------------------------------------------------

const RUNS = 3000;

/** Characters that make or break JSON, for mutating valid texts into near-misses. */
const MUTATION_CHARS = [...'"\\{}[],:\'/*-+.eE0159tfnlu ', '\t', '\n', '\r', '\u0000', '\u001f', '\u000b', '\ud800', '\udc00', 'é'];

const jsonText = fc.json({ maxDepth: 4, stringUnit: 'grapheme' });

const mutated = fc
  .tuple(
    jsonText,
    fc.array(fc.tuple(fc.nat(), fc.constantFrom(...MUTATION_CHARS), fc.constantFrom('insert', 'delete', 'replace')), {
      minLength: 1,
      maxLength: 3,
    }),
  )
  .map(([text, edits]) => {
    let out = text;
    for (const [at, ch, op] of edits) {
      const i = out.length === 0 ? 0 : at % (out.length + 1);
      if (op === 'insert') out = out.slice(0, i) + ch + out.slice(i);
      else if (op === 'delete') out = out.slice(0, i) + out.slice(i + 1);
      else out = out.slice(0, i) + ch + out.slice(i + 1);
    }
    return out;
  });

/** Re-serialises with random escapes and whitespace: same value, different bytes. */
function restyle(value: unknown, seed: number): string {
  let n = seed;
  const coin = (): boolean => {
    n = (n * 1103515245 + 12345) & 0x7fffffff;
    return (n & 4) !== 0;
  };
  const ws = (): string => (coin() ? ' \n\t\r'.slice(0, n % 4) : '');
  const str = (s: string): string =>
    `"${[...s]
      .map((ch) => {
        const plain = JSON.stringify(ch).slice(1, -1);
        if (!coin()) return plain;
        // Every UTF-16 unit of the code point: a pair is escaped as a pair.
        return Array.from({ length: ch.length }, (_, i) => `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`).join('');
      })
      .join('')}"`;
  const walk = (v: unknown): string => {
    if (Array.isArray(v)) return `[${ws()}${v.map((x) => ws() + walk(x) + ws()).join(',')}]`;
    if (typeof v === 'object' && v !== null) {
      return `{${ws()}${Object.entries(v)
        .map(([k, x]) => `${ws()}${str(k)}${ws()}:${ws()}${walk(x)}${ws()}`)
        .join(',')}}`;
    }
    if (typeof v === 'string') return str(v);
    return JSON.stringify(v);
  };
  return ws() + walk(value) + ws();
}

describe('properties (JSON.parse is the oracle)', () => {
  it('throws nothing but SUP_ERR_PROXY_BAD_INPUT, whatever the text', () => {
    fc.assert(
      fc.property(fc.oneof(mutated, fc.string({ unit: 'binary', maxLength: 40 }), jsonText), (text) => {
        try {
          parseStrictJson(text, { maxDepth: 8 });
        } catch (error) {
          expect(isSupervisorError(error) && error.code === 'SUP_ERR_PROXY_BAD_INPUT').toBe(true);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('agrees with JSON.parse on valid JSON without duplicate keys, however it is spelt', () => {
    fc.assert(
      fc.property(jsonText, fc.nat(), (text, seed) => {
        const spelt = restyle(JSON.parse(text), seed);
        expect(parseStrictJson(text, { exactIntegers: false })).toStrictEqual(JSON.parse(text));
        expect(parseStrictJson(spelt, { exactIntegers: false })).toStrictEqual(JSON.parse(spelt));
      }),
      { numRuns: RUNS },
    );
  });

  it('by default only adds refusals for integers it could not forward exactly', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        const problem = problemOf(text);
        if (problem !== 'accepted') expect(problem).toBe('inexact-integer');
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses every input JSON.parse refuses, and what it accepts JSON.parse reads the same', () => {
    fc.assert(
      fc.property(fc.oneof(mutated, fc.string({ unit: 'binary-ascii', maxLength: 20 })), (text) => {
        let oracle: { ok: true; value: unknown } | { ok: false };
        try {
          oracle = { ok: true, value: JSON.parse(text) };
        } catch {
          oracle = { ok: false };
        }
        const problem = problemOf(text, { exactIntegers: false });
        if (!oracle.ok) expect(problem).not.toBe('accepted');
        if (problem === 'accepted' && oracle.ok) expect(parseStrictJson(text, { exactIntegers: false })).toStrictEqual(oracle.value);
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses any object that repeats a key, whichever spelling and position', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { minKeys: 1, maxKeys: 5 }),
        fc.nat(),
        fc.nat(),
        (dict, pick, seed) => {
          const keys = Object.keys(dict);
          const dup = keys[pick % keys.length] as string;
          const body = restyle(dict, seed).trim().slice(1, -1);
          const text = pick % 2 === 0 ? `{${restyle(dup, seed + 1)}:0,${body}}` : `{${body},${restyle(dup, seed + 1)}:0}`;
          expect(problemOf(text, { exactIntegers: false })).toBe('duplicate-key');
        },
      ),
      { numRuns: RUNS },
    );
  });
});
