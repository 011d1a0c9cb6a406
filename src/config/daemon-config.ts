// The daemon config file (`/etc/sevsup/sevsup.conf`, `key: value` lines read by kv-file.ts) and the
// `sevsup daemon` flags of the same names: one vocabulary, one validation, flags win over the file.
// Owns: the keys, their defaults and value rules, and loadDaemonConfig (the only I/O: reading the
// file). Must not: act on a value (resolve groups, bind sockets, probe hosts: daemon/ does that).
// A missing default file is fine (defaults apply); a missing file named with --config is an error.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { SupervisorError } from '../errors.js';
import { describeIoError } from '../util/io-error.js';
import { indexKeyValueLines, quoteForMessage, readKeyValueLines } from './kv-file.js';
import { didYouMean } from './suggest.js';
import { DAEMON_KEYS, POWERDOWN_TIMEOUT_SECONDS, SNP_FIRST_RUN_WINDOW_MS, type DaemonKey } from './daemon-keys.js';
import { HOLD_TIMEOUT_SECONDS } from './vm-keys.js';
import { BOOLEAN_ALLOWED, parseBooleanWord } from './propstring.js';
import {
  DEFAULT_DAEMON_CONFIG_FILE,
  DEFAULT_VM_DIR,
  DEFAULT_RUN_DIR,
  DEFAULT_STATE_DIR,
  DEFAULT_DAEMON_SOCKET,
  DEFAULT_SNP_CERT_CACHE,
} from '../paths.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface DaemonConfig {
  /** Directory of `<vm>.conf` files. */
  readonly vmDir: string;
  /** Per-guest sockets, pid and state files: `<run-dir>/<vm>/`. */
  readonly runDir: string;
  /** Measurement records: `<state-dir>/<vm>/measurements/`. */
  readonly stateDir: string;
  /** The control API socket. */
  readonly socket: string;
  /** Group (name or numeric gid) given access to the control socket and the QMP proxy sockets. */
  readonly socketGroup: string | null;
  /** QEMU binary (with `platform: sim`, the QEMU the simulator runs); null: the default. */
  readonly qemu: string | null;
  /** QEMU's seccomp sandbox (`-sandbox on,…`). */
  readonly qemuSandbox: boolean;
  /** User QEMU drops to after start-up (`-runas`); null: it stays the daemon's user. */
  readonly qemuUser: string | null;
  readonly platform: 'hardware' | 'sim';
  /** Host capabilities file; null: probe (hardware) or the simulated caps (sim). */
  readonly hostCaps: string | null;
  readonly logLevel: LogLevel;
  readonly logFormat: 'json' | 'pretty';
  /** Firmware for VM configs with `bios: ovmf` and no `firmware:` key. */
  readonly defaultFirmware: string | null;
  /** Seconds a held guest waits for its owner when its config does not say. */
  readonly holdTimeout: number;
  /** Milliseconds after an SNP guest's first `cont` in which a QEMU exit is a failed launch. */
  readonly snpFirstRunWindowMs: number;
  /** What SIGTERM does to guests: leave them running (a restart) or shut them down. */
  readonly onShutdown: 'keep' | 'shutdown';
  /** Seconds a graceful stop waits for a running guest's own power-off before QEMU is told to quit. */
  readonly powerdownTimeout: number;
  /** Refuse guests whose policy allows debugging (else a warning at every start). */
  readonly refuseDebugPolicy: boolean;
  /** Optional loopback TCP listener for Prometheus: `127.0.0.1:PORT` (port 0: any free one). */
  readonly metricsListen: string | null;
  /** Keep the host's SNP certificates and the guests' tables: on, off, or auto (SNP host or facts file). */
  readonly snpCerts: 'on' | 'off' | 'auto';
  /** The operator's SNP platform facts file (product, chip-id, reported-tcb); null: the platform's own source. */
  readonly snpPlatform: string | null;
  readonly snpCertCache: string;
  readonly snpCertsOffline: boolean;
  /** The ARK to pin instead of AMD's; null: AMD's built-in ARKs. */
  readonly snpArk: string | null;
  /** null: AMD's (hardware), none (sim: offline unless given). */
  readonly kdsUrl: string | null;
  /** Seconds between re-reads of the platform's reported TCB. */
  readonly snpCertsRefresh: number;
  /** The host's id in relay requests (`attest: relay`); null: os.hostname(). */
  readonly hostId: string | null;
}

