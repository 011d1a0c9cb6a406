// Tests for Proxmox property strings: grammar, aliases, default key, booleans as pve-common
// accepts them, exact error messages, formatting, and parse∘format round trips (fast-check).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatPropertyString, parsePropertyString, type PropertySchema, type PropertyValues } from '../../../src/config/propstring.js';
import { NET_SCHEMA, SEV_SCHEMA } from '../../../src/config/vm-keys.js';
import { isSupervisorError } from '../../../src/errors.js';
import { catchSupervisorError } from '../../support/catch-error.js';

const WHERE = { file: '/vms/a.conf', line: 7, key: 'amd_sev' } as const;
const LOC = '/vms/a.conf:7: amd_sev: ';
const SEV_ALLOWED =
  'type (default), nodbg (or no-debug), noks (or no-key-sharing), kernel-hashes, cbitpos, reduced-phys-bits, allow-smt, single-socket, cxl-allow, aes-256-xts, rapl-dis, ciphertext-hiding, page-swap-disable, abi, host-data, host-data-file, id-block, id-auth, author-key, vcek, guest-visible-workarounds';
const BOOL_ALLOWED = '1, 0, yes, no, on, off, true, false';

const sev = (text: string): PropertyValues<typeof SEV_SCHEMA> => parsePropertyString(text, SEV_SCHEMA, WHERE);

