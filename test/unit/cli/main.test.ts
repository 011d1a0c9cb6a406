import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { COMMANDS, commandsFor } from '../../../src/cli/commands/index.js';
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

  it('each table entry registers exactly the names it lists, and a command line naming one gets only that entry', async () => {
    for (const entry of COMMANDS) {
      const alone = new Command('sevsup');
      (await entry.load())(alone);
      expect(alone.commands.map((c) => c.name())).toEqual(entry.names);
      for (const name of entry.names) expect(commandsFor(name)).toEqual([entry]);
    }
    expect((await buildProgram()).commands.map((c) => c.name())).toEqual(COMMANDS.flatMap((e) => e.names));
    for (const first of [undefined, 'help', '--help', 'no-such-command', '-V']) expect(commandsFor(first)).toBe(COMMANDS);
  });

  it('command names are unique', async () => {
    const names = (await buildProgram()).commands.map((c) => c.name());
    expect(new Set(names).size).toBe(names.length);
  });
});
