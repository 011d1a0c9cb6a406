// SEV policy from config to bits: all 8 std/es × nodbg × noks combinations in both spellings
// give the seed's policies 0x8…0xf, and decodePolicy/describePolicy read them back.
import { describe, expect, it } from 'vitest';
import { parseVmConfig } from '../../../src/config/vm-config.js';
import { decodePolicy, describePolicy, encodePolicy, formatPolicy, POLICY_BITS } from '../../../src/sev/policy.js';

type Row = [type: 'std' | 'es', nodbg: boolean, noks: boolean, policy: number, flags: string[], description: string];

// Expected values written out by hand from the seed: bit0 nodbg, bit1 noks, bit2 es, bit3 always.
const ROWS: Row[] = [
  ['std', false, false, 0x8, ['NOSEND'], '0x8 (SEV, NOSEND)'],
  ['std', true, false, 0x9, ['NODBG', 'NOSEND'], '0x9 (SEV, NODBG, NOSEND)'],
  ['std', false, true, 0xa, ['NOKS', 'NOSEND'], '0xa (SEV, NOKS, NOSEND)'],
  ['std', true, true, 0xb, ['NODBG', 'NOKS', 'NOSEND'], '0xb (SEV, NODBG, NOKS, NOSEND)'],
  ['es', false, false, 0xc, ['ES', 'NOSEND'], '0xc (SEV-ES, NOSEND)'],
  ['es', true, false, 0xd, ['NODBG', 'ES', 'NOSEND'], '0xd (SEV-ES, NODBG, NOSEND)'],
  ['es', false, true, 0xe, ['NOKS', 'ES', 'NOSEND'], '0xe (SEV-ES, NOKS, NOSEND)'],
  ['es', true, true, 0xf, ['NODBG', 'NOKS', 'ES', 'NOSEND'], '0xf (SEV-ES, NODBG, NOKS, NOSEND)'],
];

/** The SEV line in the seed's spelling and in shipped Proxmox's, with varied boolean words. */
function lines(type: string, nodbg: boolean, noks: boolean): [string, string][] {
  return [
    ['seed, type=', `amd_sev: type=${type},nodbg=${nodbg ? 1 : 0},noks=${noks ? 1 : 0}`],
    ['seed, default key, only true flags', `amd_sev: ${[type, ...(nodbg ? ['nodbg=1'] : []), ...(noks ? ['noks=1'] : [])].join(',')}`],
    ['proxmox', `amd-sev: type=${type},no-debug=${nodbg ? 'yes' : 'no'},no-key-sharing=${noks ? 'on' : 'off'}`],
    ['mixed spellings', `amd-sev: no-key-sharing=${noks ? 'true' : 'false'},${type},nodbg=${nodbg ? 'TRUE' : 'FALSE'}`],
  ];
}

describe('SEV policy from config', () => {
  for (const [type, nodbg, noks, policy, flags, description] of ROWS) {
    for (const [spelling, line] of lines(type, nodbg, noks)) {
      it(`${line} (${spelling}) → ${formatPolicy(policy)}`, () => {
        const spec = parseVmConfig(`${line}\n`, '/vms/p.conf');
        expect(spec.sev).toMatchObject({ type, nodbg, noks });
        const encoded = encodePolicy(spec.sev ?? { type: 'std', nodbg: false, noks: false });
        expect(encoded).toBe(policy);
        expect(decodePolicy(encoded)).toEqual({ value: policy, hex: formatPolicy(policy), flags, sevType: type, apiMajor: 0, apiMinor: 0 });
        expect(describePolicy(encoded)).toBe(description);
      });
    }
  }
});

describe('decodePolicy', () => {
  it.each([
    [0, '0x0', [], 'std', 0, 0],
    [0x3f, '0x3f', ['NODBG', 'NOKS', 'ES', 'NOSEND', 'DOMAIN', 'SEV'], 'es', 0, 0],
    [0x05170008, '0x5170008', ['NOSEND'], 'std', 0x17, 0x05],
    [0xffffffff, '0xffffffff', ['NODBG', 'NOKS', 'ES', 'NOSEND', 'DOMAIN', 'SEV'], 'es', 0xff, 0xff],
  ])('%i', (value, hex, flags, sevType, apiMajor, apiMinor) => {
    expect(decodePolicy(value)).toEqual({ value, hex, flags, sevType, apiMajor, apiMinor });
  });

  it.each([-1, 0x100000000, 1.5, Number.NaN])('refuses %d', (value) => {
    expect(() => decodePolicy(value)).toThrow(new RangeError(`policy must be a 32-bit unsigned integer, got ${value}`));
  });

  it('names every bit once', () => {
    expect(Object.values(POLICY_BITS).reduce((a, b) => a | b, 0)).toBe(0x3f);
  });
});
