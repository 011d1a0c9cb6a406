// Proxmox property strings (`type=es,nodbg=1`): parse against a schema, and format back.
// Owns: the grammar and typed values of one config value. Pure: no I/O.
// Must not: know any particular key (vm-config.ts supplies the schemas), or QEMU's `,,` escaping
// (qemu/escape.ts): as in pve-common's parse_property_string there is no escaping, so a value can
// never contain `,`; a value may contain `=` (the name ends at the first `=`).
// Differences from pve-common, on purpose: spaces around parts are ignored, and a property given
// twice — even once under each alias (`nodbg=1,no-debug=0`) — is an error, never "last wins".
import { SupervisorError, type ErrorCode } from '../errors.js';
import { quoteForMessage, trailingCommentHint } from './kv-file.js';
import { didYouMean } from './suggest.js';

export type PropertyType =
  | {
      readonly kind: 'enum';
      readonly values: readonly string[];
      /** Values recognised but refused (SUP_ERR_CONFIG_UNSUPPORTED), with what they mean. */
      readonly unsupported?: Readonly<Record<string, string>>;
    }
  | { readonly kind: 'boolean' }
  | { readonly kind: 'integer'; readonly min: number; readonly max: number }
  | {
      readonly kind: 'string';
      readonly pattern: RegExp;
      /** What the pattern allows, for messages ("a path", "64 hex digits"). */
      readonly allowed: string;
    };

export interface PropertyDef {
  readonly type: PropertyType;
  /** Other spellings of the same property (`no-debug` for `nodbg`). */
  readonly aliases?: readonly string[];
  /** A part without `=` is this property's value (`amd_sev: es` ≡ `type=es`). One per schema. */
  readonly defaultKey?: boolean;
  readonly required?: boolean;
  /** Recognised but refused: why (e.g. "it applies only to AMD SEV-SNP"). */
  readonly unsupported?: string;
}

/** Property name → definition, in the order `formatPropertyString` writes them. */
export type PropertySchema = Readonly<Record<string, PropertyDef>>;

export type PropertyValue<D extends PropertyDef> = D['type'] extends { readonly kind: 'boolean' }
  ? boolean
  : D['type'] extends { readonly kind: 'integer' }
    ? number
    : D['type'] extends { readonly kind: 'enum'; readonly values: readonly (infer V)[] }
      ? V
      : string;

/** Parsed values by canonical property name; absent when not given. */
export type PropertyValues<S extends PropertySchema> = { readonly [K in keyof S]?: PropertyValue<S[K]> };

/** Where a property string came from, for messages: `file:line: key: …`. */
export interface PropertyContext {
  readonly file: string;
  readonly line: number;
  readonly key: string;
}

export interface FormatOptions {
  /**
   * Print the default-key property bare (`user,mac=…`), as pve-common does. Values containing
   * `=` are always written `name=value`, since a bare one would read back as a name.
   * @default true
   */
  readonly bareDefaultKey?: boolean;
  /** Aliases to print instead of canonical names (e.g. `['no-debug', 'no-key-sharing']`). */
  readonly spellings?: readonly string[];
}

/** Spellings pve-common's parse_boolean accepts, case-insensitively (`m/^(1|on|yes|true)$/i`). */
const TRUE_WORDS = ['1', 'yes', 'on', 'true'] as const;
const FALSE_WORDS = ['0', 'no', 'off', 'false'] as const;
export const BOOLEAN_ALLOWED = '1, 0, yes, no, on, off, true, false';

/** Digits accepted in an integer: enough for any range here, short of float precision loss. */
const MAX_INTEGER_DIGITS = 15;
const INTEGER_PATTERN = new RegExp(`^-?[0-9]{1,${MAX_INTEGER_DIGITS}}$`);

// C0 controls and DEL never belong in a value: they would reach argv, paths and logs.
const CONTROL_CHAR = /[\u0000-\u001f\u007f]/;

function prefix(where: PropertyContext | undefined): string {
  return where === undefined ? '' : `${where.file}:${where.line}: ${where.key}: `;
}

function fail(code: ErrorCode, where: PropertyContext | undefined, problem: string, property?: string): SupervisorError {
  const details: Record<string, unknown> = where === undefined ? {} : { ...where };
  if (property !== undefined) details['property'] = property;
  return new SupervisorError(code, `${prefix(where)}${problem}`, { details });
}

/** `type (default), nodbg (or no-debug), …` — the supported names, for messages. */
export function describeProperties(schema: PropertySchema): string {
  return Object.entries(schema)
    .filter(([, def]) => def.unsupported === undefined)
    .map(([name, def]) => {
      const aliases = def.aliases?.length ? ` (or ${def.aliases.join(', ')})` : '';
      return `${name}${def.defaultKey ? ' (default)' : ''}${aliases}`;
    })
    .join(', ');
}

