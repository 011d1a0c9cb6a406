// HMP command-line reading as QEMU 7.2 does it (monitor/hmp.c); the whitespace and unknown-name
// cases are also checked against the real binary in integration/proxy-classify/.
import { describe, expect, it } from 'vitest';
import { HMP_COMMANDS_7_2, HMP_INFO_COMMANDS_7_2, isHmpSpace, parseHmpCommandLine } from '../../../src/qemu/hmp.js';

type Expect = { name: string | null; sub?: string | null; args?: string; known: boolean };

describe('parseHmpCommandLine', () => {
  it.each<[string, string, Expect]>([
    ['plain', 'savevm t1', { name: 'savevm', args: 't1', known: true }],
    ['leading spaces', '   savevm t1', { name: 'savevm', args: 't1', known: true }],
    ['leading tab', '\tsavevm t2', { name: 'savevm', args: 't2', known: true }],
    ['mixed leading whitespace', ' \t\n\r\v\fsavevm\tt3', { name: 'savevm', args: 't3', known: true }],
    ['trailing whitespace kept in args', 'savevm t1  ', { name: 'savevm', args: 't1  ', known: true }],
    ['name ends at slash', 'x/10x 0x1000', { name: 'x', args: '/10x 0x1000', known: true }],
    ['xp with format', 'xp /4g 0', { name: 'xp', args: '/4g 0', known: true }],
    ['alias c', 'c', { name: 'cont', args: '', known: true }],
    ['canonical cont', 'cont', { name: 'cont', args: '', known: true }],
    ['alias s', '  s', { name: 'stop', args: '', known: true }],
    ['alias q', 'q', { name: 'quit', args: '', known: true }],
    ['alias p', 'p $pc', { name: 'print', args: '$pc', known: true }],
    ['alias p with format', 'p/x $rax', { name: 'print', args: '/x $rax', known: true }],
    ['alias ?', '? savevm', { name: 'help', args: 'savevm', known: true }],
    ['case matters', 'SAVEVM t1', { name: 'SAVEVM', args: 't1', known: false }],
    ['case matters for aliases', 'C', { name: 'C', args: '', known: false }],
    ['dash is not underscore', 'migrate-incoming tcp:0:4444', { name: 'migrate-incoming', known: false }],
    ['underscore is not dash', 'dump_guest_memory /tmp/x', { name: 'dump_guest_memory', known: false }],
    ['real underscore name', 'migrate_incoming tcp:0:4444', { name: 'migrate_incoming', known: true }],
    ['real dash name', 'dump-guest-memory /tmp/x', { name: 'dump-guest-memory', known: true }],
    ['non-breaking space is not whitespace', '\u00a0savevm t', { name: '\u00a0savevm', known: false }],
    ['NEL is not whitespace', '\u0085savevm t', { name: '\u0085savevm', known: false }],
    ['U+0000 is an ordinary character', 'savevm\u0000 t', { name: 'savevm\u0000', known: false }],
    ['blank', '', { name: null, args: '', known: false }],
    ['whitespace only', ' \t\n ', { name: null, args: '', known: false }],
    ['info alone', 'info', { name: 'info', sub: null, args: '', known: true }],
    ['info with trailing spaces', 'info   \t', { name: 'info', sub: null, args: '', known: true }],
    ['info status', 'info status', { name: 'info', sub: 'status', args: '', known: true }],
    ['info with odd spacing', ' \tinfo \t\v status \t', { name: 'info', sub: 'status', args: '', known: true }],
    ['info sub with args', 'info registers -a', { name: 'info', sub: 'registers', args: '-a', known: true }],
    ['info sub with slash', 'info mtree/x', { name: 'info', sub: 'mtree', args: '/x', known: true }],
    ['info/ asks for the empty sub-command', 'info/status', { name: 'info', sub: '', args: '/status', known: false }],
    ['info sub case matters', 'info STATUS', { name: 'info', sub: 'STATUS', known: false }],
    ['info sub dash is not underscore', 'info migrate-capabilities', { name: 'info', sub: 'migrate-capabilities', known: false }],
    ['info sub real underscore', 'info migrate_capabilities', { name: 'info', sub: 'migrate_capabilities', known: true }],
    ['info sub NBSP', 'info \u00a0status', { name: 'info', sub: '\u00a0status', known: false }],
    ['Info is not info', 'Info status', { name: 'Info', args: 'status', known: false }],
  ])('%s: %j', (_label, line, expected) => {
    const parsed = parseHmpCommandLine(line);
    expect(parsed.name).toBe(expected.name);
    expect(parsed.known).toBe(expected.known);
    if (expected.sub !== undefined) expect(parsed.sub).toBe(expected.sub);
    else expect(parsed.sub).toBeNull();
    if (expected.args !== undefined) expect(parsed.args).toBe(expected.args);
  });

  it('cuts names at 255 bytes as QEMU does, so a long name never matches', () => {
    const parsed = parseHmpCommandLine(`${'é'.repeat(200)} arg`);
    expect(parsed.name).toBe('é'.repeat(127));
    expect(parsed.args).toBe('arg');
    expect(parseHmpCommandLine(`savevm${'a'.repeat(300)}`).name).toHaveLength(255);
  });

  it('resolves every alias of the 7.2 tables and knows every name', () => {
    for (const entry of HMP_COMMANDS_7_2) {
      const names = entry.split('|');
      const canonical = names.reduce((a, b) => (b.length > a.length ? b : a));
      for (const name of names) expect(parseHmpCommandLine(`${name}`)).toMatchObject({ name: canonical, known: true });
    }
    for (const sub of HMP_INFO_COMMANDS_7_2) expect(parseHmpCommandLine(`info ${sub}`)).toMatchObject({ sub, known: true });
    expect(HMP_COMMANDS_7_2).toHaveLength(108);
    expect(HMP_INFO_COMMANDS_7_2).toHaveLength(67);
  });
});

describe('isHmpSpace', () => {
  it('is C isspace on ASCII and nothing else', () => {
    const spaces = [];
    for (let c = 0; c < 0x3000; c++) if (isHmpSpace(c)) spaces.push(c);
    expect(spaces).toEqual([9, 10, 11, 12, 13, 32]);
  });
});
