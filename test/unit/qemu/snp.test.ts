// The sev-snp-guest object: property names and encodings as QEMU >= 9.1 takes them (snp-facts §1.1),
// only non-default properties, and the refusals of values QEMU's setters would reject.
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { formatJsonOption } from '../../../src/qemu/escape.js';
import { SNP_MACHINE_PROPERTIES, snpGuestObject, type SnpLaunchParams } from '../../../src/qemu/snp.js';
import { PLAIN_SNP_PARAMS } from '../../support/snp-argv-scenarios.js';

const base: SnpLaunchParams = PLAIN_SNP_PARAMS;
const b64 = (n: number, fill = 1): string => Buffer.alloc(n, fill).toString('base64');

describe('snpGuestObject', () => {
  it("is libvirt's minimal object for a plain SNP guest", () => {
    expect(formatJsonOption(snpGuestObject(base))).toBe(
      '{"qom-type":"sev-snp-guest","id":"sev0","cbitpos":51,"reduced-phys-bits":1,"policy":196608}',
    );
  });

  it("carries every SNP option, and none of sev-guest's session properties", () => {
    const o = snpGuestObject({
      ...base,
      policy: 0x1b0000n,
      kernelHashes: true,
      idBlock: b64(96),
      idAuth: b64(4096, 2),
      authorKey: true,
      hostData: b64(32, 3),
      guestVisibleWorkarounds: b64(16, 4),
      vcekDisabled: true,
    });
    expect(o).toEqual({
      'qom-type': 'sev-snp-guest',
      id: 'sev0',
      cbitpos: 51,
      'reduced-phys-bits': 1,
      policy: 0x1b0000,
      'kernel-hashes': true,
      'guest-visible-workarounds': b64(16, 4),
      'id-block': b64(96),
      'id-auth': b64(4096, 2),
      'host-data': b64(32, 3),
      'author-key-enabled': true,
      'vcek-disabled': true,
    });
    for (const name of ['dh-cert-file', 'session-file', 'handle', 'legacy-vm-type']) expect(o).not.toHaveProperty(name);
    expect(SNP_MACHINE_PROPERTIES).toEqual(['confidential-guest-support=sev0', 'smm=off']);
  });

  it.each([
    ['a 95-byte ID block', { idBlock: b64(95), idAuth: b64(4096) }],
    ['a 4097-byte ID auth', { idBlock: b64(96), idAuth: b64(4097) }],
    ['31 bytes of host data', { hostData: b64(31) }],
    ['15 bytes of workarounds', { guestVisibleWorkarounds: b64(15) }],
    ['an ID block without its auth', { idBlock: b64(96) }],
    ['a migration-agent policy', { policy: 0x70000n }],
    ['a policy without bit 17', { policy: 0x10000n }],
  ])('refuses %s', (_name, change) => {
    let caught: unknown;
    try {
      snpGuestObject({ ...base, ...change });
    } catch (error) {
      caught = error;
    }
    expect(hasCode(caught, 'SUP_ERR_INTERNAL')).toBe(true);
  });
});
