import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { CPU_MODELS, cpuModelSignature, decodeCpuSignature, requireCpuModel } from '../../../src/sev/cpu-models.js';
import { cpuSignature } from '../../../src/sev/vmsa.js';
import { errorOf } from '../../support/sev-helpers.js';

/**
 * sev-snp-measure's CPU_SIGS (vcpu_types.py) as raw CPUID 1 EAX values, written out by hand:
 * EPYC (Naples) 23/1/2, Rome 23/49/0, Milan 25/1/1, Genoa 25/17/0, Turin 26/0/0.
 */
const EXPECTED_SIGS: Readonly<Record<string, number>> = {
  EPYC: 0x800f12,
  'EPYC-v1': 0x800f12,
  'EPYC-v2': 0x800f12,
  'EPYC-IBPB': 0x800f12,
  'EPYC-v3': 0x800f12,
  'EPYC-v4': 0x800f12,
  'EPYC-Rome': 0x830f10,
  'EPYC-Rome-v1': 0x830f10,
  'EPYC-Rome-v2': 0x830f10,
  'EPYC-Rome-v3': 0x830f10,
  'EPYC-Milan': 0xa00f11,
  'EPYC-Milan-v1': 0xa00f11,
  'EPYC-Milan-v2': 0xa00f11,
  'EPYC-Genoa': 0xa10f10,
  'EPYC-Genoa-v1': 0xa10f10,
  'EPYC-Turin': 0xb00f00,
};

describe('CPU models', () => {
  it("know exactly sev-snp-measure's model names, each with its signature", () => {
    expect([...CPU_MODELS.keys()].sort()).toEqual(Object.keys(EXPECTED_SIGS).sort());
    for (const [name, sig] of Object.entries(EXPECTED_SIGS)) {
      const parts = cpuModelSignature(name);
      expect(parts, name).not.toBeNull();
      expect(cpuSignature(parts?.family ?? -1, parts?.model ?? -1, parts?.stepping ?? -1), name).toBe(sig);
    }
  });

  it('read the model name of a -cpu value with features, and know nothing of host, max or lower case', () => {
    expect(cpuModelSignature('EPYC-Milan,+x2apic,-svm')).toEqual({ family: 25, model: 1, stepping: 1 });
    for (const name of ['host', 'max', 'epyc-milan', 'EPYC-Milan-v9', '', 'qemu64']) expect(cpuModelSignature(name), name).toBeNull();
  });

  it('refuse an unknown --vcpu-type with the list and the right spelling', () => {
    const e = errorOf(() => requireCpuModel('epyc-rome'));
    expect(hasCode(e, 'SUP_ERR_USAGE')).toBe(true);
    expect(e instanceof Error ? e.message : '').toMatch(/did you mean EPYC-Rome\?.*known: EPYC, EPYC-v1/);
    expect(requireCpuModel('EPYC-Genoa')).toEqual({ family: 25, model: 17, stepping: 0 });
  });
});

describe('decodeCpuSignature', () => {
  it('inverts cpuSignature for every family, model and stepping', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0x10e }),
        fc.integer({ min: 0, max: 0xff }),
        fc.integer({ min: 0, max: 0xf }),
        (family, model, stepping) => {
          expect(decodeCpuSignature(cpuSignature(family, model, stepping))).toEqual({ family, model, stepping });
        },
      ),
    );
  });

  it('decodes the known models', () => {
    expect(decodeCpuSignature(0xa00f11)).toEqual({ family: 25, model: 1, stepping: 1 });
    expect(decodeCpuSignature(0xb00f00)).toEqual({ family: 26, model: 0, stepping: 0 });
  });

  it('refuses values no family/model/stepping encodes', () => {
    // extended family with a base family below 0xf; processor-type bits; reserved bits; not a u32
    for (const bad of [0x100f11 - 0xf00 + 0x600, 0xa03f11, 0x10a00f11, -1, 2 ** 32, 1.5]) {
      expect(
        hasCode(
          errorOf(() => decodeCpuSignature(bad)),
          'SUP_ERR_USAGE',
        ),
        bad.toString(16),
      ).toBe(true);
    }
  });
});
