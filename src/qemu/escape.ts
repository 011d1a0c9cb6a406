// The one place where user strings are turned into QEMU option syntax.
// Owns: the "can this string reach QEMU intact?" check, comma doubling for QemuOpts-style options
// (`-chardev`, `-name`), and the JSON form (`-object`, `-blockdev`, `-device`, `-netdev`).
// Must not: read files, know about VMs, or silently alter a value: a value that cannot be expressed
// exactly (NUL, broken UTF-16) is refused, never mangled.
// QemuOpts reads a value up to the next single comma and turns ",," into ","; nothing else is special
// inside a value, so doubling commas is the whole escape (libvirt src/util/virqemu.c does the same).
import { SupervisorError } from '../errors.js';

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Where a value came from, for the message: the config file and the key in it. */
export interface ValueOrigin {
  readonly file: string;
  readonly key: string;
}

/**
 * Refuse a string that cannot reach QEMU byte for byte. argv entries are C strings, so a NUL would
 * cut the value short; a lone UTF-16 surrogate has no UTF-8 form and would be replaced by U+FFFD.
 * @throws SUP_ERR_CONFIG_BAD_VALUE naming the file and key.
 */
export function assertQemuSafe(value: string, origin: ValueOrigin): string {
  let problem: string | null = null;
  if (value.includes('\0')) problem = 'contains a NUL character';
  else if (LONE_SURROGATE.test(value)) problem = 'is not valid Unicode (a lone UTF-16 surrogate)';
  if (problem !== null) {
    throw new SupervisorError(
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${origin.file}: ${origin.key}: the value ${problem}, so it cannot be passed to QEMU unchanged; remove it`,
      { details: { file: origin.file, key: origin.key } },
    );
  }
  return value;
}

/** QemuOpts escaping of one value: every comma doubled. The value must already be QEMU-safe. */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** Option keys are ours, never user input; this guards against a programming slip. */
const OPTION_KEY = /^[a-z][a-z0-9_.-]*$/;

/**
 * A QemuOpts option string: `head,key=value,…` (head may be null), values comma-doubled.
 * `props` values are already checked with assertQemuSafe where they come from users.
 */
export function formatQemuOpts(head: string | null, props: readonly (readonly [string, string])[]): string {
  const parts: string[] = head === null ? [] : [head];
  for (const [key, value] of props) {
    if (!OPTION_KEY.test(key)) throw new Error(`internal: invalid QEMU option key ${JSON.stringify(key)}`);
    parts.push(`${key}=${escapeOptionValue(value)}`);
  }
  return parts.join(',');
}

/**
 * A JSON-form option value (`-object`, `-blockdev`, `-device`, `-netdev` in QEMU ≥ 6.0/7.0); null
 * only where QEMU takes it (`-blockdev`'s `"backing": null`: open no backing file).
 */
export type JsonOption = Readonly<Record<string, string | number | boolean | null>>;

/**
 * Serialise a JSON-form option. QEMU treats an argument starting with `{` as JSON, so strings need
 * no escaping beyond JSON's own; they must still be QEMU-safe (checked by the caller with origin).
 */
export function formatJsonOption(option: JsonOption): string {
  for (const value of Object.values(option)) {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) {
      throw new Error(`internal: non-integer number in a QEMU JSON option: ${value}`);
    }
  }
  return JSON.stringify(option);
}
