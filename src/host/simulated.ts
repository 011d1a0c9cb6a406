// The host capabilities the simulated SEV platform (platform/sim) pretends to have.
// Owns: one constant. Must not: be used unless the simulated platform was asked for by name;
// every source says `simulated` so no record or log line can pass it off as hardware.
import type { HostCaps } from './host-caps.js';

const SOURCE = 'simulated';

/**
 * SEV, SEV-ES and SEV-SNP supported (SNP as QEMU 10 on an SNP host: platform/sim/snp-*.ts);
 * cbitpos 47 and reduced-phys-bits 1 as on Milan.
 */
export const SIMULATED_HOST_CAPS: HostCaps = Object.freeze({
  sev: Object.freeze({ supported: true, reason: 'supported: simulated SEV platform', source: SOURCE }),
  sevEs: Object.freeze({ supported: true, reason: 'supported: simulated SEV platform', source: SOURCE }),
  sevSnp: Object.freeze({ supported: true, reason: 'supported: simulated SEV-SNP platform', source: SOURCE }),
  cbitpos: 47,
  cbitposSource: SOURCE,
  reducedPhysBits: 1,
  reducedPhysBitsSource: SOURCE,
});
