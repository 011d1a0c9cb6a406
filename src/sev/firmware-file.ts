// Inspect a firmware image on disk: size, sha256 and its OVMF footer table, in one streamed pass.
// Owns: the file side of firmware inspection. Must not: judge the firmware for a VM (preflight
// does) or load the whole image into memory (only the table's tail is kept).
import { createHash } from 'node:crypto';
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
  return { path, size, sha256: hash.digest('hex'), table: parseOvmfTableTail(tail.bytes, size) };
}