/** What values a property takes, for messages. */
export function describeAllowed(type: PropertyType): string {
  switch (type.kind) {
    case 'boolean':
      return BOOLEAN_ALLOWED;
    case 'enum':
      return type.values.join(', ');
    case 'integer':
      return `an integer from ${type.min} to ${type.max}`;
    case 'string':
      return type.allowed;
  }
}

/** pve-common's boolean words; undefined when `text` is none of them. */
export function parseBooleanWord(text: string): boolean | undefined {
  const lower = text.toLowerCase();
  if ((TRUE_WORDS as readonly string[]).includes(lower)) return true;
  if ((FALSE_WORDS as readonly string[]).includes(lower)) return false;
  return undefined;
}

/** Parse a whole decimal integer within [min, max]; undefined otherwise. */
export function parseIntegerInRange(text: string, min: number, max: number): number | undefined {
  if (!INTEGER_PATTERN.test(text)) return undefined;
  const value = Number(text);
  return value >= min && value <= max ? value : undefined;
}

function findDefaultKey(schema: PropertySchema): string | undefined {
  return Object.keys(schema).find((name) => schema[name]?.defaultKey === true);
}

function resolveName(schema: PropertySchema, spelled: string): string | undefined {
  if (Object.hasOwn(schema, spelled)) return spelled;
  return Object.keys(schema).find((name) => schema[name]?.aliases?.includes(spelled) === true);
}

function allSpellings(schema: PropertySchema): string[] {
  return Object.entries(schema)
    .filter(([, def]) => def.unsupported === undefined)
    .flatMap(([name, def]) => [name, ...(def.aliases ?? [])]);
}

function convertValue(name: string, def: PropertyDef, text: string, where: PropertyContext | undefined): string | number | boolean {
  const type = def.type;
  const bad = (): SupervisorError =>
    fail(
      'SUP_ERR_PROPERTY_BAD_VALUE',
      where,
      `property '${name}' has invalid value ${quoteForMessage(text)}${trailingCommentHint(text)}; allowed: ${describeAllowed(type)}`,
      name,
    );
  switch (type.kind) {
    case 'boolean': {
      const value = parseBooleanWord(text);
      if (value === undefined) throw bad();
      return value;
    }
    case 'integer': {
      const value = parseIntegerInRange(text, type.min, type.max);
      if (value === undefined) throw bad();
      return value;
    }
    case 'enum': {
      const meaning = type.unsupported !== undefined && Object.hasOwn(type.unsupported, text) ? type.unsupported[text] : undefined;
      if (meaning !== undefined) {
        throw fail(
          'SUP_ERR_CONFIG_UNSUPPORTED',
          where,
          `property '${name}': value '${text}' (${meaning}) is not supported yet; allowed: ${describeAllowed(type)}`,
          name,
        );
      }
      if (!type.values.includes(text)) throw bad();
      return text;
    }
    case 'string':
      if (CONTROL_CHAR.test(text) || !type.pattern.test(text)) throw bad();
      return text;
  }
}

/**
 * Parse `k=v,k2=v2` (and a bare default-key value) against `schema`.
 * Empty parts (`a=1,,b=2`, a trailing comma) are skipped, as pve-common does.
 * @throws SUP_ERR_PROPERTY_SYNTAX (`=v`, `k=`, a bare value without a default key),
 *   SUP_ERR_PROPERTY_UNKNOWN, SUP_ERR_PROPERTY_DUPLICATE, SUP_ERR_PROPERTY_BAD_VALUE,
 *   SUP_ERR_CONFIG_UNSUPPORTED (a recognised but refused property or value),
 *   SUP_ERR_CONFIG_MISSING_KEY (a required property absent). With `where`, every message starts
 *   `file:line: key: ` and `details` carries file, line, key and property.
 */
