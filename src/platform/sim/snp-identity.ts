// The simulated SEV-SNP platform's identity as the host sees it: the chip id, product and TCB of
// the simulated chain in the sim's state directory (snp-platform-keys.ts), read — never made — at
// each refresh, so the daemon keeps the certificates of the very chip that signs the sim's reports.
// The simulator has no firmware to update: a TCB change is simulated with the daemon's
// `snp-platform` facts file, which takes precedence on every platform.
// Owns: that reading. Must not: create the chain (the sim does, at its first SNP launch or with
// --sim-init-snp-platform), or be used unless the simulated platform was asked for by name.
import type { PlatformTcbSource } from '../../host/snp-platform.js';
import { encodeTcb, tcbLayoutOf } from '../../sev/snp-report.js';
import { describeIoError, errnoOf } from '../../util/io-error.js';
import { loadSnpPlatform, simStateDir } from './snp-platform-keys.js';

export function simulatedSnpSource(stateDir: string = simStateDir(null)): PlatformTcbSource {
  const name = `simulated:${stateDir}`;
  return {
    name,
    async read() {
      try {
        const p = await loadSnpPlatform(stateDir);
        return {
          known: true,
          source: name,
          identity: { product: p.product, chipId: p.chipId, reportedTcb: encodeTcb(p.tcb, tcbLayoutOf(p.product)) },
        };
      } catch (error: unknown) {
        const reason =
          errnoOf(error) === 'ENOENT'
            ? `the simulated platform has no SNP chain yet in ${stateDir}: it is made at the first SNP launch, or by \`sevsup-sim-qemu --sim-init-snp-platform\``
            : `the simulated platform's SNP identity in ${stateDir} cannot be read: ${error instanceof Error && errnoOf(error) === undefined ? error.message : describeIoError(error)}`;
        return { known: false, source: name, reason };
      }
    },
  };
}
