// The daemon's wiring of the host's SEV-SNP certificates (attestation/host-certs.ts): which identity
// source (the `snp-platform` facts file, else the platform's own), online or offline, the refresh
// timer, the hook that writes an SNP guest's certificate table before its QEMU starts, the status
// file `<run-dir>/snp-certs.json`, logs and metrics. Wiring only: every decision is the keeper's.
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  HOST_CERTS_STATUS_FILE,
  HostCertKeeper,
  writeStatusFile,
  type KeeperEvent,
  type RefreshTrigger,
} from '../attestation/host-certs.js';
import { loadPinnedArks } from '../attestation/snp-cert-files.js';
import type { DaemonConfig } from '../config/daemon-config.js';
import { SupervisorError } from '../errors.js';
import type { VmSpec } from '../config/vm-spec.js';
import { fileTcbSource } from '../host/snp-platform.js';
import type { Logger } from '../log.js';
import type { Platform } from '../platform/select.js';
import type { VmPaths } from '../process/run-dir.js';
import { KDS_BASE } from '../sev/snp-certs.js';
import type { DaemonMetrics } from './metrics.js';

/** How long start-up waits for the first refresh before launching guests (a cache hit takes ms). */
const START_WAIT_MS = 5_000;

export interface DaemonHostCerts {
  /** The registry's beforeLaunch hook: an SNP guest's table, written before its QEMU is spawned. */
  beforeLaunch(vm: string, spec: VmSpec, paths: VmPaths): Promise<void>;
  /** Rewrite every SNP guest's table with what the keeper holds (after re-attaching guests). */
  syncTables(): Promise<void>;
  /** Re-read the platform's TCB now (SIGHUP). */
  refresh(trigger: RefreshTrigger): Promise<void>;
  close(): void;
}

export interface HostCertsWiring {
  readonly config: DaemonConfig;
  readonly platform: Platform;
  /** Every SNP guest's table file (the registry's, read at each rewrite). */
  readonly tables: () => Iterable<string>;
  readonly logger: Logger;
  readonly metrics: DaemonMetrics;
}

/**
 * Whether this host keeps SNP certificates: `snp-certs: on`; or `auto` with a facts file, or on
 * hardware that supports SNP, or on the simulated platform given a key server (its chip is no
 * AMD chip: without one there is nothing to keep, and every sim daemon would warn about it).
 */
export function hostCertsWanted(config: DaemonConfig, platform: Platform): boolean {
  if (config.snpCerts !== 'auto') return config.snpCerts === 'on';
  if (config.snpPlatform !== null) return true;
  return platform.platform === 'simulated' ? config.kdsUrl !== null : platform.caps.sevSnp.supported;
}

/** Build the keeper and run its first refresh (waiting a little for it); null when not wanted. */
export async function startHostCerts(w: HostCertsWiring): Promise<DaemonHostCerts | null> {
  const { config, platform } = w;
  if (!hostCertsWanted(config, platform)) return null;
  const log = w.logger.child({ component: 'snp-certs' });
  // AMD's key server never has the simulated chip's VCEK: the sim asks only a key server it is given.
  const offline = config.snpCertsOffline || (platform.platform === 'simulated' && config.kdsUrl === null);
  const source = config.snpPlatform === null ? platform.snpIdentity : fileTcbSource(config.snpPlatform);
  const statusFile = join(config.runDir, HOST_CERTS_STATUS_FILE);
  const pinned = await loadPinnedArks(config.snpArk ?? undefined).catch((error: unknown) => {
    throw new SupervisorError(
      'SUP_ERR_CONFIG_BAD_VALUE',
      `snp-ark: ${error instanceof Error ? error.message.replace(/^--ark /, '') : String(error)}`,
      {
        details: { key: 'snp-ark' },
        cause: error,
      },
    );
  });
  const keeper = new HostCertKeeper({
    cacheDir: config.snpCertCache,
    offline,
    source,
    pinned,
    tables: w.tables,
    kds: { baseUrl: config.kdsUrl ?? KDS_BASE },
    onEvent: (event) => logEvent(log, event),
  });
  w.metrics.snpCerts(() => {
    const s = keeper.status();
    return { ready: s.tables === 'ready', ageSeconds: s.vcek?.ageSeconds ?? null, tcbChanges: s.tcbChanges };
  });
  const refresh = async (trigger: RefreshTrigger): Promise<void> => {
    const outcome = await keeper.refresh(trigger);
    w.metrics.snpCertRefresh(outcome);
    await writeStatusFile(statusFile, keeper.status()).catch((error: unknown) =>
      log.warn({ err: error, file: statusFile }, 'cannot write the SNP certificate status file'),
    );
  };
  log.info(
    {
      source: source.name,
      offline,
      cache: config.snpCertCache,
      kds: offline ? null : (config.kdsUrl ?? KDS_BASE),
      every: config.snpCertsRefresh,
    },
    "keeping the host's SNP certificates",
  );
  await Promise.race([refresh('start'), delay(START_WAIT_MS, undefined, { ref: false })]);
  const timer = setInterval(() => void refresh('interval'), config.snpCertsRefresh * 1000);
  timer.unref();
  return {
    async beforeLaunch(vm, spec, paths) {
      if (spec.sev?.type !== 'snp') return;
      try {
        const written = await keeper.writeTable(paths.snpCertTable);
        const s = keeper.status();
        if (written) log.info({ vm, table: paths.snpCertTable, tables: s.tables }, 'SNP certificate table written');
        else log.warn({ vm, reason: s.platformProblem }, "no SNP certificate table: the platform's identity is unknown");
      } catch (error: unknown) {
        // The table is a convenience for the guest (its report is signed either way), not a launch check.
        log.warn({ vm, err: error }, 'cannot write the SNP certificate table; the guest starts without one');
      }
    },
    refresh,
    syncTables: () => keeper.syncTables(),
    close: () => clearInterval(timer),
  };
}

function logEvent(log: Logger, event: KeeperEvent): void {
  switch (event.kind) {
    case 'refreshed':
      if (event.outcome === 'cache' || event.outcome === 'network')
        log.info({ trigger: event.trigger, outcome: event.outcome }, 'SNP certificates in place');
      else log.debug({ trigger: event.trigger, outcome: event.outcome }, 'SNP certificate refresh');
      return;
    case 'tcb-changed':
      log.info({ from: event.from, to: event.to }, "the platform's reported TCB changed");
      return;
    case 'error':
      log.warn({ code: event.code }, event.message);
      return;
    case 'table-write-failed':
      log.warn({ table: event.path }, event.message);
      return;
  }
}
