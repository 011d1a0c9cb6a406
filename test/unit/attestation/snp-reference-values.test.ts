// The SNP reference-values JSON: built, serialised, parsed back strictly, turned into the
// verifier's expectations and into the reference values Trustee's default SNP policy reads.
import { describe, expect, it } from 'vitest';
import {
  buildSnpReferenceValues,
  parseSnpReferenceValues,
  referenceExpectations,
  toCocoReferenceValues,
} from '../../../src/attestation/snp-reference-values.js';
import { hasCode } from '../../../src/errors.js';
import { errorOf } from '../../support/sev-helpers.js';

const rv = buildSnpReferenceValues({
  measurement: Buffer.alloc(48, 0x4d),
  policy: 0x30000n,
  hostData: Buffer.alloc(32, 0x48),
  minTcb: { bootloader: 250, tee: 0, snp: 8, microcode: 115 },
  vmpl: 0,
  inputs: { firmware: { sha256: 'ab'.repeat(32) }, vcpus: 2 },
});

describe('sevsup.snp-reference-values/v1', () => {
  it("round-trips through JSON and becomes the verifier's expectations", () => {
    const back = parseSnpReferenceValues(JSON.parse(JSON.stringify(rv)), 'rv.json');
    expect(back).toEqual(rv);
    const e = referenceExpectations(back);
    expect(e.measurement).toEqual(Buffer.alloc(48, 0x4d));
    expect(e.hostData).toEqual(Buffer.alloc(32, 0x48));
    expect(e.policy).toEqual({ exact: 0x30000n, allowDebug: false, allowMigrationAgent: false });
    expect(e.minTcb).toEqual({ bootloader: 250, tee: 0, snp: 8, microcode: 115 });
    expect(e.idKeyDigest).toBeUndefined();
  });

  it('refuses unknown keys, bad hex and a wrong schema, naming the file and key', () => {
    for (const [bad, key] of [
      [{ ...rv, measurment: 'x' }, 'measurment'],
      [{ ...rv, measurement: 'AB'.repeat(48) }, 'measurement'],
      [{ ...rv, schema: 'v0' }, 'schema'],
      [{ ...rv, minTcb: { bl: 1 } }, 'minTcb.bl'],
      [{ ...rv, vmpl: 4 }, 'vmpl'],
    ] as const) {
      const e = errorOf(() => parseSnpReferenceValues(bad, 'rv.json'));
      expect(hasCode(e, 'SUP_ERR_VERIFY_CONFIG')).toBe(true);
      expect(String(e)).toContain('rv.json');
      expect(String(e)).toContain(key);
    }
  });

  it("maps onto the reference values of Trustee's default SNP policy", () => {
    const coco = toCocoReferenceValues(rv);
    expect(coco['snp_launch_measurement']).toEqual(['4d'.repeat(48), Buffer.alloc(48, 0x4d).toString('base64')]);
    expect(coco['snp_bootloader']).toEqual([250, 251, 252, 253, 254, 255]);
    expect(coco['snp_smt_allowed']).toEqual([true]);
    expect(coco['snp_single_socket']).toEqual([false]);
    expect(coco['snp_guest_abi_major']).toEqual([0]);
  });
});
