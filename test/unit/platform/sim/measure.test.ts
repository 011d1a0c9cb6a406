import { describe, expect, it } from 'vitest';
import { cpuSignature } from '../../../../src/platform/sim/measure.js';

describe('cpuSignature', () => {
  it("gives QEMU 7.2's family/model/stepping for the EPYC models, versions and host", () => {
    expect(cpuSignature('EPYC')).toEqual({ family: 23, model: 1, stepping: 2 });
    expect(cpuSignature('EPYC-Rome-v2,+x')).toEqual({ family: 23, model: 49, stepping: 0 });
    expect(cpuSignature('host')).toEqual({ family: 25, model: 1, stepping: 1 });
    expect(cpuSignature(null)).toEqual({ family: 15, model: 107, stepping: 1 });
    expect(cpuSignature('Skylake-Server')).toBeNull();
  });
});
