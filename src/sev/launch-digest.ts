// The SEV launch digest (GCTX.LD): sha256 over everything LAUNCH_UPDATE_DATA/VMSA measured, in
// order: the whole firmware image (pflash unit 0 or -bios, as QEMU encrypts it), the padded
// kernel-hashes table when kernel-hashes applies, then one VMSA page per vCPU for SEV-ES.
// Owns: that order. Must not: judge whether QEMU would accept the inputs (preflight checks the
// firmware's hashes area; libvirt's validator does not either).
import { createHash, type Hash } from 'node:crypto';
import { SupervisorError } from '../errors.js';
import { readFileChunks } from './hash-file.js';
import { hashKernelInputs, type HashedFile } from './kernel-hashes.js';
import { PADDED_HASH_TABLE_BYTES } from './ovmf-table.js';
import { buildVmsas, VMSA_BYTES, type SevEsParams } from './vmsa.js';

export interface LaunchDigestParts {
  /**
   * The firmware image, or a sha256 that has taken in exactly its bytes and is not finished
   * (firmware-file.ts's inspectLaunchFirmware): it is copied, never changed.
   */
  readonly firmware: Buffer | Uint8Array | Hash;
  readonly kernelHashesTable?: Buffer;
  readonly vmsas?: readonly Buffer[];
}

/**
 * sha256(firmware ‖ table ‖ VMSA…) from bytes in memory.
 * @throws SUP_ERR_INTERNAL when the table is not 176 bytes or a VMSA not 4096 (caller bugs).
 */
export function launchDigest(parts: LaunchDigestParts): Buffer {
  const { firmware } = parts;
  const hash = firmware instanceof Uint8Array ? createHash('sha256').update(firmware) : firmware.copy();
  appendMeasuredTail(hash, parts.kernelHashesTable, parts.vmsas);
  return hash.digest();
}

export interface LaunchDigestFromFiles {
  readonly digest: Buffer;
  readonly firmware: HashedFile;
  readonly kernel: HashedFile | null;
  readonly initrd: HashedFile | null;
  /** The measured kernel-hashes table, or null when none is measured. */
  readonly table: Buffer | null;
}

/**
 * The launch digest from files, each streamed once and in parallel. The table is measured only
 * when `kernelHashes` is on and a kernel is given (QEMU adds it from x86_load_linux only).
 * @throws SUP_ERR_FIRMWARE_READ, SUP_ERR_KERNEL_READ for unreadable files;
 * SUP_ERR_VERIFY_UNSUPPORTED for initrd/cmdline without kernel or bad SEV-ES parameters;
 * SUP_ERR_CONFIG_BAD_VALUE for a cmdline with NUL.
 */
export async function computeLaunchDigestFromFiles(o: {
  firmware: string;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  kernelHashes: boolean;
  sevEs?: SevEsParams;
}): Promise<LaunchDigestFromFiles> {
  if (o.kernel === undefined && (o.initrd !== undefined || o.cmdline !== undefined)) {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', 'initrd and cmdline require a kernel');
  }
  const vmsas = o.sevEs === undefined ? undefined : buildVmsas(o.sevEs);
  const digestHash = createHash('sha256');
  const firmwareHash = createHash('sha256');
  const [, kernelInputs] = await Promise.all([
    readFileChunks(
      o.firmware,
      (chunk) => {
        digestHash.update(chunk);
        firmwareHash.update(chunk);
      },
      { code: 'SUP_ERR_FIRMWARE_READ', what: 'firmware image' },
    ),
    o.kernel === undefined
      ? Promise.resolve(null)
      : hashKernelInputs({
          kernel: o.kernel,
          ...(o.initrd === undefined ? {} : { initrd: o.initrd }),
          ...(o.cmdline === undefined ? {} : { cmdline: o.cmdline }),
        }),
  ]);
  const table = o.kernelHashes && kernelInputs !== null ? kernelInputs.table : null;
  appendMeasuredTail(digestHash, table ?? undefined, vmsas);
  return {
    digest: digestHash.digest(),
    firmware: { path: o.firmware, sha256: firmwareHash.digest('hex') },
    kernel: kernelInputs?.kernel ?? null,
    initrd: kernelInputs?.initrd ?? null,
    table,
  };
}

function appendMeasuredTail(hash: ReturnType<typeof createHash>, table: Buffer | undefined, vmsas: readonly Buffer[] | undefined): void {
  if (table !== undefined) {
    if (table.length !== PADDED_HASH_TABLE_BYTES) {
      throw new SupervisorError('SUP_ERR_INTERNAL', `kernel-hashes table must be ${PADDED_HASH_TABLE_BYTES} bytes, got ${table.length}`);
    }
    hash.update(table);
  }
  for (const vmsa of vmsas ?? []) {
    if (vmsa.length !== VMSA_BYTES) throw new SupervisorError('SUP_ERR_INTERNAL', `VMSA must be ${VMSA_BYTES} bytes, got ${vmsa.length}`);
    hash.update(vmsa);
  }
}
