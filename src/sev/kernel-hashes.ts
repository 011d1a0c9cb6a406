// The SEV kernel-hashes table exactly as QEMU 7.2 builds it for `kernel-hashes=on` with -kernel
// (target/i386/sev.c sev_add_kernel_loader_hashes), and the hashing of its inputs.
// Owns: table layout, GUIDs, entry order, padding to 176 bytes, cmdline/initrd/kernel digests.
// Must not: decide whether kernel-hashes applies (the VM spec and firmware area do).
import { createHash } from 'node:crypto';
import { SupervisorError } from '../errors.js';
import { guidToBytesLe } from './guid.js';
import { sha256File } from './hash-file.js';
import { PADDED_HASH_TABLE_BYTES } from './ovmf-table.js';

export const SEV_HASH_TABLE_GUID = '9438d606-4f22-4cc9-b479-a793d411fd21';
export const SEV_CMDLINE_HASH_GUID = '97d02dd8-bd20-4c94-aa78-e7714d36ab2a';
export const SEV_INITRD_HASH_GUID = '44baf731-3a2f-4bd7-9af1-41e29169781d';
export const SEV_KERNEL_HASH_GUID = '4de79437-abd2-427f-b835-d5b172d2045b';

const SHA256_BYTES = 32;
/** GUID ‖ u16 len ‖ sha256. */
export const HASH_ENTRY_BYTES = 16 + 2 + SHA256_BYTES; // 50
/** GUID ‖ u16 len ‖ three entries: sizeof(SevHashTable). */
export const HASH_TABLE_BYTES = 16 + 2 + 3 * HASH_ENTRY_BYTES; // 168
export { PADDED_HASH_TABLE_BYTES };

export interface KernelDigests {
  readonly cmdline: Buffer;
  readonly initrd: Buffer;
  readonly kernel: Buffer;
}

/**
 * The 176-byte padded table QEMU writes into the firmware's hashes area and measures.
 * Entry order is cmdline, initrd, kernel; the 8 bytes of padding are zero.
 * @throws SUP_ERR_INTERNAL when a digest is not 32 bytes (a caller bug).
 */
export function buildKernelHashesTable(h: KernelDigests): Buffer {
  const table = Buffer.alloc(PADDED_HASH_TABLE_BYTES);
  guidToBytesLe(SEV_HASH_TABLE_GUID).copy(table, 0);
  table.writeUInt16LE(HASH_TABLE_BYTES, 16);
  const entries: readonly [string, Buffer][] = [
    [SEV_CMDLINE_HASH_GUID, h.cmdline],
    [SEV_INITRD_HASH_GUID, h.initrd],
    [SEV_KERNEL_HASH_GUID, h.kernel],
  ];
  let offset = 18;
  for (const [guid, digest] of entries) {
    if (digest.length !== SHA256_BYTES) {
      throw new SupervisorError('SUP_ERR_INTERNAL', `kernel-hashes entry ${guid} needs a 32-byte sha256, got ${digest.length}`);
    }
    guidToBytesLe(guid).copy(table, offset);
    table.writeUInt16LE(HASH_ENTRY_BYTES, offset + 16);
    digest.copy(table, offset + 18);
    offset += HASH_ENTRY_BYTES;
  }
  return table;
}

/**
 * sha256 of the kernel command line as QEMU measures it: the -append bytes (UTF-8) plus the
 * terminating NUL; no -append measures a lone NUL.
 * @throws SUP_ERR_CONFIG_BAD_VALUE when the cmdline contains NUL (QEMU's argv cannot carry one).
 */
export function cmdlineDigest(cmdline: string | undefined): Buffer {
  const text = cmdline ?? '';
  if (text.includes('\0')) {
    throw new SupervisorError('SUP_ERR_CONFIG_BAD_VALUE', 'kernel cmdline must not contain a NUL character');
  }
  return createHash('sha256').update(text, 'utf8').update(Buffer.of(0)).digest();
}

/** sha256 of empty input: what QEMU measures for the initrd when there is none. */
export const EMPTY_SHA256 = createHash('sha256').digest();

export interface HashedFile {
  readonly path: string;
  /** Lower-case hex. */
  readonly sha256: string;
}

export interface KernelInputs {
  readonly kernel: HashedFile;
  readonly initrd: HashedFile | null;
  readonly cmdline: string;
  readonly cmdlineSha256: string;
  /** The padded 176-byte table. */
  readonly table: Buffer;
}

/**
 * Hash kernel and initrd (streamed, in parallel) and the cmdline; build the table.
 * @throws SUP_ERR_KERNEL_READ for an unreadable kernel or initrd; SUP_ERR_CONFIG_BAD_VALUE for a
 * cmdline with NUL.
 */
export async function hashKernelInputs(i: { kernel: string; initrd?: string; cmdline?: string }): Promise<KernelInputs> {
  const cmdline = cmdlineDigest(i.cmdline);
  const [kernel, initrd] = await Promise.all([
    sha256File(i.kernel, { what: 'kernel image' }),
    i.initrd === undefined ? Promise.resolve(null) : sha256File(i.initrd, { what: 'initrd image' }),
  ]);
  return kernelInputs(
    { path: i.kernel, sha256: kernel.sha256 },
    i.initrd === undefined || initrd === null ? null : { path: i.initrd, sha256: initrd.sha256 },
    i.cmdline,
    cmdline,
  );
}

/**
 * The table and its inputs from kernel and initrd digests already taken (a launch hashes them once,
 * at spawn, and reuses them).
 * @throws SUP_ERR_CONFIG_BAD_VALUE for a cmdline with NUL.
 */
export function kernelInputs(
  kernel: HashedFile,
  initrd: HashedFile | null,
  cmdlineText: string | undefined,
  cmdline: Buffer = cmdlineDigest(cmdlineText),
): KernelInputs {
  const table = buildKernelHashesTable({
    cmdline,
    initrd: initrd === null ? EMPTY_SHA256 : Buffer.from(initrd.sha256, 'hex'),
    kernel: Buffer.from(kernel.sha256, 'hex'),
  });
  return { kernel, initrd, cmdline: cmdlineText ?? '', cmdlineSha256: cmdline.toString('hex'), table };
}