/** Bounds of `snp-certs-refresh` (seconds). */
export const SNP_CERTS_REFRESH_SECONDS = { min: 1, max: 86_400 } as const;

export const DAEMON_DEFAULTS: DaemonConfig = {
  vmDir: DEFAULT_VM_DIR,
  runDir: DEFAULT_RUN_DIR,
  stateDir: DEFAULT_STATE_DIR,
  socket: DEFAULT_DAEMON_SOCKET,
  socketGroup: null,
  qemu: null,
  qemuSandbox: false,
  qemuUser: null,
  platform: 'hardware',
  hostCaps: null,
  logLevel: 'info',
  logFormat: 'json',
  defaultFirmware: null,
  holdTimeout: 600,
  snpFirstRunWindowMs: SNP_FIRST_RUN_WINDOW_MS.default,
  onShutdown: 'keep',
  powerdownTimeout: POWERDOWN_TIMEOUT_SECONDS.default,
  refuseDebugPolicy: false,
  metricsListen: null,
  snpCerts: 'auto',
  snpPlatform: null,
  snpCertCache: DEFAULT_SNP_CERT_CACHE,
  snpCertsOffline: false,
  snpArk: null,
  kdsUrl: null,
  snpCertsRefresh: 300,
  hostId: null,
};

export { DAEMON_KEYS, type DaemonKey } from './daemon-keys.js';

/** Raw values by key, as read from the file or the command line. */
export type DaemonSettings = Partial<Record<DaemonKey, string>>;

/** A config file is a dozen lines; anything this big is the wrong file. */
export const MAX_DAEMON_CONFIG_BYTES = 64 * 1024;
/** Group names as useradd takes them, or a numeric gid. */
const GROUP_PATTERN = /^(?:[a-z_][a-z0-9_-]{0,31}\$?|\d{1,10})$/;
/** POSIX-style user names (as useradd accepts them), or a numeric uid. */
const USER_PATTERN = GROUP_PATTERN;
const HOST_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const METRICS_PATTERN = /^127\.0\.0\.1:(\d{1,5})$/;

export function isDaemonKey(key: string): key is DaemonKey {
  return (DAEMON_KEYS as readonly string[]).includes(key);
}

/** Where a value came from, for messages: `file:line` or `--flag`. */
export interface ValueSource {
  readonly where: string;
  /** Relative paths resolve against this directory. */
  readonly baseDir: string;
}

/**
 * Parse the daemon config file's text into raw settings (values checked, not yet merged).
 * @throws SUP_ERR_CONFIG_SYNTAX, SUP_ERR_CONFIG_DUPLICATE_KEY, SUP_ERR_CONFIG_UNKNOWN_KEY,
 *   SUP_ERR_CONFIG_BAD_VALUE — each naming file, line and key.
 */
export function parseDaemonConfig(text: string, file: string): DaemonSettings {
  const settings: DaemonSettings = {};
  const baseDir = path.dirname(path.resolve(file));
  for (const entry of indexKeyValueLines(readKeyValueLines(text, file), file).values()) {
    if (!isDaemonKey(entry.key)) {
      throw new SupervisorError(
        'SUP_ERR_CONFIG_UNKNOWN_KEY',
        `${file}:${entry.line}: unknown key '${entry.key}'${didYouMean(entry.key, DAEMON_KEYS)}`,
        {
          details: { file, line: entry.line, key: entry.key },
        },
      );
    }
    applyValue({ ...DAEMON_DEFAULTS }, entry.key, entry.value, { where: `${file}:${entry.line}`, baseDir });
    settings[entry.key] = entry.value;
  }
  return settings;
}

/**
 * Defaults, overridden by the file's settings, overridden by the flags'.
 * @throws SUP_ERR_CONFIG_BAD_VALUE naming the flag or file line of a bad value.
 */
