// Where sevsup's host capabilities come from, in DESIGN's order: an explicit file (--host-caps,
// the daemon config) → sevsup's own probe cache (when its key matches) → the seed's
// /run/qemu-server/hw-params.json → shipped Proxmox's /run/qemu-server/host-hw-capabilities.json
// → a live probe (whose result is then cached). Every value's `source` says which one answered.
// Owns: that order. Must not: throw because SEV is absent, or because the cache is unusable.
import { join } from 'node:path';
import { SupervisorError } from '../errors.js';
import type { Logger } from '../log.js';
import { computeCacheKey, readCachedCaps, writeCachedCaps } from './caps-cache.js';
import { PROXMOX_CAPS_FILE, readCapsFile, SEED_CAPS_FILE } from './caps-file.js';
import type { FeatureSupport, HostCaps } from './host-caps.js';
import { probeHostCaps, type ProbeOptions } from './probe.js';
import { DEFAULT_QEMU_BINARY } from './qemu-probe.js';
import { DEFAULT_CACHE_FILE } from '../paths.js';

export interface ResolveOptions {
  /** An explicit capabilities file: used alone, and it must exist. */
  readonly file?: string;
  /** QEMU binary (cache key and sub-probe). @default 'qemu-system-x86_64' */
  readonly qemu?: string;
  /** false: no cache, no live probe; files only. @default true */
  readonly probe?: boolean;
  /** @default <root>/var/cache/sevsup/host-caps.json */
  readonly cacheFile?: string;
  /** Prefix of every system path (/run, /var/cache, /proc, /sys, /dev) for fake trees. @default '/' */
  readonly root?: string;
  readonly forceQemu?: boolean;
  readonly logger?: Logger;
  /** Passed to the probe (tests). */
  readonly qemuProbe?: ProbeOptions['qemuProbe'];
}

/**
 * The host's capabilities by the lookup order above.
 * @throws SUP_ERR_HOST_CAPS_FILE when the explicit file is missing, or any file read is invalid.
 */
export async function resolveHostCaps(options: ResolveOptions = {}): Promise<HostCaps> {
  const root = options.root ?? '/';
  const logger = options.logger;
  if (options.file !== undefined) {
    const caps = await readCapsFile(options.file);
    if (caps === null) {
      throw new SupervisorError(
        'SUP_ERR_HOST_CAPS_FILE',
        `host capabilities file ${options.file} does not exist; create it with "sevsup host --write ${options.file}"`,
        { details: { file: options.file, key: null } },
      );
    }
    return caps;
  }

  const probe = options.probe !== false;
  const qemu = options.qemu ?? DEFAULT_QEMU_BINARY;
  const cacheFile = options.cacheFile ?? join(root, DEFAULT_CACHE_FILE);
  const key = probe ? await computeCacheKey(qemu, root) : null;
  if (key !== null) {
    const cached = await readCachedCaps(cacheFile, key);
    if (cached !== null) return cached;
  }

  const files = [join(root, SEED_CAPS_FILE), join(root, PROXMOX_CAPS_FILE)];
  for (const file of files) {
    const caps = await readCapsFile(file);
    if (caps !== null) return caps;
  }

  if (!probe) return nothingKnown(`no host capabilities file was found (looked for ${files.join(' and ')}) and probing is off`);

  const caps = await probeHostCaps({
    qemu,
    root,
    ...(options.forceQemu === undefined ? {} : { forceQemu: options.forceQemu }),
    ...(logger === undefined ? {} : { logger }),
    ...(options.qemuProbe === undefined ? {} : { qemuProbe: options.qemuProbe }),
  });
  if (key !== null) {
    await writeCachedCaps(cacheFile, key, caps).catch((error: unknown) => {
      logger?.warn({ err: error, file: cacheFile }, 'cannot write the host capabilities cache; probing again next time');
    });
  }
  return caps;
}

function nothingKnown(because: string): HostCaps {
  const feature: FeatureSupport = { supported: false, reason: `not supported, because ${because}`, source: 'default' };
  return {
    sev: feature,
    sevEs: feature,
    sevSnp: feature,
    cbitpos: null,
    cbitposSource: 'default',
    reducedPhysBits: null,
    reducedPhysBitsSource: 'default',
  };
}
