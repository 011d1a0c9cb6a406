import { describe, expect, it } from 'vitest';
import { formatQemuJson, parseQemuJson, qdictBucket } from '../../../../src/platform/sim/qmp-json.js';

describe('formatQemuJson', () => {
  it('writes what QEMU 7.2 writes (recorded from the real binary)', () => {
    expect(
      formatQemuJson({
        QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian 1:7.2+dfsg-7+deb12u18+b3' }, capabilities: ['oob'] },
      }),
    ).toBe(
      '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}',
    );
    expect(formatQemuJson({ return: {}, id: 1 })).toBe('{"return": {}, "id": 1}');
    expect(formatQemuJson({ error: { class: 'GenericError', desc: 'x' }, id: 2 })).toBe(
      '{"id": 2, "error": {"class": "GenericError", "desc": "x"}}',
    );
    expect(formatQemuJson({ return: 'SEV is not enabled\r\n', id: 5 })).toBe('{"return": "SEV is not enabled\\r\\n", "id": 5}');
  });

  it('escapes non-ASCII and control characters as QEMU does', () => {
    expect(formatQemuJson('é\u0001/"\\\u{1F600}')).toBe('"\\u00E9\\u0001/\\"\\\\\\uD83D\\uDE00"');
    expect(formatQemuJson([1, [], null, false])).toBe('[1, [], null, false]');
  });

  it('hashes keys into QDict buckets', () => {
    expect([qdictBucket('enabled'), qdictBucket('return'), qdictBucket('id')]).toEqual([33, 401, 486]);
  });
});

describe('parseQemuJson', () => {
  it('reads single-quoted strings as QEMU does', () => {
    expect(parseQemuJson(`{'execute': 'query-sev', "id": 'a\\'b'}`)).toEqual({
      ok: true,
      value: { execute: 'query-sev', id: "a'b" },
      duplicateKeys: false,
    });
  });

  it('notes duplicate keys at any depth', () => {
    expect(parseQemuJson('{"a": {"b": 1, "b": 2}}')).toMatchObject({ ok: true, duplicateKeys: true });
  });

  it('refuses what is not one complete value', () => {
    for (const bad of ['{"a": 1', '{"a": 1} x', '{a: 1}', '"\\x"', '']) expect(parseQemuJson(bad)).toEqual({ ok: false });
  });

  it('keeps __proto__ as an ordinary key', () => {
    const parsed = parseQemuJson('{"__proto__": {"x": 1}}');
    expect(parsed.ok && Object.keys(parsed.value as object)).toEqual(['__proto__']);
  });
});
