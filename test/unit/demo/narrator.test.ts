// The demo's narration layout: wrapped paragraphs, numbered steps, commands shell-quoted whole (so
// they can be copied), output indented under them.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Narrator, wrap } from '../../../src/demo/narrator.js';

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  return {
    stream: new Writable({
      write(chunk: Buffer, _enc, cb) {
        text += chunk.toString();
        cb();
      },
    }),
    text: () => text,
  };
}

describe('wrap', () => {
  it('breaks at word boundaries within the width, every line indented', () => {
    expect(wrap('aaa bbb ccc ddd', 9, '  ')).toBe('  aaa bbb\n  ccc ddd');
    expect(wrap('  spaced\n out  ', 20, '')).toBe('spaced out');
    expect(wrap('averyveryverylongword x', 8, '')).toBe('averyveryverylongword\nx');
    expect(wrap('', 10, '  ')).toBe('');
  });
});

describe('Narrator', () => {
  it('numbers steps and lays out narration, commands and output', () => {
    const out = sink();
    const say = new Narrator(out.stream, 3);
    say.step('First');
    say.say('Explain.');
    say.command(['sevsup', 'qmp', 'demo-sev', '{"execute":"migrate"}']);
    say.output('line one\nline two\n\n');
    say.output('');
    say.line('→ refused');
    say.step('Second');
    expect(say.current).toBe(2);
    expect(out.text()).toBe(
      [
        '',
        '[1/3] First',
        '  Explain.',
        `  $ sevsup qmp demo-sev '{"execute":"migrate"}'`,
        '    line one',
        '    line two',
        '    → refused',
        '',
        '[2/3] Second',
        '',
      ].join('\n'),
    );
  });
});
