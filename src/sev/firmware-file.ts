// Inspect a firmware image on disk: size, sha256 and its OVMF footer table, in one streamed pass.
// Owns: the file side of firmware inspection. Must not: judge the firmware for a VM (preflight
// does) or load the whole image into memory (only the table's tail is kept).
import { createHash, type Hash } from 'node:crypto';
import { readFileChunks, TailKeeper } from './hash-file.js';
import { OVMF_TABLE_TAIL_BYTES, parseOvmfTableTail, type OvmfTable } from './ovmf-table.js';

export interface FirmwareInfo {
  readonly path: string;
  readonly size: number;
  /** Lower-case hex. */
  readonly sha256: string;
  readonly table: OvmfTable;
}

/**
 * @throws SUP_ERR_FIRMWARE_READ when the file is missing, unreadable or not a regular file;
 * SUP_ERR_FIRMWARE_TABLE_INVALID when its footer table has an invalid length.
 */
export async function inspectFirmwareFile(path: string): Promise<FirmwareInfo> {
  return (await inspectLaunchFirmware(path)).info;
}

/**
 * As inspectFirmwareFile, and keep the pass's sha256 unfinished: the SEV launch digest (GCTX.LD)
 * begins with exactly these bytes, so it continues from a copy of `hash` instead of reading the
 * image again (sev/launch-digest.ts). Callers copy it, never update or finish it.
 * @throws as inspectFirmwareFile.
 */
export async function inspectLaunchFirmware(path: string): Promise<{ info: FirmwareInfo; hash: Hash }> {
  const hash = createHash('sha256');
  const tail = new TailKeeper(OVMF_TABLE_TAIL_BYTES);
  const size = await readFileChunks(
    path,
    (chunk) => {
      hash.update(chunk);
      tail.push(chunk);
    },
    { code: 'SUP_ERR_FIRMWARE_READ', what: 'firmware image' },
  );
  const sha256 = hash.copy().digest('hex');
  return { info: { path, size, sha256, table: parseOvmfTableTail(tail.bytes, size) }, hash };
}
