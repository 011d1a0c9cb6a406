// The simulated SEV-SNP platform's identity as the host sees it: a Milan chip (the simulated chip
// id of platform-blobs.ts) at a fixed REPORTED_TCB. The simulator has no firmware to update, so its
// TCB never changes by itself; a test simulates a firmware update with the daemon's `snp-platform`
// facts file, which takes precedence on every platform.
// Owns: those constants. Must not: be used unless the simulated platform was asked for by name.
import type { SnpPlatformIdentity } from '../../host/snp-platform.js';
import { encodeTcb } from '../../sev/snp-report.js';
import { simulatedChipId } from './platform-blobs.js';

/** Milan SPLs of a 2025 firmware (bootloader 4, TEE 0, SNP 23, microcode 213): plausible, not real. */
export const SIM_SNP_TCB = encodeTcb({ bootloader: 4, tee: 0, snp: 23, microcode: 213 }, 'milan-genoa');

export function simulatedSnpIdentity(): SnpPlatformIdentity {
  return { product: 'Milan', chipId: simulatedChipId(), reportedTcb: SIM_SNP_TCB };
}