describe('parsePropertyString (SEV schema)', () => {
  it.each([
    ['type=std', { type: 'std' }],
    ['std', { type: 'std' }],
    ['es', { type: 'es' }],
    ['type=std,nodbg=1,noks=1', { type: 'std', nodbg: true, noks: true }],
    ['es,nodbg=1,kernel-hashes=1', { type: 'es', nodbg: true, 'kernel-hashes': true }],
    ['type=es,no-debug=1,no-key-sharing=1', { type: 'es', nodbg: true, noks: true }],
    ['nodbg=0,es', { type: 'es', nodbg: false }],
    ['type=std,cbitpos=47,reduced-phys-bits=1', { type: 'std', cbitpos: 47, 'reduced-phys-bits': 1 }],
    ['type=std,cbitpos=51,reduced-phys-bits=6', { type: 'std', cbitpos: 51, 'reduced-phys-bits': 6 }],
    [' type = es , nodbg = yes ', { type: 'es', nodbg: true }],
    ['type=es,,nodbg=1,', { type: 'es', nodbg: true }],
    ['cbitpos=047,std', { type: 'std', cbitpos: 47 }],
  ])('%s', (text, expected) => {
    expect(sev(text)).toEqual(expected);
  });

  // pve-common parse_boolean: m/^(1|on|yes|true)$/i and m/^(0|off|no|false)$/i.
  it.each([
    ['1', true],
    ['yes', true],
    ['on', true],
    ['true', true],
    ['YES', true],
    ['On', true],
    ['TRUE', true],
    ['0', false],
    ['no', false],
    ['off', false],
    ['false', false],
    ['NO', false],
    ['Off', false],
    ['False', false],
  ])('boolean %s → %s', (word, expected) => {
    expect(sev(`std,nodbg=${word}`).nodbg).toBe(expected);
    expect(sev(`std,no-key-sharing=${word}`).noks).toBe(expected);
  });

  it.each([
    // syntax
    ['type=', 'SUP_ERR_PROPERTY_SYNTAX', "'type=' has no value after '='; write type=VALUE or leave the property out", 'type'],
    ['std,nodbg= ', 'SUP_ERR_PROPERTY_SYNTAX', "'nodbg=' has no value after '='; write nodbg=VALUE or leave the property out", 'nodbg'],
    ['=1', 'SUP_ERR_PROPERTY_SYNTAX', "'=1' has no property name before '='; write NAME=VALUE", undefined],
    // unknown, with suggestions
    ['std,foo=1', 'SUP_ERR_PROPERTY_UNKNOWN', `unknown property 'foo'; allowed: ${SEV_ALLOWED}`, 'foo'],
    [
      'std,reduced-phys-bios=1',
      'SUP_ERR_PROPERTY_UNKNOWN',
      `unknown property 'reduced-phys-bios' (did you mean 'reduced-phys-bits'?); allowed: ${SEV_ALLOWED}`,
      'reduced-phys-bios',
    ],
    [
      'std,nodebug=1',
      'SUP_ERR_PROPERTY_UNKNOWN',
      `unknown property 'nodebug' (did you mean 'no-debug'?); allowed: ${SEV_ALLOWED}`,
      'nodebug',
    ],
    [
      'std,kernel_hashes=1',
      'SUP_ERR_PROPERTY_UNKNOWN',
      `unknown property 'kernel_hashes' (did you mean 'kernel-hashes'?); allowed: ${SEV_ALLOWED}`,
      'kernel_hashes',
    ],
    ['std,Type=es', 'SUP_ERR_PROPERTY_UNKNOWN', `unknown property 'Type' (did you mean 'type'?); allowed: ${SEV_ALLOWED}`, 'Type'],
    ['std,__proto__=1', 'SUP_ERR_PROPERTY_UNKNOWN', `unknown property '__proto__'; allowed: ${SEV_ALLOWED}`, '__proto__'],
    // duplicates, including once under each alias and the default key twice
    [
      'std,nodbg=1,nodbg=1',
      'SUP_ERR_PROPERTY_DUPLICATE',
      "property 'nodbg' is given twice ('nodbg=1' and 'nodbg=1'); give it once",
      'nodbg',
    ],
    [
      'std,nodbg=1,no-debug=0',
      'SUP_ERR_PROPERTY_DUPLICATE',
      "property 'nodbg' is given twice ('nodbg=1' and 'no-debug=0'); give it once",
      'nodbg',
    ],
    [
      'std,no-key-sharing=1,noks=1',
      'SUP_ERR_PROPERTY_DUPLICATE',
      "property 'noks' is given twice ('no-key-sharing=1' and 'noks=1'); give it once",
      'noks',
    ],
    ['es,type=std', 'SUP_ERR_PROPERTY_DUPLICATE', "property 'type' is given twice ('es' and 'type=std'); give it once", 'type'],
    ['std,es', 'SUP_ERR_PROPERTY_DUPLICATE', "property 'type' is given twice ('std' and 'es'); give it once", 'type'],
    // bad values
    ['type=sev', 'SUP_ERR_PROPERTY_BAD_VALUE', "property 'type' has invalid value 'sev'; allowed: std, es, snp", 'type'],
    ['STD', 'SUP_ERR_PROPERTY_BAD_VALUE', "property 'type' has invalid value 'STD'; allowed: std, es, snp", 'type'],
    ['std,nodbg=2', 'SUP_ERR_PROPERTY_BAD_VALUE', `property 'nodbg' has invalid value '2'; allowed: ${BOOL_ALLOWED}`, 'nodbg'],
    ['std,no-debug=y', 'SUP_ERR_PROPERTY_BAD_VALUE', `property 'nodbg' has invalid value 'y'; allowed: ${BOOL_ALLOWED}`, 'nodbg'],
    [
      'std,kernel-hashes=1 # seed',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      `property 'kernel-hashes' has invalid value '1 # seed' ('#' starts a comment only at the beginning of a line); allowed: ${BOOL_ALLOWED}`,
      'kernel-hashes',
    ],
    [
      'std,cbitpos=64',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      "property 'cbitpos' has invalid value '64'; allowed: an integer from 32 to 63",
      'cbitpos',
    ],
    [
      'std,cbitpos=0x2f',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      "property 'cbitpos' has invalid value '0x2f'; allowed: an integer from 32 to 63",
      'cbitpos',
    ],
    [
      'std,cbitpos=47.0',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      "property 'cbitpos' has invalid value '47.0'; allowed: an integer from 32 to 63",
      'cbitpos',
    ],
    [
      'std,reduced-phys-bits=0',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      "property 'reduced-phys-bits' has invalid value '0'; allowed: an integer from 1 to 63",
      'reduced-phys-bits',
    ],
    [
      'std,reduced-phys-bits=-1',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      "property 'reduced-phys-bits' has invalid value '-1'; allowed: an integer from 1 to 63",
      'reduced-phys-bits',
    ],
    // recognised, refused
    [
      'snp,migrate-ma=1',
      'SUP_ERR_CONFIG_UNSUPPORTED',
      "property 'migrate-ma' is not supported: an SNP migration agent (policy bit 18) would let the guest be migrated; sevsup never migrates an encrypted guest, as it always sets SEV's NOSEND; remove it",
      'migrate-ma',
    ],
    [
      'snp,migration-agent=0',
      'SUP_ERR_CONFIG_UNSUPPORTED',
      "property 'migration-agent' is not supported: an SNP migration agent (policy bit 18) would let the guest be migrated; sevsup never migrates an encrypted guest, as it always sets SEV's NOSEND; remove it",
      'migrate-ma',
    ],
    // required
    ['nodbg=1', 'SUP_ERR_CONFIG_MISSING_KEY', "missing property 'type' (allowed: std, es, snp)", 'type'],
    [',', 'SUP_ERR_CONFIG_MISSING_KEY', "missing property 'type' (allowed: std, es, snp)", 'type'],
  ])('refuses %j', (text, code, problem, property) => {
    const details = property === undefined ? { ...WHERE } : { ...WHERE, property };
    expect(catchSupervisorError(() => sev(text))).toEqual({ code, message: `${LOC}${problem}`, details });
  });

  it('omits the location prefix and details without a context', () => {
    expect(catchSupervisorError(() => parsePropertyString('std,x=1', SEV_SCHEMA))).toEqual({
      code: 'SUP_ERR_PROPERTY_UNKNOWN',
      message: `unknown property 'x'; allowed: ${SEV_ALLOWED}`,
      details: { property: 'x' },
    });
  });
});

