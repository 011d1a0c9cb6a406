// Which firmware image a VM boots, and how it is given to QEMU (`-bios`; see FIRMWARE_OPTION).
// Owns: the default OVMF path and the choice of `-bios` over pflash. Must not: read the image
// (vm/preflight.ts inspects it) or decide whether it is good enough for SEV.
import type { VmSpec } from '../config/vm-spec.js';

/**
 * Debian's combined OVMF image, used when `bios: ovmf` has no `firmware` key. It declares an SEV
 * info block (so SEV and SEV-ES start), but its kernel-hashes and launch-secret areas are empty
 * (base 0, size 0): `kernel-hashes=1` needs an OVMF AmdSev build (OvmfPkg/AmdSev/AmdSevX64.dsc),
 * which Debian does not ship.
 */
export const DEFAULT_OVMF_PATH = '/usr/share/ovmf/OVMF.fd';

/**
 * `-bios`, not a read-only pflash unit 0. QEMU measures both for SEV (x86_firmware_configure →
 * LAUNCH_UPDATE_DATA over the whole image), but `-bios` has no NVRAM device at all, so nothing
 * unmeasured can be added by mistake (the VARS pflash is never measured: amd-memory-encryption.rst);
 * it needs no KVM read-only memslots, which SEV-ES under KVM_SEV_INIT2 and SEV-SNP lack (Proxmox
 * uses `-bios` for SNP); and QEMU 7.2 stores the path verbatim (machine "firmware" property), so a
 * path with commas needs no escaping.
 */
export const FIRMWARE_OPTION = '-bios';

/** The firmware image QEMU will load with `-bios`, or null for SeaBIOS (QEMU's built-in default). */
export function firmwarePath(spec: Pick<VmSpec, 'bios' | 'firmware'>): string | null {
  if (spec.bios !== 'ovmf') return null;
  return spec.firmware?.path ?? DEFAULT_OVMF_PATH;
}
