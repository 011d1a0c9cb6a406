// The command table: one small register function per subcommand, in the order --help lists them.
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
import { registerVerify } from './verify.js';

export type RegisterCommand = (program: Command) => void;

export const COMMANDS: readonly RegisterCommand[] = [
  registerShowcmd,
  registerRun,
  registerDaemon,
  registerList,
  registerStatus,
  registerStart,
  registerStop,
  registerMeasurement,
  registerAttest,
  registerSnapshot,
  registerMigrate,
  registerQmp,
  registerInspectFirmware,
  registerHost,
  registerMeasure,
  registerIdBlock,
  registerVerify,
  registerCerts,
  registerSecret,
  registerOwner,
  registerDemo,
];
