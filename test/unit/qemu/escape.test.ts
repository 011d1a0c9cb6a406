// escape.ts: any QEMU-safe string survives QemuOpts comma doubling and JSON form unchanged and can
// never add a key; unsafe strings are refused with a message naming file and key.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { hasCode } from '../../../src/errors.js';
import { assertQemuSafe, escapeOptionValue, formatJsonOption, formatQemuOpts } from '../../../src/qemu/escape.js';

/**
 * A small QemuOpts parser as QEMU 7.2's util/qemu-option.c reads an option string: a name runs to
 * '=' or ','; a value runs to the next single ',' and ",," stands for ','; an element without '='
 * (only the first, here) is the implied head, e.g. `socket` in `-chardev socket,id=…`.
 */
function parseQemuOpts(text: string): { head: string | null; props: [string, string][] } {
  let i = 0;
  let head: string | null = null;
  const props: [string, string][] = [];
  const readValue = (): string => {
    let value = '';
    while (i < text.length) {
      if (text[i] === ',') {
        if (text[i + 1] === ',') {
          value += ',';
          i += 2;
          continue;
        }
        break;
      }
      value += text[i];
      i += 1;
    }
    return value;
  };
  let first = true;
  while (i <= text.length) {
    let name = '';
    while (i < text.length && text[i] !== '=' && text[i] !== ',') {
      name += text[i];
      i += 1;
    }
    if (text[i] === '=') {
      i += 1;
      props.push([name, readValue()]);
    } else if (first) {
      head = name;
    } else {
      props.push([name, 'on']); // QEMU's short-form boolean: a bare word after the head
    }
    first = false;
    if (i >= text.length) break;
    i += 1; // the separating comma
  }
  return { head, props };
}

const ORIGIN = { file: '/etc/sevsup/vms/t.conf', key: 'kernel' };

/** Strings biased towards the characters that matter to QemuOpts, plus arbitrary Unicode. */
const tricky = fc
  .array(
    fc.oneof(
      fc.constantFrom(',', ',,', '=', ' ', '"', "'", '\\', '{', '}', 'help', '-S', 'id=x', '\u00e9', '\u{1f600}'),
      fc.string({ unit: 'binary', maxLength: 8 }),
    ),
    { maxLength: 12 },
  )
  .map((parts) => parts.join(''));

const qemuSafe = tricky.filter((s) => {
  try {
    assertQemuSafe(s, ORIGIN);
    return true;
  } catch {
    return false;
  }
});

describe('formatQemuOpts', () => {
  it('doubles commas in values and leaves everything else', () => {
    expect(
      formatQemuOpts('file', [
        ['id', 'serial0'],
        ['path', '/run/a,b,,c/x'],
      ]),
    ).toBe('file,id=serial0,path=/run/a,,b,,,,c/x');
    expect(escapeOptionValue('a=b,c')).toBe('a=b,,c');
  });

  it('round-trips any QEMU-safe value through a QemuOpts parser and never adds a key', () => {
    fc.assert(
      fc.property(qemuSafe, qemuSafe, (path, name) => {
        const text = formatQemuOpts('socket', [
          ['id', 'monitor'],
          ['path', path],
          ['name', name],
          ['server', 'on'],
        ]);
        expect(parseQemuOpts(text)).toEqual({
          head: 'socket',
          props: [
            ['id', 'monitor'],
            ['path', path],
            ['name', name],
            ['server', 'on'],
          ],
        });
      }),
      { numRuns: 500 },
    );
  });

  it('would let a single comma add a key without escaping (the parser can tell)', () => {
    // Guards the test itself: an unescaped value really does inject `server=off`.
    expect(parseQemuOpts('socket,id=monitor,path=/x,server=off').props).toContainEqual(['server', 'off']);
    expect(parseQemuOpts(formatQemuOpts('socket', [['path', '/x,server=off']])).props).toEqual([['path', '/x,server=off']]);
  });

  it('refuses option keys that are not plain names', () => {
    expect(() => formatQemuOpts(null, [['a,b', 'x']])).toThrow('internal: invalid QEMU option key "a,b"');
  });
});

describe('formatJsonOption', () => {
  it('round-trips any QEMU-safe string and keeps exactly the keys given', () => {
    fc.assert(
      fc.property(qemuSafe, (value) => {
        const text = formatJsonOption({ 'qom-type': 'sev-guest', id: 'sev0', 'session-file': value });
        expect(text.startsWith('{')).toBe(true);
        expect(JSON.parse(text)).toEqual({ 'qom-type': 'sev-guest', id: 'sev0', 'session-file': value });
      }),
      { numRuns: 500 },
    );
  });

  it('refuses numbers QEMU could not read exactly', () => {
    expect(() => formatJsonOption({ policy: 1.5 })).toThrow('internal: non-integer number in a QEMU JSON option: 1.5');
  });
});

describe('assertQemuSafe', () => {
  it('passes every string without NUL or lone surrogates, byte for byte through UTF-8', () => {
    fc.assert(
      fc.property(qemuSafe, (value) => {
        expect(assertQemuSafe(value, ORIGIN)).toBe(value);
        expect(Buffer.from(value, 'utf8').toString('utf8')).toBe(value);
      }),
    );
  });

  it.each([
    ['/boot/vm\0linuz', 'contains a NUL character'],
    ['/boot/\ud800linuz', 'is not valid Unicode (a lone UTF-16 surrogate)'],
    ['/boot/\udc00', 'is not valid Unicode (a lone UTF-16 surrogate)'],
  ])('refuses %j', (value, problem) => {
    let caught: unknown;
    try {
      assertQemuSafe(value, ORIGIN);
    } catch (error) {
      caught = error;
    }
    expect(hasCode(caught, 'SUP_ERR_CONFIG_BAD_VALUE')).toBe(true);
    expect((caught as Error).message).toBe(
      `/etc/sevsup/vms/t.conf: kernel: the value ${problem}, so it cannot be passed to QEMU unchanged; remove it`,
    );
  });

  it('accepts a well-formed surrogate pair', () => {
    expect(assertQemuSafe('/srv/\u{1f600}.img', ORIGIN)).toBe('/srv/\u{1f600}.img');
  });
});
