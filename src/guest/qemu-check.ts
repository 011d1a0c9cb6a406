// The QEMU rule in front of a guest's preflight: on the hardware platform an SEV-SNP guest needs a
// QEMU with `sev-snp-guest` (>= 9.1). The one place that says so for `sevsup run`, the daemon
// (guest/supervised.ts) and `sevsup showcmd`, so all three refuse an older QEMU alike, before any
// file is read or anything spawns (the simulated platform answers as QEMU 10 over whatever QEMU
// runs beneath it). Owns: that rule's place. Must not: read the VM's files or spawn (the preflight
// it wraps and host/qemu-version.ts do).
import type { VmSpec } from '../config/vm-spec.js';
import { requireQemuForSnp } from '../host/qemu-version.js';
import type { LifecycleDeps } from '../vm/lifecycle-options.js';
import type { RecordPlatform } from '../vm/record.js';

/**
 * The lifecycle's preflight with the QEMU rule in front: on the hardware platform an SEV-SNP guest
 * is refused (SUP_ERR_SEV_SNP_QEMU, the version found and what to install) before its files are
 * read or anything spawns when `binary` is older than QEMU 9.1.
 */
export function preflightWithQemuCheck(
  platform: RecordPlatform,
  binary: string,
  preflight: LifecycleDeps['preflight'],
): LifecycleDeps['preflight'] {
  if (platform !== 'hardware') return preflight;
  return async (spec: VmSpec) => {
    if (spec.sev?.type === 'snp') await requireQemuForSnp(binary);
    return preflight(spec);
  };
}