const LAUNCHLIKE = {
  a: { type: { kind: 'string', pattern: /^[^,]+$/, allowed: 'a path' }, required: true },
  n: { type: { kind: 'integer', min: -5, max: 5 } },
} as const satisfies PropertySchema;

describe('parsePropertyString (schema without a default key)', () => {
  it('keeps = inside a value (the name ends at the first =)', () => {
    expect(parsePropertyString('a=x=y', LAUNCHLIKE)).toEqual({ a: 'x=y' });
  });
  it('accepts negative integers in range', () => {
    expect(parsePropertyString('a=p,n=-5', LAUNCHLIKE)).toEqual({ a: 'p', n: -5 });
  });
  it('refuses a bare value naming the allowed properties', () => {
    expect(catchSupervisorError(() => parsePropertyString('p', LAUNCHLIKE))).toEqual({
      code: 'SUP_ERR_PROPERTY_SYNTAX',
      message: "'p' has no property name; write NAME=VALUE (allowed: a, n)",
      details: {},
    });
  });
  it('refuses a string with a control character', () => {
    expect(catchSupervisorError(() => parsePropertyString('a=x\u0001', LAUNCHLIKE)).message).toBe(
      "property 'a' has invalid value 'x\u0001'; allowed: a path",
    );
  });
});

describe('formatPropertyString', () => {
  it.each([
    [{ type: 'es', nodbg: true, noks: false }, {}, 'es,nodbg=1,noks=0'],
    [{ type: 'es', nodbg: true, noks: true }, { bareDefaultKey: false }, 'type=es,nodbg=1,noks=1'],
    [
      { type: 'es', nodbg: true, noks: true },
      { bareDefaultKey: false, spellings: ['no-debug', 'no-key-sharing'] },
      'type=es,no-debug=1,no-key-sharing=1',
    ],
    [{ 'kernel-hashes': true, cbitpos: 51, type: 'std' }, { bareDefaultKey: false }, 'type=std,kernel-hashes=1,cbitpos=51'],
  ] as const)('%j %j → %s', (values, options, expected) => {
    expect(formatPropertyString(values, SEV_SCHEMA, options)).toBe(expected);
  });

  it('writes a default-key value containing = with its name', () => {
    const schema = { file: { type: { kind: 'string', pattern: /./, allowed: 'x' }, defaultKey: true } } as const;
    expect(formatPropertyString({ file: '/a=b' }, schema)).toBe('file=/a=b');
    expect(formatPropertyString({ file: '/a' }, schema)).toBe('/a');
  });

  it.each([
    [
      'a value with a comma',
      { type: 'user', ifname: 'a,b' },
      'SUP_ERR_PROPERTY_BAD_VALUE',
      "cannot format property 'ifname': expected an interface name of 1 to 15 letters, digits, '.', '_' or '-', without commas or surrounding spaces",
    ],
    ['an unknown property', { type: 'user', bogus: 1 }, 'SUP_ERR_PROPERTY_UNKNOWN', "cannot format unknown property 'bogus'"],
    ['a missing required property', { mac: '52:54:00:00:00:01' }, 'SUP_ERR_CONFIG_MISSING_KEY', "cannot format: missing property 'type'"],
    [
      'a value outside the enum',
      { type: 'bridge' },
      'SUP_ERR_PROPERTY_BAD_VALUE',
      "cannot format property 'type': expected one of user, tap",
    ],
  ])('refuses %s', (_name, values, code, message) => {
    // Deliberately untyped values: format must check what it is given at run time.
    const loose: Record<string, unknown> = values;
    expect(catchSupervisorError(() => formatPropertyString(loose, NET_SCHEMA)).code).toBe(code);
    expect(catchSupervisorError(() => formatPropertyString(loose, NET_SCHEMA)).message).toBe(message);
  });

  it('refuses an unsupported property and a non-integer', () => {
    expect(catchSupervisorError(() => formatPropertyString({ type: 'snp', 'migrate-ma': true }, SEV_SCHEMA)).code).toBe(
      'SUP_ERR_CONFIG_UNSUPPORTED',
    );
    expect(catchSupervisorError(() => formatPropertyString({ type: 'std', cbitpos: 47.5 }, SEV_SCHEMA)).message).toBe(
      "cannot format property 'cbitpos': expected an integer from 32 to 63",
    );
  });
});

