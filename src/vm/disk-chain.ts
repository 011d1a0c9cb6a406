// Reading and checking each disk's backing chain before any QEMU starts: the chain sevsup states
// on the command line (qemu/devices.ts: explicit read-only backing nodes, or `backing: null`).
// Owns: the rules for what a chain may contain. A backing image must
//   - be named by a plain path (no `json:` or `protocol:` name: those make QEMU build nodes or
//     connect somewhere sevsup never stated),
//   - carry its format in the header, and that format must be qcow2 or raw (others open more files:
//     vmdk extents, a LUKS key, a quorum's children …); no qcow2 layer may use an external data file,
//   - resolve (symlinks followed) inside the directory of the disk that the config names, or below
//     it: the allowed location of a disk's chain is where the operator put the disk,
//   - be a regular, readable file, never one already in the chain (a loop), at most MAX_CHAIN_DEPTH deep.
// Must not: run qemu-img or anything that follows a header (see qemu/qcow2-header.ts for why), or
// build argv.
import { constants } from 'node:fs';
import { type FileHandle, open, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import type { DiskSpec, VmSpec } from '../config/vm-spec.js';
import { SupervisorError } from '../errors.js';
import type { BackingLayer } from '../qemu/devices.js';
import { isQcow2, parseQcow2Header, QCOW2_HEADER_READ_BYTES, Qcow2HeaderError, type Qcow2Header } from '../qemu/qcow2-header.js';
import { describeIoError } from '../util/io-error.js';

/** Deeper chains are refused: real ones have a handful of layers; QEMU itself stops at 256. */
export const MAX_CHAIN_DEPTH = 16;
/** Backing formats QEMU opens without touching any other file. */
const PLAIN_FORMATS: readonly BackingLayer['format'][] = ['qcow2', 'raw'];

/** A disk's chain: the layers below it, first the one it names. */
export type DiskChains = ReadonlyMap<number, readonly BackingLayer[]>;

/**
 * Read and check every disk's backing chain.
 * @throws SUP_ERR_DISK_READ (a disk or backing image cannot be read, or is not a regular file),
 *   SUP_ERR_DISK_CHAIN_REFUSED (the chain breaks one of the rules above; the message says which).
 */
export async function readDiskChains(spec: VmSpec): Promise<DiskChains> {
  const chains = new Map<number, readonly BackingLayer[]>();
  for (const disk of spec.disks) chains.set(disk.index, await readChain(spec, disk));
  return chains;
}

/** The name QEMU would take as a protocol (`nbd:`, `http:`, `json:`…): a ':' before any '/'. */
export function hasProtocolPrefix(name: string): boolean {
  const colon = name.indexOf(':');
  if (colon < 0) return false;
  const slash = name.indexOf('/');
  return slash < 0 || colon < slash;
}

async function readChain(spec: VmSpec, disk: DiskSpec): Promise<readonly BackingLayer[]> {
  const key = `disk${disk.index}`;
  const refuse = (why: string, path: string): SupervisorError =>
    new SupervisorError('SUP_ERR_DISK_CHAIN_REFUSED', `${spec.source}: ${key}: ${why}; sevsup refuses to start the VM`, {
      details: { file: spec.source, key, path },
    });
  const top = await inspect(spec, key, disk.file, disk.format, false);
  if (disk.format === 'raw') return [];
  const root = dirname(top.real);
  const seen = new Set<string>([top.identity]);
  const layers: BackingLayer[] = [];
  let current = { path: disk.file, header: top.header };
  for (;;) {
    const header = current.header;
    if (header === null) return layers;
    if (header.dataFile !== null) {
      throw refuse(
        `${current.path} keeps its data in an external file (${JSON.stringify(header.dataFile)}); convert it with 'qemu-img convert -O qcow2'`,
        current.path,
      );
    }
    const name = header.backingName;
    if (name === null) return layers;
    if (name === '' || name.includes('\0') || name.startsWith('json:') || hasProtocolPrefix(name)) {
      throw refuse(
        `${current.path} names the backing ${JSON.stringify(name)}, which is not a plain file path (QEMU would read it as a protocol or JSON node)`,
        current.path,
      );
    }
    const format = header.backingFormat;
    if (format === null) {
      throw refuse(
        `${current.path} names the backing ${JSON.stringify(name)} without its format (QEMU would guess it); ` +
          `state it with 'qemu-img rebase -u -b ${name} -F qcow2|raw ${current.path}'`,
        current.path,
      );
    }
    if (!(PLAIN_FORMATS as readonly string[]).includes(format)) {
      throw refuse(
        `${current.path} names a ${JSON.stringify(format)} backing; sevsup opens only qcow2 and raw backing images (other formats open further files)`,
        current.path,
      );
    }
    if (layers.length >= MAX_CHAIN_DEPTH) throw refuse(`the backing chain is deeper than ${MAX_CHAIN_DEPTH} images`, current.path);
    const wanted = isAbsolute(name) ? name : resolve(dirname(current.path), name);
    const layer = await inspect(spec, key, wanted, format as BackingLayer['format'], true);
    const inside = relative(root, layer.real);
    if (inside === '' || inside.startsWith(`..${sep}`) || inside === '..' || isAbsolute(inside)) {
      throw refuse(
        `${current.path} names the backing ${wanted} (${layer.real}), which lies outside ${root}, the directory of the disk; keep a disk's backing images beside it or below`,
        current.path,
      );
    }
    if (seen.has(layer.identity)) throw refuse(`the backing chain loops: ${layer.real} appears twice`, current.path);
    seen.add(layer.identity);
    layers.push({ file: layer.real, format: layer.format });
    current = { path: layer.real, header: layer.header };
  }
}

interface Inspected {
  /** The path with every symlink resolved: what QEMU is told to open. */
  readonly real: string;
  /** dev:ino, for loops through hard links or different spellings. */
  readonly identity: string;
  readonly format: BackingLayer['format'];
  /** The qcow2 header, or null for raw. */
  readonly header: Qcow2Header | null;
}

/** Open (O_NONBLOCK: a FIFO would wait for a writer), check it is a regular file, read a qcow2 header. */
async function inspect(spec: VmSpec, key: string, path: string, format: BackingLayer['format'], backing: boolean): Promise<Inspected> {
  const what = backing ? 'backing image' : 'disk image';
  const fail = (reason: string, code: 'SUP_ERR_DISK_READ' | 'SUP_ERR_DISK_CHAIN_REFUSED' = 'SUP_ERR_DISK_READ'): SupervisorError =>
    new SupervisorError(code, `${spec.source}: ${key}: ${what} ${path}: ${reason}`, { details: { file: spec.source, key, path, reason } });
  let real: string;
  try {
    real = await realpath(path);
  } catch (error: unknown) {
    throw fail(`cannot read it: ${describeIoError(error)}; give an existing, readable file`);
  }
  let handle: FileHandle;
  try {
    handle = await open(real, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (error: unknown) {
    throw fail(`cannot read it: ${describeIoError(error)}; give an existing, readable file`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw fail('not a regular file');
    if (format === 'raw') return { real, identity: `${stat.dev}:${stat.ino}`, format, header: null };
    const head = Buffer.alloc(Math.min(QCOW2_HEADER_READ_BYTES, stat.size));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const bytes = head.subarray(0, bytesRead);
    if (!isQcow2(bytes))
      throw fail(
        `format qcow2 is configured, but the file is not a qcow2 image`,
        backing ? 'SUP_ERR_DISK_CHAIN_REFUSED' : 'SUP_ERR_DISK_READ',
      );
    try {
      return { real, identity: `${stat.dev}:${stat.ino}`, format, header: parseQcow2Header(bytes) };
    } catch (error: unknown) {
      if (error instanceof Qcow2HeaderError) throw fail(error.message, 'SUP_ERR_DISK_CHAIN_REFUSED');
      throw error;
    }
  } finally {
    await handle.close();
  }
}
