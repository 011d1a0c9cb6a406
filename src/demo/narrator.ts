// How `sevsup demo` talks to a newcomer: numbered steps, short explanations wrapped to the
// terminal, the commands it runs (as one would type them), and their output, indented.
// Owns: that layout only. Must not: decide what happens (demo/demo.ts does) or print
// secret bytes (callers pass lengths and file names, never key or secret contents).
import type { Writable } from 'node:stream';
import { shellQuote } from '../util/shell-quote.js';

/** Narration is wrapped here; commands and their output are not (they are shown as they are). */
const WRAP_COLUMNS = 96;

export class Narrator {
  #steps = 0;

  constructor(
    private readonly out: Writable,
    private readonly totalSteps: number,
  ) {}

  /** `[n/total] Title`, preceded by a blank line. */
  step(title: string): void {
    this.#steps += 1;
    this.out.write(`\n[${this.#steps}/${this.totalSteps}] ${title}\n`);
  }

  /** The current step number (for failure messages). */
  get current(): number {
    return this.#steps;
  }

  /** A paragraph of explanation, wrapped and indented. */
  say(text: string): void {
    this.out.write(`${wrap(text, WRAP_COLUMNS, '  ')}\n`);
  }

  /** A command as a person would type it (argv[0] is the program name to show), whole: it can be copied. */
  command(argv: readonly string[]): void {
    this.out.write(`  $ ${argv.map(shellQuote).join(' ')}\n`);
  }

  /** Output lines, indented under the command or step. Empty trailing lines are dropped. */
  output(text: string): void {
    const lines = text.replace(/\s+$/, '').split('\n');
    if (lines.length === 1 && lines[0] === '') return;
    this.out.write(`${lines.map((l) => `    ${l}`).join('\n')}\n`);
  }

  /** A result line, indented like output. */
  line(text: string): void {
    this.out.write(`    ${text}\n`);
  }

  raw(text: string): void {
    this.out.write(text);
  }
}

/** Greedy word wrap; every line starts with `indent`. */
export function wrap(text: string, columns: number, indent: string): string {
  const words = text.split(/\s+/).filter((w) => w !== '');
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line !== '' && indent.length + line.length + 1 + word.length > columns) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines.map((l) => `${indent}${l}`).join('\n');
}