export function resolveDaemonConfig(
  fromFile: DaemonSettings,
  fileSource: ValueSource | null,
  fromFlags: DaemonSettings,
  flagBaseDir: string = process.cwd(),
): DaemonConfig {
  const config: Mutable<DaemonConfig> = { ...DAEMON_DEFAULTS };
  const apply = (settings: DaemonSettings, source: (key: DaemonKey) => ValueSource): void => {
    for (const key of Object.keys(settings)) {
      if (!isDaemonKey(key)) continue;
      const value = settings[key];
      if (value !== undefined) applyValue(config, key, value, source(key));
    }
  };
  if (fileSource !== null) apply(fromFile, () => fileSource);
  apply(fromFlags, (key) => ({ where: `--${key}`, baseDir: flagBaseDir }));
  return config;
}

export interface LoadDaemonConfigOptions {
  /** `--config FILE`: must exist. Absent: DEFAULT_DAEMON_CONFIG_FILE, which may be missing. */
  readonly file?: string;
  readonly flags?: DaemonSettings;
  /** @default DEFAULT_DAEMON_CONFIG_FILE (tests point it elsewhere) */
  readonly defaultFile?: string;
}

/**
 * Read the config file (if any) and merge the flags over it.
 * @throws SUP_ERR_CONFIG_READ (an explicit file that cannot be read, any file too large or not
 *   UTF-8), and every parseDaemonConfig / resolveDaemonConfig error.
 */
