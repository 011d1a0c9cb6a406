// Tests for the `key: value` line reader: grammar, comments, CRLF, and exact error messages.
import { describe, expect, it } from 'vitest';
import { indexKeyValueLines, MAX_LINE_CHARS, readKeyValueLines } from '../../../src/config/kv-file.js';
import { catchSupervisorError as errorOf } from '../../support/catch-error.js';

const FILE = '/etc/sevsup/vms/t.conf';

describe('readKeyValueLines', () => {
  it.each([
    ['one line', 'memory: 512', [{ key: 'memory', value: '512', line: 1 }]],
    [
      'no trailing newline vs trailing newline',
      'a: 1\nb: 2\n',
      [
        { key: 'a', value: '1', line: 1 },
        { key: 'b', value: '2', line: 2 },
      ],
    ],
    [
      'CRLF line ends',
      'a: 1\r\nb: 2\r\n',
      [
        { key: 'a', value: '1', line: 1 },
        { key: 'b', value: '2', line: 2 },
      ],
    ],
    ['comments and blank lines keep line numbers', '# c\n\n   \n  # indented\nk: v\n', [{ key: 'k', value: 'v', line: 5 }]],
    ['value is trimmed, no space after colon', 'k:v  \t', [{ key: 'k', value: 'v', line: 1 }]],
    ['a value may contain # (no trailing comments)', 'cmdline: a # b', [{ key: 'cmdline', value: 'a # b', line: 1 }]],
    ['a value may contain colons', 'k: a:b:c', [{ key: 'k', value: 'a:b:c', line: 1 }]],
    [
      'keys with - _ and digits',
      'amd-sev: es\namd_sev: std\nnet0: user',
      [
        { key: 'amd-sev', value: 'es', line: 1 },
        { key: 'amd_sev', value: 'std', line: 2 },
        { key: 'net0', value: 'user', line: 3 },
      ],
    ],
    ['a leading UTF-8 BOM', '\ufeffk: v', [{ key: 'k', value: 'v', line: 1 }]],
    ['space before the colon', 'k : v', [{ key: 'k', value: 'v', line: 1 }]],
    [
      'duplicates are returned as given',
      'k: 1\nk: 2',
      [
        { key: 'k', value: '1', line: 1 },
        { key: 'k', value: '2', line: 2 },
      ],
    ],
    ['empty file', '', []],
  ])('%s', (_name, text, expected) => {
    expect(readKeyValueLines(text, FILE)).toEqual(expected);
  });

  it.each([
    ['a line without a colon', 'memory: 1\nfoo bar\n', 2, `${FILE}:2: line 'foo bar' is not "key: value" (comment lines start with '#')`],
    ['a section header', '[snap1]', 1, `${FILE}:1: line '[snap1]' is not "key: value" (comment lines start with '#')`],
    ['an empty key', ': v', 1, `${FILE}:1: '' is not a valid key; a key is a letter followed by letters, digits, '-' or '_'`],
    [
      'a key with a space',
      'my key: v',
      1,
      `${FILE}:1: 'my key' is not a valid key; a key is a letter followed by letters, digits, '-' or '_'`,
    ],
    [
      'a key starting with a digit',
      '0disk: v',
      1,
      `${FILE}:1: '0disk' is not a valid key; a key is a letter followed by letters, digits, '-' or '_'`,
    ],
    ['an empty value', 'a: 1\nkernel:   \n', 2, `${FILE}:2: kernel: no value after ':'; remove the line to use the default`],
    ['a NUL byte', 'k: a\u0000b', 1, `${FILE}:1: line contains control character U+0000; remove it`],
    ['a lone carriage return inside a line', 'k: a\rb', 1, `${FILE}:1: line contains control character U+000D; remove it`],
    ['an escape character', 'k: \u001b[31m', 1, `${FILE}:1: line contains control character U+001B; remove it`],
    ['a line separator', 'k: a\u2028b', 1, `${FILE}:1: line contains control character U+2028; remove it`],
    [
      'a long line quoted shortly',
      `${'x'.repeat(100)}`,
      1,
      `${FILE}:1: line '${'x'.repeat(60)}…' is not "key: value" (comment lines start with '#')`,
    ],
  ])('refuses %s', (_name, text, line, message) => {
    const error = errorOf(() => readKeyValueLines(text, FILE));
    expect(error).toEqual({ code: 'SUP_ERR_CONFIG_SYNTAX', message, details: { file: FILE, line } });
  });

  it('refuses a line longer than MAX_LINE_CHARS and accepts one at the limit', () => {
    const atLimit = `k: ${'a'.repeat(MAX_LINE_CHARS - 3)}`;
    expect(readKeyValueLines(atLimit, FILE)).toHaveLength(1);
    const error = errorOf(() => readKeyValueLines(`${atLimit}a`, FILE));
    expect(error.message).toBe(`${FILE}:1: line is longer than ${MAX_LINE_CHARS} characters`);
  });

  it('tolerates tabs inside a value', () => {
    expect(readKeyValueLines('cmdline: a\tb', FILE)).toEqual([{ key: 'cmdline', value: 'a\tb', line: 1 }]);
  });
});

describe('indexKeyValueLines', () => {
  it('indexes unique keys', () => {
    const map = indexKeyValueLines(readKeyValueLines('a: 1\nb: 2', FILE), FILE);
    expect([...map.keys()]).toEqual(['a', 'b']);
    expect(map.get('b')).toEqual({ key: 'b', value: '2', line: 2 });
  });

  it('refuses a duplicate key naming both lines', () => {
    const error = errorOf(() => indexKeyValueLines(readKeyValueLines('memory: 1\n# x\nmemory: 2', FILE), FILE));
    expect(error).toEqual({
      code: 'SUP_ERR_CONFIG_DUPLICATE_KEY',
      message: `${FILE}:3: duplicate key 'memory' (first set at line 1); keep one of them`,
      details: { file: FILE, line: 3, key: 'memory', firstLine: 1 },
    });
  });
});
