// The parts of a qcow2 image header that decide which other files QEMU would open for it: the
// backing file name and format, and an external data file (docs/interop/qcow2.txt).
// Pure: bytes in, facts out; no I/O (vm/disk-chain.ts reads the bytes and judges the paths).
// Why parse it ourselves rather than ask `qemu-img info --backing-chain`: qemu-img follows the
// header it is judging (a `json:` or `nbd:` backing name makes it connect or open before we can
// refuse), while reading the header opens nothing but the image itself.

/** 'QFI\xfb'. */
export const QCOW2_MAGIC = 0x514649fb;
/** Bytes that cover the version 2/3 header fields we read; extensions follow the header. */
export const QCOW2_HEADER_READ_BYTES = 64 * 1024;
/** QEMU refuses longer backing names (block/qcow2.c: "Backing file name too long"). */
const MAX_BACKING_NAME = 1023;

const EXT_END = 0;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_DATA_FILE = 0x44415441;
/** Incompatible feature bit 2: guest data lives in an external file. */
const INCOMPAT_DATA_FILE = 1n << 2n;

export interface Qcow2Header {
  readonly version: 2 | 3;
  /** The backing file name exactly as stored (may be relative, or a protocol/`json:` name), or null. */
  readonly backingName: string | null;
  /** The backing format extension (`raw`, `qcow2`, …), or null when the header names none. */
  readonly backingFormat: string | null;
  /** The external data file name (or '' when the feature bit is set without a name), or null. */
  readonly dataFile: string | null;
}

/** Why bytes are not a qcow2 header we can read; the caller adds the path. */
export class Qcow2HeaderError extends Error {}

/** True when `bytes` start with the qcow2 magic. */
export function isQcow2(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && Buffer.from(bytes.buffer, bytes.byteOffset, 4).readUInt32BE(0) === QCOW2_MAGIC;
}

/**
 * Read the header (and header extensions) at the start of a qcow2 image.
 * @param head the image's first bytes (QCOW2_HEADER_READ_BYTES, or the whole file if shorter);
 *   a name stored beyond them is refused (qemu-img keeps it within the first cluster).
 * @throws Qcow2HeaderError when the bytes are not a version 2 or 3 qcow2 header, or a name is cut off.
 */
export function parseQcow2Header(head: Buffer): Qcow2Header {
  if (head.length < 72 || !isQcow2(head)) throw new Qcow2HeaderError('not a qcow2 image (no QFI\\xfb magic)');
  const version = head.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw new Qcow2HeaderError(`qcow2 version ${version} is not 2 or 3`);
  const backingOffset = head.readBigUInt64BE(8);
  const backingSize = head.readUInt32BE(16);
  let incompatible = 0n;
  let headerLength = 72;
  if (version === 3) {
    if (head.length < 104) throw new Qcow2HeaderError('the qcow2 v3 header is cut off');
    incompatible = head.readBigUInt64BE(72);
    headerLength = head.readUInt32BE(100);
    if (headerLength < 104) throw new Qcow2HeaderError(`qcow2 header length ${headerLength} is below 104`);
  }

  let backingName: string | null = null;
  if (backingOffset !== 0n) {
    if (backingSize > MAX_BACKING_NAME)
      throw new Qcow2HeaderError(`the backing file name is ${backingSize} bytes (QEMU allows ${MAX_BACKING_NAME})`);
    const start = Number(backingOffset);
    if (start + backingSize > head.length) throw new Qcow2HeaderError('the backing file name lies beyond the header area sevsup reads');
    backingName = head.subarray(start, start + backingSize).toString('latin1');
  }

  let backingFormat: string | null = null;
  let dataFile: string | null = null;
  let offset = headerLength;
  for (;;) {
    if (offset + 8 > head.length) throw new Qcow2HeaderError('the qcow2 header extensions run past the header area sevsup reads');
    const type = head.readUInt32BE(offset);
    const length = head.readUInt32BE(offset + 4);
    if (type === EXT_END) break;
    const data = offset + 8;
    if (data + length > head.length) throw new Qcow2HeaderError(`qcow2 header extension 0x${type.toString(16)} runs past the header area`);
    const text = head.subarray(data, data + length).toString('latin1');
    if (type === EXT_BACKING_FORMAT) backingFormat = text;
    if (type === EXT_DATA_FILE) dataFile = text;
    offset = data + Math.ceil(length / 8) * 8;
  }
  if ((incompatible & INCOMPAT_DATA_FILE) !== 0n && dataFile === null) dataFile = '';
  return { version, backingName, backingFormat, dataFile };
}
