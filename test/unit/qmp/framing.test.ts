import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { QmpFramer, type FramedItem } from '../../../src/qmp/framing.js';

const values = (items: FramedItem[]): string[] => items.map((i) => (i.kind === 'value' ? i.text : `!${i.reason}: ${i.message}`));

function frameAll(chunks: readonly (string | Buffer)[], framer = new QmpFramer()): string[] {
  return chunks.flatMap((c) => values(framer.push(c)));
}

describe('QmpFramer', () => {
  it.each([
    ['one object with CRLF', ['{"return": {}}\r\n'], ['{"return": {}}']],
    ['several per chunk, no separators', ['{"a":1}{"b":[2]}[3]'], ['{"a":1}', '{"b":[2]}', '[3]']],
    ['braces inside strings do not count', ['{"desc": "a } ] { [ b"}'], ['{"desc": "a } ] { [ b"}']],
    ['escaped quotes and backslashes', ['{"s": "x\\"}\\\\"}'], ['{"s": "x\\"}\\\\"}']],
    ["single-quoted strings (QEMU's extension)", ["{'execute': 'x}', 'q': \"'\"}"], ["{'execute': 'x}', 'q': \"'\"}"]],
    ['escaped single quote', ["{'a': 'it\\'s }'}"], ["{'a': 'it\\'s }'}"]],
    ['top-level scalars', ['"str" 42 -1.5e3 true false null {}'], ['"str"', '42', '-1.5e3', 'true', 'false', 'null', '{}']],
    ['whitespace between values', [' \t\r\n{"a":1} \n\n [1] '], ['{"a":1}', '[1]']],
  ])('%s', (_name, chunks, expected) => {
    expect(frameAll(chunks)).toEqual(expected);
  });

  it('holds a value across chunks and completes it when balanced', () => {
    const framer = new QmpFramer();
    expect(framer.push('{"return": {"st')).toEqual([]);
    expect(framer.bufferedBytes).toBe(15);
    expect(framer.push('atus": "running"}')).toEqual([]);
    expect(framer.push('}\r\n{"event"')).toEqual([{ kind: 'value', text: '{"return": {"status": "running"}}' }]);
    expect(framer.bufferedBytes).toBe(8);
  });

  it('decodes a UTF-8 character split across chunks (every split point)', () => {
    const text = '{"desc": "ünï ✓ 😀"}';
    const bytes = Buffer.from(text, 'utf8');
    for (let k = 0; k <= bytes.length; k++) {
      for (let m = k; m <= bytes.length; m++) {
        expect(frameAll([bytes.subarray(0, k), bytes.subarray(k, m), bytes.subarray(m)])).toEqual([text]);
      }
    }
  });

  it('a bare number waits for the byte that ends it; flush() completes it', () => {
    const framer = new QmpFramer();
    expect(values(framer.push('12'))).toEqual([]);
    expect(values(framer.push('34 5'))).toEqual(['1234']);
    expect(values(framer.flush())).toEqual(['5']);
  });

  it('flush() reports an unfinished value and starts afresh', () => {
    const framer = new QmpFramer();
    framer.push('{"a": [1, 2');
    expect(values(framer.flush())).toEqual(['!bad-input: incomplete JSON value at end of input']);
    expect(values(framer.push('{}'))).toEqual(['{}']);
  });

  it('does not copy the caller buffer it was given after returning (holds copies)', () => {
    const framer = new QmpFramer();
    const chunk = Buffer.from('{"a": "xy');
    framer.push(chunk);
    chunk.fill(0x20);
    expect(values(framer.push('z"}'))).toEqual(['{"a": "xyz"}']);
  });

  describe('bounds and resynchronisation', () => {
    it('too large: one error, the rest of that value skipped, the next value framed', () => {
      const framer = new QmpFramer({ maxBytes: 16 });
      const big = `{"a": "${'x'.repeat(40)}", "b": {"c": [1, 2]}}`;
      expect(frameAll([big.slice(0, 10), big.slice(10), '{"ok":1}'], framer)).toEqual([
        '!too-large: JSON value larger than 16 bytes',
        '{"ok":1}',
      ]);
      expect(framer.bufferedBytes).toBe(0);
    });

    it('too large is checked against the bytes held across chunks', () => {
      const framer = new QmpFramer({ maxBytes: 8 });
      // 9 bytes in all, 5 of them held from the first chunk.
      expect(frameAll(['{"a":', '"1"}'], framer)).toEqual(['!too-large: JSON value larger than 8 bytes']);
      expect(frameAll(['{"a":1}{"b":', '2}'], new QmpFramer({ maxBytes: 8 }))).toEqual(['{"a":1}', '{"b":2}']);
    });

    it('a value of exactly maxBytes is accepted', () => {
      expect(frameAll(['{"a":12}'], new QmpFramer({ maxBytes: 8 }))).toEqual(['{"a":12}']);
      expect(frameAll(['{"a":123}'], new QmpFramer({ maxBytes: 8 }))).toEqual(['!too-large: JSON value larger than 8 bytes']);
      // A bare scalar's terminator is not part of it.
      expect(frameAll(['1234', ' 12345 '], new QmpFramer({ maxBytes: 4 }))).toEqual(['1234', '!too-large: JSON value larger than 4 bytes']);
    });

    it('an oversized bare scalar is reported once and skipped to its end', () => {
      expect(frameAll(['1234567890123 {}'], new QmpFramer({ maxBytes: 4 }))).toEqual(['!too-large: JSON value larger than 4 bytes', '{}']);
    });

    it('too deep: reported once, skipped until balanced', () => {
      const framer = new QmpFramer({ maxDepth: 3 });
      expect(frameAll(['[[[1]]] [[[[1]]]] {"a":1}'], framer)).toEqual(['[[[1]]]', '!too-deep: nesting deeper than 3', '{"a":1}']);
    });

    it('a mismatched closer is bad input; skipping ends where the nesting count balances', () => {
      // As QEMU's streamer: `}` and `]` both lower the count, so the skipped value ends at `]`
      // and the last `}` is stray.
      expect(frameAll(['{"a": [1}, 2]} {"b":2}'])).toEqual(["!bad-input: mismatched '}' closing '['", "!bad-input: stray '}'", '{"b":2}']);
    });

    it('stray closers between values are reported one by one', () => {
      expect(frameAll(['} ]{"a":1}'])).toEqual(["!bad-input: stray '}'", "!bad-input: stray ']'", '{"a":1}']);
    });

    it('garbage between values is reported once, then skipped to the next { or line end', () => {
      expect(frameAll(['@#$ junk, more {"a":1}\n:: x\n[1]'])).toEqual(["!bad-input: stray '@'", '{"a":1}', "!bad-input: stray ':'", '[1]']);
    });

    it('an invalid bare token is bad input', () => {
      expect(frameAll(['hello {"a":1} tru '])).toEqual(["!bad-input: invalid token 'hello'", '{"a":1}', "!bad-input: invalid token 'tru'"]);
      expect(frameAll([`${'y'.repeat(40)} `])).toEqual([`!bad-input: invalid token '${'y'.repeat(32)}…'`]);
    });

    it('a control byte or 0xFF cuts a value short and resets (the QMP "known-good state" rule)', () => {
      expect(frameAll(['{"a": "unterminated', Buffer.from([0xff]), '{"b":1}'])).toEqual([
        '!bad-input: control character byte 0xff inside a JSON value',
        '{"b":1}',
      ]);
      expect(frameAll(['{"a": [1, \x01 {"b":1}'])).toEqual(['!bad-input: control character byte 0x01 inside a JSON value', '{"b":1}']);
    });

    it('a control byte at the top level is consumed silently', () => {
      expect(frameAll([Buffer.from([0x00, 0xff, 0x1b]), '{"a":1}'])).toEqual(['{"a":1}']);
    });

    it('a control byte ends the skipping of an oversized value too, without a second error', () => {
      const framer = new QmpFramer({ maxBytes: 4 });
      expect(frameAll(['{"a": "long', '\x04', '[1]'], framer)).toEqual(['!too-large: JSON value larger than 4 bytes', '[1]']);
    });

    it('rejects nonsensical limits', () => {
      expect(() => new QmpFramer({ maxBytes: 0 })).toThrow('maxBytes must be a positive integer');
      expect(() => new QmpFramer({ maxDepth: 1.5 })).toThrow('maxDepth must be a positive integer');
    });
  });

  it('property: any sequence of JSON values, serialised and cut anywhere, frames to exactly those values', () => {
    const separator = fc.stringMatching(/^[ \t\r\n]{0,3}$/);
    const item = fc.tuple(fc.jsonValue({ maxDepth: 4, stringUnit: 'binary' }), separator);
    fc.assert(
      fc.property(fc.array(item, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (seq, cutSeeds) => {
        const texts = seq.map(([v]) => JSON.stringify(v));
        let stream = '';
        texts.forEach((t, i) => {
          const prevBare = i > 0 && !/[}\]"]$/.test(texts[i - 1] ?? '');
          const sep = seq[i]?.[1] ?? '';
          // Two bare scalars need whitespace between them, as in any JSON stream.
          stream += (sep === '' && prevBare && /^[-0-9tfn]/.test(t) ? ' ' : sep) + t;
        });
        stream += '\n'; // ends a trailing bare scalar
        const bytes = Buffer.from(stream, 'utf8');
        const cuts = [...new Set(cutSeeds.map((s) => s % (bytes.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let from = 0;
        for (const cut of cuts) {
          chunks.push(bytes.subarray(from, cut));
          from = cut;
        }
        chunks.push(bytes.subarray(from));
        expect(frameAll(chunks)).toEqual(texts);
      }),
      { numRuns: 500 },
    );
  });
});
