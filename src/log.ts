// Logger construction: pino, JSON lines to stdout (journald) or an injected destination (tests).
// Owns: the redaction list for secret-bearing fields, and the fixed child-binding keys.
// Must not: create child loggers with keys taken from input (pino docs/child-loggers.md).
import { pino, type Logger, type DestinationStream, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

/**
 * Secret-bearing paths. QMP `sev-inject-launch-secret` arguments, launch-session blobs and the
 * owner's transport keys never reach a log line, whatever object they arrive in.
 */
export const REDACT_PATHS: readonly string[] = [
  'secret',
  'packetHeader',
  'packet-header',
  'tik',
  'tek',
  'session',
  'dhCert',
  '*.secret',
  '*.packetHeader',
  '*["packet-header"]',
  '*.tik',
  '*.tek',
  '*.session',
  '*.dhCert',
  'arguments.secret',
  'arguments["packet-header"]',
  '*.arguments.secret',
  '*.arguments["packet-header"]',
];

export interface LoggerOptions {
  /** @default 'info' */
  readonly level?: LevelWithSilent;
  /** Extra fixed bindings on every line (e.g. `{platform: 'simulated'}`). */
  readonly base?: Readonly<Record<string, string>>;
}

/** A logger writing JSON lines to `destination` (stdout by default). */
export function createLogger(options: LoggerOptions = {}, destination?: DestinationStream): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'sevsup', ...options.base },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      hooks: { logMethod: withoutRepeatedKeys },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** Keys pino writes on every line itself. */
const LINE_KEYS = new Set(['level', 'time', 'msg']);

/**
 * pino writes a child's bindings and a call's fields side by side, so a key given in both (a `vm`
 * passed again to a VM's logger) would appear twice in one JSON line, which strict readers reject
 * and lenient ones read as either value. A call field that repeats a bound key is dropped when
 * equal, and kept under `shadowed` when it differs.
 */
function withoutRepeatedKeys(this: Logger, args: unknown[], method: (...a: unknown[]) => void): void {
  const [first] = args;
  if (typeof first === 'object' && first !== null && !Array.isArray(first) && !(first instanceof Error)) {
    const bound = this.bindings();
    const fields: Record<string, unknown> = { ...first };
    let shadowed: Record<string, unknown> | undefined;
    for (const key of Object.keys(fields)) {
      if (!(key in bound) && !LINE_KEYS.has(key)) continue;
      if (bound[key] !== fields[key]) {
        shadowed ??= {};
        shadowed[key] = fields[key];
      }
      delete fields[key];
    }
    if (shadowed !== undefined) fields['shadowed'] = shadowed;
    args[0] = fields;
  }
  method.apply(this, args);
}

/** A logger that writes nothing (library default, like qemu.qmp's NullHandler). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