export async function loadDaemonConfig(options: LoadDaemonConfigOptions = {}): Promise<DaemonConfig> {
  const explicit = options.file !== undefined;
  const file = path.resolve(options.file ?? options.defaultFile ?? DEFAULT_DAEMON_CONFIG_FILE);
  let text: string | null = null;
  try {
    const bytes = await readFile(file);
    if (bytes.length > MAX_DAEMON_CONFIG_BYTES) {
      throw new SupervisorError(
        'SUP_ERR_CONFIG_READ',
        `cannot read config file ${file}: it is ${bytes.length} bytes, more than ${MAX_DAEMON_CONFIG_BYTES}`,
        {
          details: { file },
        },
      );
    }
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error: unknown) {
    if (error instanceof SupervisorError) throw error;
    const reason = error instanceof TypeError ? 'it is not valid UTF-8 text' : describeIoError(error);
    if (!(reason === 'no such file' && !explicit)) {
      throw new SupervisorError('SUP_ERR_CONFIG_READ', `cannot read config file ${file}: ${reason}`, { details: { file }, cause: error });
    }
  }
  const fromFile = text === null ? {} : parseDaemonConfig(text, file);
  return resolveDaemonConfig(fromFile, { where: file, baseDir: path.dirname(file) }, options.flags ?? {});
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Check one raw value and set its typed form in `c`. @throws SUP_ERR_CONFIG_BAD_VALUE */
function applyValue(c: Mutable<DaemonConfig>, key: DaemonKey, value: string, source: ValueSource): void {
  // `file:line: key: 'v' …` for the file; `--key: 'v' …` for a flag.
  const what = source.where.startsWith('--') ? source.where : `${source.where}: ${key}`;
  const bad = (why: string): SupervisorError =>
    new SupervisorError('SUP_ERR_CONFIG_BAD_VALUE', `${what}: ${quoteForMessage(value)} ${why}`, { details: { where: source.where, key } });
  const resolved = path.resolve(source.baseDir, value);
  const boolean = (): boolean => {
    const flag = parseBooleanWord(value);
    if (flag === undefined) throw bad(`must be a boolean (${BOOLEAN_ALLOWED})`);
    return flag;
  };
  const seconds = (range: { readonly min: number; readonly max: number }): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < range.min || n > range.max) throw bad(`must be whole seconds from ${range.min} to ${range.max}`);
    return n;
  };
  switch (key) {
    case 'vm-dir':
      c.vmDir = resolved;
      return;
    case 'run-dir':
      c.runDir = resolved;
      return;
    case 'state-dir':
      c.stateDir = resolved;
      return;
    case 'socket':
      c.socket = resolved;
      return;
    case 'host-caps':
      c.hostCaps = resolved;
      return;
    case 'default-firmware':
      c.defaultFirmware = resolved;
      return;
    case 'qemu':
      // A bare name is looked up on PATH as QEMU is; anything with a slash is a path.
      c.qemu = value.includes('/') ? resolved : value;
      return;
    case 'qemu-sandbox':
      c.qemuSandbox = boolean();
      return;
    case 'refuse-debug-policy':
      c.refuseDebugPolicy = boolean();
      return;
    case 'qemu-user':
      if (!USER_PATTERN.test(value)) throw bad('is not a user name or numeric uid');
      c.qemuUser = value;
      return;
    case 'socket-group':
      if (!GROUP_PATTERN.test(value)) throw bad('is not a group name or numeric gid');
      c.socketGroup = value;
      return;
    case 'platform':
      c.platform = oneOf(value, ['hardware', 'sim'], bad);
      return;
    case 'log-level':
      c.logLevel = oneOf(value, LOG_LEVELS, bad);
      return;
    case 'log-format':
      c.logFormat = oneOf(value, ['json', 'pretty'], bad);
      return;
    case 'on-shutdown':
      c.onShutdown = oneOf(value, ['keep', 'shutdown'], bad);
      return;
    case 'hold-timeout':
      c.holdTimeout = seconds(HOLD_TIMEOUT_SECONDS);
      return;
    case 'powerdown-timeout':
      c.powerdownTimeout = seconds(POWERDOWN_TIMEOUT_SECONDS);
      return;
    case 'snp-first-run-window':
      c.snpFirstRunWindowMs = wholeMs(value, SNP_FIRST_RUN_WINDOW_MS, bad);
      return;
    case 'snp-certs':
      c.snpCerts = oneOf(value, ['on', 'off', 'auto'], bad);
      return;
    case 'snp-platform':
      c.snpPlatform = resolved;
      return;
    case 'snp-cert-cache':
      c.snpCertCache = resolved;
      return;
    case 'snp-certs-offline':
      c.snpCertsOffline = boolean();
      return;
    case 'snp-ark':
      c.snpArk = resolved;
      return;
    case 'kds-url':
      c.kdsUrl = kdsUrl(value, bad);
      return;
    case 'snp-certs-refresh':
      c.snpCertsRefresh = seconds(SNP_CERTS_REFRESH_SECONDS);
      return;
    case 'host-id':
      // A hostname-like word: it travels in every relay request and the owner's logs.
      if (!HOST_ID_PATTERN.test(value)) throw bad("is not a host id (1 to 253 letters, digits, '.', '_', '-')");
      c.hostId = value;
      return;
    case 'metrics-listen': {
      const port = METRICS_PATTERN.exec(value)?.[1];
      if (port === undefined || Number(port) > 65535) {
        throw bad('must be 127.0.0.1:PORT (metrics are served on loopback only; put a proxy in front for remote scrapes)');
      }
      c.metricsListen = value;
      return;
    }
  }
}

/** Whole milliseconds within `range` (the unit is in the message: the window is the one key in ms). */
export function wholeMs(value: string, range: { readonly min: number; readonly max: number }, bad: (why: string) => Error): number {
  const n = Number(value);
  if (!/^\d{1,6}$/.test(value) || n < range.min || n > range.max) throw bad(`must be whole milliseconds from ${range.min} to ${range.max}`);
  return n;
}

/** An http(s) base URL without credentials, query or fragment; returned without a trailing slash. */
function kdsUrl(value: string, bad: (why: string) => SupervisorError): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw bad('is not a URL (e.g. https://kdsintf.amd.com)');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw bad('must be an http:// or https:// URL');
  if (u.username !== '' || u.password !== '') throw bad('must not carry credentials');
  if (u.search !== '' || u.hash !== '') throw bad('must be a base URL without ?query or #fragment');
  return value.replace(/\/+$/, '');
}

function oneOf<T extends string>(value: string, allowed: readonly T[], bad: (why: string) => SupervisorError): T {
  const found = allowed.find((a) => a === value);
  if (found === undefined) throw bad(`must be one of ${allowed.join(', ')}`);
  return found;
}