export function parsePropertyString<S extends PropertySchema>(text: string, schema: S, where?: PropertyContext): PropertyValues<S> {
  const values: Record<string, string | number | boolean> = {};
  const spelledAs = new Map<string, string>();
  const defaultKey = findDefaultKey(schema);

  for (const rawPart of text.split(',')) {
    const part = rawPart.trim();
    if (part === '') continue;
    const eq = part.indexOf('=');
    let spelled: string;
    let valueText: string;
    if (eq < 0) {
      if (defaultKey === undefined) {
        throw fail(
          'SUP_ERR_PROPERTY_SYNTAX',
          where,
          `${quoteForMessage(part)} has no property name; write NAME=VALUE (allowed: ${describeProperties(schema)})`,
        );
      }
      spelled = defaultKey;
      valueText = part;
    } else {
      spelled = part.slice(0, eq).trim();
      valueText = part.slice(eq + 1).trim();
      if (spelled === '') {
        throw fail('SUP_ERR_PROPERTY_SYNTAX', where, `${quoteForMessage(part)} has no property name before '='; write NAME=VALUE`);
      }
      if (valueText === '') {
        throw fail(
          'SUP_ERR_PROPERTY_SYNTAX',
          where,
          `${quoteForMessage(part)} has no value after '='; write ${spelled}=VALUE or leave the property out`,
          spelled,
        );
      }
    }

    const name = resolveName(schema, spelled);
    const def = name === undefined ? undefined : schema[name];
    if (name === undefined || def === undefined) {
      throw fail(
        'SUP_ERR_PROPERTY_UNKNOWN',
        where,
        `unknown property ${quoteForMessage(spelled)}${didYouMean(spelled, allSpellings(schema))}; allowed: ${describeProperties(schema)}`,
        spelled,
      );
    }
    if (def.unsupported !== undefined) {
      throw fail('SUP_ERR_CONFIG_UNSUPPORTED', where, `property '${spelled}' is not supported: ${def.unsupported}; remove it`, name);
    }
    const earlier = spelledAs.get(name);
    if (earlier !== undefined) {
      throw fail(
        'SUP_ERR_PROPERTY_DUPLICATE',
        where,
        `property '${name}' is given twice (${quoteForMessage(earlier)} and ${quoteForMessage(part)}); give it once`,
        name,
      );
    }
    spelledAs.set(name, part);
    values[name] = convertValue(name, def, valueText, where);
  }

  for (const [name, def] of Object.entries(schema)) {
    if (def.required === true && !Object.hasOwn(values, name)) {
      throw fail('SUP_ERR_CONFIG_MISSING_KEY', where, `missing property '${name}' (allowed: ${describeAllowed(def.type)})`, name);
    }
  }
  // The loop above checked every value against its definition, so the shape matches S.
  return values as PropertyValues<S>;
}

function formatValue(name: string, def: PropertyDef, value: unknown): string {
  const bad = (why: string): SupervisorError =>
    new SupervisorError('SUP_ERR_PROPERTY_BAD_VALUE', `cannot format property '${name}': ${why}`, {
      details: { property: name },
    });
  const type = def.type;
  switch (type.kind) {
    case 'boolean':
      if (typeof value !== 'boolean') throw bad('expected a boolean');
      return value ? '1' : '0';
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < type.min || value > type.max) {
        throw bad(`expected ${describeAllowed(type)}`);
      }
      return String(value);
    case 'enum':
      if (typeof value !== 'string' || !type.values.includes(value)) throw bad(`expected one of ${describeAllowed(type)}`);
      return value;
    case 'string':
      if (
        typeof value !== 'string' ||
        value === '' ||
        value !== value.trim() ||
        value.includes(',') ||
        CONTROL_CHAR.test(value) ||
        !type.pattern.test(value)
      ) {
        throw bad(`expected ${type.allowed}, without commas or surrounding spaces`);
      }
      return value;
  }
}

/**
 * Format values back into a property string that `parsePropertyString` reads as the same values:
 * canonical names (or the chosen `spellings`) in schema order, booleans as `1`/`0`.
 * @throws SUP_ERR_PROPERTY_UNKNOWN for a name not in the schema, SUP_ERR_PROPERTY_BAD_VALUE for a
 *   value the parser would not give back, SUP_ERR_CONFIG_UNSUPPORTED / SUP_ERR_CONFIG_MISSING_KEY
 *   as the parser would.
 */
export function formatPropertyString<S extends PropertySchema>(values: PropertyValues<S>, schema: S, options: FormatOptions = {}): string {
  for (const name of Object.keys(values)) {
    if (!Object.hasOwn(schema, name)) {
      throw new SupervisorError('SUP_ERR_PROPERTY_UNKNOWN', `cannot format unknown property '${name}'`, {
        details: { property: name },
      });
    }
  }
  const bare = options.bareDefaultKey ?? true;
  const parts: string[] = [];
  const entries: ReadonlyMap<string, unknown> = new Map(Object.entries(values));
  for (const [name, def] of Object.entries(schema)) {
    const value = entries.get(name);
    if (value === undefined) {
      if (def.required === true) {
        throw new SupervisorError('SUP_ERR_CONFIG_MISSING_KEY', `cannot format: missing property '${name}'`, {
          details: { property: name },
        });
      }
      continue;
    }
    if (def.unsupported !== undefined) {
      throw new SupervisorError('SUP_ERR_CONFIG_UNSUPPORTED', `cannot format property '${name}': ${def.unsupported}`, {
        details: { property: name },
      });
    }
    const text = formatValue(name, def, value);
    const spelled = def.aliases?.find((alias) => options.spellings?.includes(alias) === true) ?? name;
    if (def.defaultKey === true && bare && !text.includes('=')) {
      parts.unshift(text);
    } else {
      parts.push(`${spelled}=${text}`);
    }
  }
  return parts.join(',');
}
