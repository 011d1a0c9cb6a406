// The daemon's logger: JSON lines on stdout by default (journald keeps them whole and `journalctl
// -o cat | jq` reads them), or pino-pretty's one-line text for people at a terminal.
// Owns: the choice of format and loading pino-pretty only when it is asked for.
// Must not: redact on its own (src/log.ts's createLogger and REDACT_PATHS do, before any format
// sees a line), or write anywhere but the given destination.
import { createRequire } from 'node:module';
import type { DestinationStream, LevelWithSilent } from 'pino';
import type PinoPretty from 'pino-pretty';
import { createLogger, type Logger } from '../log.js';

export type DaemonLogFormat = 'json' | 'pretty';

export const DAEMON_LOG_FORMATS: readonly DaemonLogFormat[] = ['json', 'pretty'];

export interface DaemonLoggerOptions {
  /** @default 'info' */
  readonly level?: LevelWithSilent;
  /** @default 'json' */
  readonly format?: DaemonLogFormat;
  /** Fixed bindings on every line (e.g. `{platform: 'simulated'}`). */
  readonly base?: Readonly<Record<string, string>>;
  /** pretty only: ANSI colours. @default when the destination is stdout and stdout is a terminal */
  readonly colorize?: boolean;
}

/**
 * A logger for `sevsup daemon`. With `pretty`, lines are redacted by pino first and only then
 * formatted, so the formats cannot differ in what they reveal.
 * @param destination where lines go; stdout when absent (tests pass a sink).
 */
export function createDaemonLogger(options: DaemonLoggerOptions = {}, destination?: DestinationStream): Logger {
  const format = options.format ?? 'json';
  const base = { level: options.level ?? 'info', ...(options.base === undefined ? {} : { base: options.base }) };
  if (format === 'json') return createLogger(base, destination);
  // CommonJS, and only needed here: loaded on demand so JSON daemons never pay for it.
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  const stream = pretty({
    destination: destination ?? 1,
    colorize: options.colorize ?? (destination === undefined && process.stdout.isTTY === true),
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
    ignore: 'pid,hostname,service',
    singleLine: true,
    sync: destination === undefined,
  });
  return createLogger(base, stream);
}

/** Narrow a config or option value to a format. Returns null for anything else. */
export function parseDaemonLogFormat(value: string): DaemonLogFormat | null {
  return DAEMON_LOG_FORMATS.find((f) => f === value) ?? null;
}
