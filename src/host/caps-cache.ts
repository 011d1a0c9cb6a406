// sevsup's own cache of a live probe's result, with the reasons and sources a caps file lacks.
// Owns: the cache key (QEMU binary path + mtime + version, and the boot id, because a reboot is
// when BIOS settings and kvm_amd parameters change), and reading/writing the cache file.
// Must not: fail a lookup: a missing, stale, corrupt or unwritable cache is simply not used.
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import { isRecord } from '../util/is-record.js';
import type { FeatureSupport, HostCaps } from './host-caps.js';
import { findExecutable, readQemuVersion } from './qemu-version.js';

export { findExecutable } from './qemu-version.js';

export const CACHE_SCHEMA = 'sevsup.host-caps-cache/v1';
/** The cache is a few hundred bytes. */
const MAX_CACHE_BYTES = 64 * 1024;

export interface CacheKey {
  /** Absolute path of the QEMU binary. */
  readonly qemu: string;
  readonly mtimeMs: number;
  /** e.g. "7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)". */
  readonly version: string;
  readonly bootId: string | null;
}

/** The key for `qemu` now; null when the binary cannot be found or asked its version. */
export async function computeCacheKey(qemu: string, root = '/'): Promise<CacheKey | null> {
  const path = await findExecutable(qemu);
  if (path === null) return null;
  const found = await readQemuVersion(path);
  if (found === null || found.version === null) return null;
  return { qemu: found.path, mtimeMs: found.mtimeMs, version: found.version.text, bootId: await readBootId(root) };
}

/** Cached caps for `key`, their sources saying they came through `file`; null when not usable. */
export async function readCachedCaps(file: string, key: CacheKey): Promise<HostCaps | null> {
  let value: unknown;
  try {
    const data = await readFile(file);
    if (data.length > MAX_CACHE_BYTES) return null;
    value = JSON.parse(data.toString('utf8'));
  } catch {
    return null;
  }
  if (!isRecord(value) || value['schema'] !== CACHE_SCHEMA || !sameKey(value['key'], key)) return null;
  const caps = narrowHostCaps(value['caps']);
  if (caps === null) return null;
  const via = (source: string): string => `${file} (${source})`;
  const feature = (f: FeatureSupport): FeatureSupport => ({ ...f, source: via(f.source) });
  return {
    sev: feature(caps.sev),
    sevEs: feature(caps.sevEs),
    sevSnp: feature(caps.sevSnp),
    cbitpos: caps.cbitpos,
    cbitposSource: via(caps.cbitposSource),
    reducedPhysBits: caps.reducedPhysBits,
    reducedPhysBitsSource: via(caps.reducedPhysBitsSource),
  };
}

/** Write the cache atomically, creating its directory. Rejects with the system error. */
export async function writeCachedCaps(file: string, key: CacheKey, caps: HostCaps): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o755 });
  const body = { schema: CACHE_SCHEMA, writtenAt: new Date().toISOString(), key, caps };
  await writeFileAtomic(file, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o644, overwrite: true });
}

/** HostCaps from untrusted JSON; null when anything is off. */
export function narrowHostCaps(value: unknown): HostCaps | null {
  if (!isRecord(value)) return null;
  const sev = narrowFeature(value['sev']);
  const sevEs = narrowFeature(value['sevEs']);
  const sevSnp = narrowFeature(value['sevSnp']);
  const cbitpos = value['cbitpos'];
  const reduced = value['reducedPhysBits'];
  const cbitposSource = value['cbitposSource'];
  const reducedSource = value['reducedPhysBitsSource'];
  if (sev === null || sevEs === null || sevSnp === null) return null;
  if (!isBitField(cbitpos) || !isBitField(reduced) || typeof cbitposSource !== 'string' || typeof reducedSource !== 'string') return null;
  return { sev, sevEs, sevSnp, cbitpos, cbitposSource, reducedPhysBits: reduced, reducedPhysBitsSource: reducedSource };
}

function narrowFeature(value: unknown): FeatureSupport | null {
  if (!isRecord(value)) return null;
  const { supported, reason, source } = value;
  if (typeof supported !== 'boolean' || typeof reason !== 'string' || typeof source !== 'string') return null;
  return { supported, reason, source };
}

function isBitField(value: unknown): value is number | null {
  return value === null || (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 63);
}

function sameKey(value: unknown, key: CacheKey): boolean {
  return (
    isRecord(value) &&
    value['qemu'] === key.qemu &&
    value['mtimeMs'] === key.mtimeMs &&
    value['version'] === key.version &&
    value['bootId'] === key.bootId
  );
}

async function readBootId(root: string): Promise<string | null> {
  try {
    return (await readFile(join(root, 'proc/sys/kernel/random/boot_id'), 'utf8')).trim();
  } catch {
    return null;
  }
}
