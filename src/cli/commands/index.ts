// The command table: one small register function per subcommand, in the order --help lists them.
// Must not: import command implementations (each register() lazily imports its action).
import type { Command } from 'commander';

export type RegisterCommand = (program: Command) => void;

export const COMMANDS: readonly RegisterCommand[] = [];
