// The command table: one small register function per subcommand, in the order --help lists them,
// with the names it registers (cli/main.ts registers only the one a command line names: setting up
// all of them is about a fifth of a command's start-up).
// Must not: import command implementations (each register() lazily imports its action).
import type { Command } from 'commander';
import { registerAttest } from './attest.js';
import { registerCerts } from './certs.js';
import { registerDaemon } from './daemon.js';
import { registerDemo } from './demo.js';
import {
  registerList,
  registerMeasurement,
  registerMigrate,
  registerSnapshot,
  registerStart,
  registerStatus,
  registerStop,
} from './guests.js';
import { registerHost } from './host.js';
import { registerIdBlock } from './id-block.js';
import { registerInspectFirmware } from './inspect-firmware.js';
import { registerMeasure } from './measure.js';
import { registerOwner } from './owner.js';
import { registerQmp } from './qmp.js';
import { registerRun } from './run.js';
import { registerSecret } from './secret.js';
import { registerShowcmd } from './showcmd.js';
import { registerSim } from './sim.js';
import { registerVerify } from './verify.js';

export type RegisterCommand = (program: Command) => void;

export interface CommandEntry {
  /** The top-level command names `register` adds (a test checks them). */
  readonly names: readonly string[];
  readonly register: RegisterCommand;
}

export const COMMANDS: readonly CommandEntry[] = [
  { names: ['showcmd'], register: registerShowcmd },
  { names: ['run'], register: registerRun },
  { names: ['daemon'], register: registerDaemon },
  { names: ['list'], register: registerList },
  { names: ['status'], register: registerStatus },
  { names: ['start'], register: registerStart },
  { names: ['stop'], register: registerStop },
  { names: ['measurement'], register: registerMeasurement },
  { names: ['attest'], register: registerAttest },
  { names: ['snapshot'], register: registerSnapshot },
  { names: ['migrate'], register: registerMigrate },
  { names: ['qmp', 'monitor'], register: registerQmp },
  { names: ['inspect-firmware'], register: registerInspectFirmware },
  { names: ['host'], register: registerHost },
  { names: ['measure'], register: registerMeasure },
  { names: ['id-block'], register: registerIdBlock },
  { names: ['verify'], register: registerVerify },
  { names: ['certs'], register: registerCerts },
  { names: ['secret'], register: registerSecret },
  { names: ['owner'], register: registerOwner },
  { names: ['sim'], register: registerSim },
  { names: ['demo'], register: registerDemo },
];

/**
 * The entries to register for a command line whose first argument is `first`: only the one that
 * names it, or all (top-level --help, an unknown command and its suggestions, `help <command>`).
 */
export function commandsFor(first: string | undefined): readonly CommandEntry[] {
  const named = COMMANDS.find((entry) => first !== undefined && entry.names.includes(first));
  return named === undefined ? COMMANDS : [named];
}