// --- property-based -------------------------------------------------------------------------

const sevValues = fc.record(
  {
    type: fc.constantFrom('std' as const, 'es' as const),
    nodbg: fc.boolean(),
    noks: fc.boolean(),
    'kernel-hashes': fc.boolean(),
    cbitpos: fc.integer({ min: 32, max: 63 }),
    'reduced-phys-bits': fc.integer({ min: 1, max: 63 }),
  },
  { requiredKeys: ['type'] },
);

const netValues = fc.record(
  {
    type: fc.constantFrom('user' as const, 'tap' as const),
    ifname: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$/),
    mac: fc.stringMatching(/^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/),
  },
  { requiredKeys: ['type'] },
);

const formatOptions = fc.record({
  bareDefaultKey: fc.boolean(),
  spellings: fc.subarray(['no-debug', 'no-key-sharing']),
});

/** Tokens that make up hostile property strings: real names, aliases, near misses and junk. */
const hostilePart = fc.oneof(
  fc.constantFrom(
    'type',
    'nodbg',
    'no-debug',
    'noks',
    'no-key-sharing',
    'kernel-hashes',
    'cbitpos',
    'reduced-phys-bits',
    'reduced-phys-bios',
    'allow-smt',
    'std',
    'es',
    'snp',
    '1',
    '0',
    'yes',
    'NO',
    '=',
    ',',
    ',,',
    ' ',
    '__proto__',
    'constructor',
    '\u0000',
    '\u2028',
    '"',
    "'",
    '#',
    '47',
    '-1',
    '99999999999999999999',
  ),
  fc.string({ maxLength: 8 }),
);
const hostileText = fc.array(hostilePart, { maxLength: 12 }).map((parts) => parts.join(''));

describe('property-based', () => {
  it('SEV property maps survive format → parse', () => {
    fc.assert(
      fc.property(sevValues, formatOptions, (values, options) => {
        const text = formatPropertyString(values, SEV_SCHEMA, options);
        expect(parsePropertyString(text, SEV_SCHEMA)).toEqual(values);
      }),
      { numRuns: 1500 },
    );
  });

  it('net property maps survive format → parse', () => {
    fc.assert(
      fc.property(netValues, fc.boolean(), (values, bare) => {
        const text = formatPropertyString(values, NET_SCHEMA, { bareDefaultKey: bare });
        expect(parsePropertyString(text, NET_SCHEMA)).toEqual(values);
      }),
      { numRuns: 1000 },
    );
  });

  it('any string either parses or throws a coded config/property error', () => {
    fc.assert(
      fc.property(hostileText, (text) => {
        try {
          const parsed = parsePropertyString(text, SEV_SCHEMA, WHERE);
          // Whatever parses must format back to something that parses to the same values.
          expect(parsePropertyString(formatPropertyString(parsed, SEV_SCHEMA), SEV_SCHEMA)).toEqual(parsed);
        } catch (error: unknown) {
          if (!isSupervisorError(error)) throw error;
          expect(error.code).toMatch(/^SUP_ERR_(CONFIG|PROPERTY)_/);
          expect(error.message.startsWith(LOC)).toBe(true);
          expect(error.details).toMatchObject(WHERE);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
