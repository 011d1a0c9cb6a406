// The command table: one small register function per subcommand, in the order --help lists them,
// with the names it registers (cli/main.ts registers only the one a command line names: setting up
// all of them is about a fifth of a command's start-up). Each entry imports its command file on
// demand, so a command line loads only the file of the command it names (and what that file
// imports), not every command's option table: each import is a chunk of its own in the bundle.
// Must not: import command files statically, or command implementations at all (each register()
// lazily imports its action).
import type { Command } from 'commander';

export type RegisterCommand = (program: Command) => void;

export interface CommandEntry {
  /** The top-level command names the register function adds (a test checks them). */
  readonly names: readonly string[];
  /** Imports the command's file and returns its register function. */
  readonly load: () => Promise<RegisterCommand>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { names: ['showcmd'], load: async () => (await import('./showcmd.js')).registerShowcmd },
  { names: ['run'], load: async () => (await import('./run.js')).registerRun },
  { names: ['daemon'], load: async () => (await import('./daemon.js')).registerDaemon },
  { names: ['list'], load: async () => (await import('./guests.js')).registerList },
  { names: ['status'], load: async () => (await import('./guests.js')).registerStatus },
  { names: ['start'], load: async () => (await import('./guests.js')).registerStart },
  { names: ['stop'], load: async () => (await import('./guests.js')).registerStop },
  { names: ['measurement'], load: async () => (await import('./guests.js')).registerMeasurement },
  { names: ['attest'], load: async () => (await import('./attest.js')).registerAttest },
  { names: ['snapshot'], load: async () => (await import('./guests.js')).registerSnapshot },
  { names: ['migrate'], load: async () => (await import('./guests.js')).registerMigrate },
  { names: ['qmp', 'monitor'], load: async () => (await import('./qmp.js')).registerQmp },
  { names: ['inspect-firmware'], load: async () => (await import('./inspect-firmware.js')).registerInspectFirmware },
  { names: ['host'], load: async () => (await import('./host.js')).registerHost },
  { names: ['measure'], load: async () => (await import('./measure.js')).registerMeasure },
  { names: ['id-block'], load: async () => (await import('./id-block.js')).registerIdBlock },
  { names: ['verify'], load: async () => (await import('./verify.js')).registerVerify },
  { names: ['certs'], load: async () => (await import('./certs.js')).registerCerts },
  { names: ['secret'], load: async () => (await import('./secret.js')).registerSecret },
  { names: ['owner'], load: async () => (await import('./owner.js')).registerOwner },
  { names: ['sim'], load: async () => (await import('./sim.js')).registerSim },
  { names: ['demo'], load: async () => (await import('./demo.js')).registerDemo },
];

/**
 * The entries to register for a command line whose first argument is `first`: only the one that
 * names it, or all (top-level --help, an unknown command and its suggestions, `help <command>`).
 */
export function commandsFor(first: string | undefined): readonly CommandEntry[] {
  const named = COMMANDS.find((entry) => first !== undefined && entry.names.includes(first));
  return named === undefined ? COMMANDS : [named];
}
