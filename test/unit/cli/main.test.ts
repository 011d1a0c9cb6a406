import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../../src/cli/main.js';

describe('sevsup command table', () => {
  it('every subcommand has a description and --help text naming its options', async () => {
    const program = await buildProgram();
    expect(program.commands.length).toBeGreaterThan(0);
    for (const cmd of program.commands) {
      expect(cmd.description(), `${cmd.name()} needs a description`).not.toBe('');
      const help = cmd.helpInformation();
      expect(help).toContain(`Usage: sevsup ${cmd.name()}`);
      for (const opt of cmd.options.filter((o) => !o.hidden)) expect(help).toContain(opt.flags);
    }
  });

  it('command names are unique', async () => {
    const names = (await buildProgram()).commands.map((c) => c.name());
    expect(new Set(names).size).toBe(names.length);
  });
});
