// EFI GUIDs as firmware tables store them: the first three fields little-endian, the last eight
// bytes as written (edk2 EFI_GUID, QEMU's qemu_uuid_bswap, Python's UUID.bytes_le).
// Owns: text <-> bytes conversion for every GUID-keyed structure in sev/. Pure: no I/O.

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Bytes in one GUID. */
export const GUID_BYTES = 16;

/** True for the canonical 8-4-4-4-12 hex form (either case). */
export function isGuid(text: string): boolean {
  return GUID_RE.test(text);
}

/** The 16 little-endian bytes of `guid`. Throws RangeError for a malformed GUID (a caller bug). */
export function guidToBytesLe(guid: string): Buffer {
  if (!isGuid(guid)) throw new RangeError(`not a GUID: ${JSON.stringify(guid)}`);
  const hex = guid.replaceAll('-', '');
  const be = Buffer.from(hex, 'hex');
  const out = Buffer.from(be);
  // data1 (u32), data2 (u16), data3 (u16) are little-endian; data4 (8 bytes) stays as written.
  out[0] = be[3] ?? 0;
  out[1] = be[2] ?? 0;
  out[2] = be[1] ?? 0;
  out[3] = be[0] ?? 0;
  out[4] = be[5] ?? 0;
  out[5] = be[4] ?? 0;
  out[6] = be[7] ?? 0;
  out[7] = be[6] ?? 0;
  return out;
}

/** Lower-case text of the GUID stored little-endian at `bytes[offset..offset+16)`. */
export function guidFromBytesLe(bytes: Uint8Array, offset = 0): string {
  if (offset < 0 || offset + GUID_BYTES > bytes.length) throw new RangeError('GUID outside the buffer');
  const b = (i: number): string => (bytes[offset + i] ?? 0).toString(16).padStart(2, '0');
  const order = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15];
  return order.map((i) => (i < 0 ? '-' : b(i))).join('');
}

/** True when the 16 bytes at `offset` are `guidLe` (the output of guidToBytesLe). */
export function guidAt(bytes: Uint8Array, offset: number, guidLe: Uint8Array): boolean {
  if (offset < 0 || offset + GUID_BYTES > bytes.length) return false;
  for (let i = 0; i < GUID_BYTES; i++) if (bytes[offset + i] !== guidLe[i]) return false;
  return true;
}
