// The `sevsup` command: argument parsing and the mapping of error codes to exit codes.
// Owns: the command table (error printing: cli/report-error.ts). Must not: contain business rules or
// load a command's implementation before that command runs (start-up stays near `node -e ''`).
// Each command is registered by a small file in cli/commands/ whose action lazily imports its
// implementation from cli/actions/. The light commands (commands/light.ts: plain `status <vm>`,
// `list` and `--version`) skip commander and the command table altogether: monitoring calls them
// often (bin/sevsup runs them from their own small bundle, cli/light-main.ts). What ships is bundled
// (scripts/bundle.mjs); each lazy import stays a chunk of its own.
import type * as CommanderModule from 'commander';
import { EXIT } from '../errors.js';
import type { RegisterCommand } from './commands/index.js';
import { runLightCli } from './light-main.js';
import { noteCommander, reportError } from './report-error.js';

type Command = CommanderModule.Command;

/**
 * Build the program for a command line whose first argument is `first` (commands/index.ts's
 * commandsFor); with none, every command (tests check every subcommand's --help).
 */
export async function buildProgram(first?: string): Promise<Command> {
  // commander is loaded here, on first use: it is most of the start-up of a light command, which
  // does not need it. The same module the command files import (one copy, in the bundle too).
  const [{ commandsFor }, { VERSION }, loaded] = await Promise.all([
    import('./commands/index.js'),
    import('../version.js'),
    import('commander'),
  ]);
  noteCommander(loaded);
  const registers = await Promise.all(commandsFor(first).map((entry) => entry.load()));
  return createProgram(loaded, registers, VERSION);
}

/** The program with the commands `registers` add, in their order. */
function createProgram(lib: typeof CommanderModule, registers: readonly RegisterCommand[], version: string): Command {
  const program = new lib.Command('sevsup')
    .description('Supervisor for AMD SEV and SEV-ES confidential virtual machines on QEMU')
    .version(version, '-V, --version', 'print the sevsup version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) })
    .exitOverride();
  for (const register of registers) register(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** Run the CLI with `argv` (process.argv form) and return the exit code. Never throws. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const light = runLightCli(argv);
  if (light !== null) return light;
  try {
    const program = await buildProgram(argv[2]);
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error: unknown) {
    return reportError(error);
  }
}
