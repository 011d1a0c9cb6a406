// Reading QEMU option syntax as QEMU 7.2 does, for the simulated platform: argv into options, and
// one option's value (`key=val,…` QemuOpts/keyval with `,,` escapes, or the JSON form) into props.
// Owns: the list of QEMU 7.2 options that take no argument. Pure: no I/O.
// Must not: format options for QEMU (qemu/escape.ts is the one place that escapes).
import { isRecord } from '../../util/is-record.js';

/** One option as QEMU sees it: `-name value` (or `--name value`); positional arguments have name ''. */
export interface QemuOption {
  readonly name: string;
  readonly value: string | null;
  /** Index of the option's first argv entry. */
  readonly index: number;
  /** How many argv entries it spans (1 or 2). */
  readonly span: number;
}

/** QEMU 7.2 (x86) options without an argument (qemu-options.hx, HAS_ARG 0; checked against the binary). */
const NO_ARG_OPTIONS: ReadonlySet<string> = new Set([
  'h',
  'help',
  'version',
  'S',
  's',
  'snapshot',
  'nodefaults',
  'no-user-config',
  'nographic',
  'portrait',
  'full-screen',
  'win2k-hack',
  'no-fd-bootchk',
  'no-acpi',
  'no-hpet',
  'enable-kvm',
  'xen-attach',
  'xen-domid-restrict',
  'no-reboot',
  'no-shutdown',
  'singlestep',
  'preconfig',
  'daemonize',
  'only-migratable',
  'enable-sync-profile',
  'mem-prealloc',
  'usb',
  'async-teardown',
  'audio-help',
]);

/** Split argv into options; QEMU accepts `-opt` and `--opt` alike. */
export function splitQemuArgv(argv: readonly string[]): QemuOption[] {
  const options: QemuOption[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (!token.startsWith('-') || token === '-') {
      options.push({ name: '', value: token, index: i, span: 1 });
      continue;
    }
    const name = token.replace(/^--?/, '');
    const next = argv[i + 1];
    if (NO_ARG_OPTIONS.has(name) || next === undefined) {
      options.push({ name, value: null, index: i, span: 1 });
      continue;
    }
    options.push({ name, value: next, index: i, span: 2 });
    i++;
  }
  return options;
}

/** One `key=value` part of a QemuOpts/keyval string; `raw` is the part as written (escapes kept). */
export interface OptsPart {
  readonly raw: string;
  /** null for a leading part without `=` (the implied key, e.g. `q35` in `-machine q35`). */
  readonly key: string | null;
  readonly value: string;
}

/**
 * Split on single commas; `,,` is a literal comma (QemuOpts and keyval alike). A later part
 * without `=` is a boolean flag (`key` ≡ `key=on`), as QemuOpts reads it.
 */
export function parseQemuOpts(text: string): OptsPart[] {
  const parts: OptsPart[] = [];
  let raw = '';
  let decoded = '';
  const flush = (): void => {
    const eq = raw.indexOf('=');
    if (eq < 0) parts.push({ raw, key: parts.length === 0 ? null : decoded, value: parts.length === 0 ? decoded : 'on' });
    else {
      // The key never contains ',' (QEMU's key grammar), so the first '=' of the decoded text splits.
      const deq = decoded.indexOf('=');
      parts.push({ raw, key: decoded.slice(0, deq), value: decoded.slice(deq + 1) });
    }
    raw = '';
    decoded = '';
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === ',') {
      if (text[i + 1] === ',') {
        raw += ',,';
        decoded += ',';
        i++;
        continue;
      }
      flush();
      continue;
    }
    raw += c;
    decoded += c;
  }
  flush();
  return parts;
}

/** Props of a QemuOpts string with its implied key named; later duplicates win (QemuOpts merges). */
export function qemuOptsToMap(text: string, impliedKey: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of parseQemuOpts(text)) map.set(part.key ?? impliedKey, part.value);
  return map;
}

/**
 * A keyval or JSON option value (`-object`, `-blockdev`) as a nested object. Dotted keyval keys
 * nest (`file.filename=x` → `{file: {filename: 'x'}}`); keyval values stay strings. Returns null
 * when the JSON form does not parse (QEMU itself reports that).
 */
export function parseObjectOption(text: string, impliedKey: string | null): Record<string, unknown> | null {
  if (text.trimStart().startsWith('{')) {
    try {
      const value: unknown = JSON.parse(text);
      return isRecord(value) ? value : null;
    } catch {
      return null;
    }
  }
  const root: Record<string, unknown> = {};
  for (const part of parseQemuOpts(text)) {
    const key = part.key ?? impliedKey;
    if (key === null) continue;
    const path = key.split('.');
    let node = root;
    for (const segment of path.slice(0, -1)) {
      const child = node[segment];
      if (typeof child === 'object' && child !== null) node = child as Record<string, unknown>;
      else {
        const fresh: Record<string, unknown> = {};
        node[segment] = fresh;
        node = fresh;
      }
    }
    node[path[path.length - 1] as string] = part.value;
  }
  return root;
}

/**
 * An unsigned integer property as QEMU's visitors read it: a JSON number, or a keyval string in
 * decimal, 0x hex or 0 octal (qemu_strtou64 base 0). null when it is not one.
 */
export function readUint(value: unknown, max: number): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 && value <= max ? value : null;
  if (typeof value !== 'string' || !/^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.test(value)) return null;
  const n =
    value.startsWith('0x') || value.startsWith('0X')
      ? Number.parseInt(value.slice(2), 16)
      : value.length > 1 && value.startsWith('0')
        ? Number.parseInt(value.slice(1), 8)
        : Number(value);
  return Number.isSafeInteger(n) && n <= max ? n : null;
}

/** A boolean property: JSON true/false, or QemuOpts/keyval `on|off|yes|no|true|false`. */
export function readBool(value: unknown): boolean | null {
  if (typeof value === 'boolean') return value;
  if (value === 'on' || value === 'yes' || value === 'true') return true;
  if (value === 'off' || value === 'no' || value === 'false') return false;
  return null;
}

/** `-m` sizes: a plain number is MiB; suffixes K, M, G, T (binary), as QEMU's size parser. */
export function parseMemorySize(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)([kKmMgGtT]?)[bB]?$/.exec(text.trim());
  if (m === null) return null;
  const units: Record<string, number> = { '': 2 ** 20, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
  const unit = units[(m[2] ?? '').toLowerCase()] ?? 2 ** 20;
  return Math.floor(Number(m[1]) * unit);
}
