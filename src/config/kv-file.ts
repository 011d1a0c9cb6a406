// Line reader for Proxmox-style `key: value` files (VM configs now, the daemon config later).
// Owns: the line grammar only — comments, blank lines, CRLF, key charset, duplicate keys.
// Must not: know any key's meaning, read files, or interpret values (callers do that).
// Comments are whole lines only, as in Proxmox's parse_vm_config (`^#`): a ` # …` after a value
// is part of the value, so a kernel cmdline or a path may contain `#`. Values are trimmed.
import { SupervisorError } from '../errors.js';

export interface KeyValueLine {
  readonly key: string;
  readonly value: string;
  /** 1-based line number in the file, for messages. */
  readonly line: number;
}

/** Keys: a letter, then letters, digits, `_` or `-` (Proxmox keys plus upper case for typos). */
const KEY_PATTERN = /^[A-Za-z][A-Za-z0-9_-]*$/;

/**
 * Longest line accepted. A kernel cmdline is the longest legitimate value (x86 COMMAND_LINE_SIZE
 * is 2048 by default, configurable higher); anything past 64 KiB is not a hand-written config.
 */
export const MAX_LINE_CHARS = 64 * 1024;

/** How much of an offending line a message quotes: enough to recognise it, not a whole blob. */
const QUOTE_CHARS = 60;

// Control characters other than tab have no business in a config value: they would end up in
// argv, paths or logs. U+2028/U+2029 split lines in some editors and viewers.
const CONTROL_CHAR = /[\u0000-\u0008\u000a-\u001f\u007f\u2028\u2029]/;

/** True when `text` holds a character no config line may contain (see CONTROL_CHAR). */
export function hasControlChar(text: string): boolean {
  return CONTROL_CHAR.test(text);
}

/**
 * For a refused value that looks like it carries a trailing comment (`1 # on boot`): a hint that
 * comments are whole lines only. Empty otherwise.
 */
export function trailingCommentHint(value: string): string {
  return /\s#/.test(value) ? " ('#' starts a comment only at the beginning of a line)" : '';
}

/** `'text'`, shortened to QUOTE_CHARS with an ellipsis, for messages. */
export function quoteForMessage(text: string): string {
  return text.length > QUOTE_CHARS ? `'${text.slice(0, QUOTE_CHARS)}…'` : `'${text}'`;
}

function syntaxError(file: string, line: number, problem: string): SupervisorError {
  return new SupervisorError('SUP_ERR_CONFIG_SYNTAX', `${file}:${line}: ${problem}`, { details: { file, line } });
}

/**
 * Split a config file's text into `{key, value, line}` entries, in file order.
 * Blank lines and lines whose first non-blank character is `#` are skipped; CRLF and a leading
 * UTF-8 BOM are tolerated. Duplicate keys are returned as they are (see `indexKeyValueLines`).
 * @throws SUP_ERR_CONFIG_SYNTAX for a line without `:`, a bad key, an empty value, a control
 *   character or an over-long line; the message names `file:line`.
 */
export function readKeyValueLines(text: string, file: string): KeyValueLine[] {
  const body = text.startsWith('\ufeff') ? text.slice(1) : text;
  const entries: KeyValueLine[] = [];
  const lines = body.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const lineNo = index + 1;
    const raw = lines[index] ?? '';
    const withoutCr = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (withoutCr.length > MAX_LINE_CHARS) {
      throw syntaxError(file, lineNo, `line is longer than ${MAX_LINE_CHARS} characters`);
    }
    const trimmed = withoutCr.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const control = CONTROL_CHAR.exec(trimmed);
    if (control !== null) {
      const code = control[0].codePointAt(0) ?? 0;
      throw syntaxError(file, lineNo, `line contains control character U+${code.toString(16).toUpperCase().padStart(4, '0')}; remove it`);
    }
    const colon = trimmed.indexOf(':');
    if (colon < 0) {
      throw syntaxError(file, lineNo, `line ${quoteForMessage(trimmed)} is not "key: value" (comment lines start with '#')`);
    }
    const key = trimmed.slice(0, colon).trim();
    const value = trimmed.slice(colon + 1).trim();
    if (!KEY_PATTERN.test(key)) {
      throw syntaxError(
        file,
        lineNo,
        `${quoteForMessage(key)} is not a valid key; a key is a letter followed by letters, digits, '-' or '_'`,
      );
    }
    if (value === '') {
      throw syntaxError(file, lineNo, `${key}: no value after ':'; remove the line to use the default`);
    }
    entries.push({ key, value, line: lineNo });
  }
  return entries;
}

/**
 * Index entries by key, refusing a key given twice.
 * @throws SUP_ERR_CONFIG_DUPLICATE_KEY naming both lines.
 */
export function indexKeyValueLines(entries: readonly KeyValueLine[], file: string): Map<string, KeyValueLine> {
  const byKey = new Map<string, KeyValueLine>();
  for (const entry of entries) {
    const first = byKey.get(entry.key);
    if (first !== undefined) {
      throw new SupervisorError(
        'SUP_ERR_CONFIG_DUPLICATE_KEY',
        `${file}:${entry.line}: duplicate key '${entry.key}' (first set at line ${first.line}); keep one of them`,
        { details: { file, line: entry.line, key: entry.key, firstLine: first.line } },
      );
    }
    byKey.set(entry.key, entry);
  }
  return byKey;
}
