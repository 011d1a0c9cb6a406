// `sevsup daemon`: the composition root. Config, logger, notifier, metrics, host caps, the guest
// registry, the control API, signals and the shutdown order — wiring only, no logic of its own.
// Start-up order: config → logger → run/state dirs → lock them (process/dir-lock.ts: a second
// daemon, or a `sevsup run`, on the same directories stops here, before touching any guest) →
// claim the control socket → VM configs → re-attach guests left by a previous daemon
// → accept operations → autostart (READY=1 once those guests are held or running, or after 30 s,
// whichever is first; launches still going on continue in the background). The host's SNP certificates
// (snp-certs.ts) are brought in line before the registry exists and re-checked on a timer.
// SIGHUP reloads configs and re-reads the SNP platform's TCB; SIGTERM/SIGINT stop taking
// requests, then keep (detach) or shut down the guests as `on-shutdown` says, then exit 0.
// A crash or SIGKILL leaves every guest running: QEMU is detached and re-attached next time.
import { mkdir, unlink } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { ControlTarget } from '../api/server.js';
import { startControlServer, type ControlServer } from '../api/server.js';
import { loadDaemonConfig, type DaemonConfig, type DaemonSettings } from '../config/daemon-config.js';
import { SupervisorError, isSupervisorError } from '../errors.js';
import type { Logger } from '../log.js';
import { selectPlatform } from '../platform/select.js';
import { lockDirs } from '../process/dir-lock.js';
import { socketAnswers } from '../process/run-dir.js';
import { discoverGuests } from './discover.js';
import { resolveGroup } from './group.js';
import { GuestRegistry } from './guests.js';
import { createDaemonLogger } from './log-format.js';
import { createMetrics, startMetricsListener, type DaemonMetrics, type MetricsListener } from './metrics.js';
import { createNotifier, type Notifier } from '../process/sd-notify.js';
import { startHostCerts } from './snp-certs.js';
import { scanVmConfigs } from './vm-configs.js';

/** The simulator executable shipped next to bin/sevsup (dist/daemon/main.js → bin/). */
/**
 * READY=1 waits for the autostart guests to be held or running (or failed), but no longer than
 * this: systemd's start timeout (90 s by default) must never kill a daemon over a slow launch.
 */
const AUTOSTART_READY_WAIT_MS = 30_000;
/** Exit code after an uncaught error (sysexits EX_SOFTWARE, as SUP_ERR_INTERNAL). */
const EXIT_CRASH = 70;

export interface DaemonRunOptions {
  /** `--config FILE` (must exist); absent: /etc/sevsup/sevsup.conf if present. */
  readonly configFile?: string;
  /** `--<key> value` flags, which win over the file. */
  readonly flags?: DaemonSettings;
}

/**
 * Run the daemon until SIGTERM/SIGINT; resolves with the exit code (0 after a clean shutdown).
 * @throws configuration and start-up errors (SUP_ERR_CONFIG_*, SUP_ERR_DAEMON_RUNNING, …) before
 *   any guest is touched.
 */
export async function runDaemon(options: DaemonRunOptions = {}): Promise<number> {
  const config = await loadDaemonConfig({
    ...(options.configFile === undefined ? {} : { file: options.configFile }),
    flags: options.flags ?? {},
  });
  const sim = config.platform === 'sim';
  const logger = createDaemonLogger({
    level: config.logLevel,
    format: config.logFormat,
    base: { platform: sim ? 'simulated' : 'hardware' },
  });
  const notifier = createNotifier();
  const metrics = createMetrics();
  process.on('uncaughtException', (error) => crash(logger, error));
  process.on('unhandledRejection', (error) => crash(logger, error));

  await mkdir(config.runDir, { recursive: true, mode: 0o755 });
  await mkdir(config.stateDir, { recursive: true, mode: 0o755 });
  // Held until this process ends (the kernel drops it however we die); never passed to QEMU.
  const dirLock = await lockDirs([config.runDir, config.stateDir], { mode: 'exclusive', who: 'sevsup daemon' });
  logger.debug({ lockFiles: dirLock.paths }, 'run and state directories locked');
  const gid = config.socketGroup === null ? undefined : await resolveGroup(config.socketGroup);
  if (sim) logger.warn('SIMULATED SEV platform: nothing is encrypted; for development and tests only');
  const selected = await selectPlatform({
    platform: config.platform,
    ...(config.qemu === null ? {} : { qemu: config.qemu }),
    ...(config.hostCaps === null ? {} : { hostCaps: config.hostCaps }),
    logger,
  });
  const { platform, binary, binaryArgs, caps } = selected;

  // Before the registry, so that guests autostarted or re-attached below find their certificate table.
  let guests: GuestRegistry | null = null;
  const hostCerts = await startHostCerts({
    config,
    platform: selected,
    tables: () => guests?.snpGuestPaths().map((p) => p.snpCertTable) ?? [],
    logger,
    metrics,
  });
  const registry = new GuestRegistry({
    runDir: config.runDir,
    stateDir: config.stateDir,
    platform,
    binary,
    binaryArgs,
    caps,
    holdTimeoutSeconds: config.holdTimeout,
    ...(config.hostId === null ? {} : { hostId: config.hostId }),
    defaultFirmware: config.defaultFirmware,
    ...(gid === undefined ? {} : { gid }),
    lifecycle: {
      qemuOptions: { ...(config.qemuSandbox ? { sandbox: true } : {}), ...(config.qemuUser === null ? {} : { runAs: config.qemuUser }) },
      ...(config.refuseDebugPolicy ? { refuseDebugPolicy: true } : {}),
      snpFirstRunWindowMs: config.snpFirstRunWindowMs,
      powerdownTimeoutMs: config.powerdownTimeout * 1000,
    },
    logger,
    metrics,
    ...(hostCerts === null ? {} : { beforeLaunch: (vm, spec, paths) => hostCerts.beforeLaunch(vm, spec, paths) }),
  });
  guests = registry;
  metrics.guestsByState(() => registry.countByState());

  // The directory lock is the daemon's lock; the socket is claimed before any guest is re-attached too.
  await removeStaleSocket(config.socket);
  const server = await startControlServer({
    socketPath: config.socket,
    target: controlTarget(registry, metrics),
    ...(gid === undefined ? {} : { gid }),
    logger,
    onAnswered: (route, seconds) => metrics.apiLatency(route, seconds),
    inUse: (socketPath, cause) => daemonRunning(socketPath, cause),
  });

  registry.reload(await scanVmConfigs(config.vmDir));
  const left = await discoverGuests(config.runDir);
  await registry.adopt(left.found, left.unreadable);
  // Re-attached SNP guests' tables may predate a TCB change made while no daemon ran.
  await hostCerts?.syncTables();
  registry.open();
  const metricsListener = config.metricsListen === null ? null : await startMetricsListener(config.metricsListen, metrics);
  const autostarted = registry.autostart();
  await Promise.race([autostarted, delay(AUTOSTART_READY_WAIT_MS, undefined, { ref: false })]);

  const summary = (): string => {
    const { vms, configErrors } = registry.list();
    return `${vms.length} guests, ${configErrors.length} bad configs`;
  };
  logger.info(
    {
      socket: config.socket,
      vmDir: config.vmDir,
      runDir: config.runDir,
      onShutdown: config.onShutdown,
      metrics: metricsListener?.port ?? null,
    },
    'sevsup daemon ready',
  );
  await notifier.ready(summary());
  const watchdogMs = notifier.watchdogIntervalMs();
  const watchdog = watchdogMs === null ? null : setInterval(() => void notifier.watchdog(), watchdogMs);

  return new Promise<number>((resolve) => {
    let reloading = Promise.resolve();
    const onHup = (): void => {
      reloading = reloading.then(async () => {
        await notifier.reloading();
        logger.info('SIGHUP: reloading VM configs');
        try {
          registry.reload(await scanVmConfigs(config.vmDir));
        } catch (error: unknown) {
          logger.error({ err: error }, 'reload failed; the previous configs stay in effect');
        }
        await hostCerts?.refresh('reload');
        await notifier.ready(summary());
      });
    };
    let stopping = false;
    const onStop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal, onShutdown: config.onShutdown }, 'shutting down');
      hostCerts?.close();
      void shutdown({ server, metricsListener, registry, config, notifier, watchdog })
        .then(
          () => {
            logger.info('sevsup daemon stopped');
            return 0;
          },
          (error: unknown) => {
            logger.error({ err: error }, 'shutdown failed');
            return EXIT_CRASH;
          },
        )
        .then((code) => logger.flush(() => resolve(code)));
    };
    process.on('SIGHUP', onHup);
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
  });
}

async function shutdown(parts: {
  readonly server: ControlServer;
  readonly metricsListener: MetricsListener | null;
  readonly registry: GuestRegistry;
  readonly config: DaemonConfig;
  readonly notifier: Notifier;
  readonly watchdog: NodeJS.Timeout | null;
}): Promise<void> {
  await parts.notifier.stopping();
  // No new requests first; then the guests, as on-shutdown says.
  await parts.server.close();
  await parts.metricsListener?.close();
  await parts.registry.shutdown(parts.config.onShutdown);
  if (parts.watchdog !== null) clearInterval(parts.watchdog);
}

/** The registry as the control API's target, plus `/metrics`. */
function controlTarget(registry: GuestRegistry, metrics: DaemonMetrics): ControlTarget {
  return {
    status: (vm) => registry.status(vm),
    measurement: (vm) => registry.measurement(vm),
    attest: (vm, request) => registry.attest(vm, request),
    list: () => registry.list(),
    start: (vm) => registry.start(vm),
    stop: (vm, request) => registry.stop(vm, request),
    records: (vm) => registry.records(vm),
    record: (vm, name) => registry.record(vm, name),
    snapshot: (vm, request) => registry.snapshot(vm, request),
    migrate: (vm, request) => registry.migrate(vm, request),
    subscribe: (listener, vm) => registry.subscribe(listener, vm),
    metrics: () => metrics.render(),
  };
}

/** Unlink the control socket of a daemon that died; refuse while one still answers on it. */
async function removeStaleSocket(path: string): Promise<void> {
  if (await socketAnswers(path)) throw daemonRunning(path);
  await unlink(path).catch(() => undefined);
}

function daemonRunning(socketPath: string, cause?: unknown): SupervisorError {
  return new SupervisorError(
    'SUP_ERR_DAEMON_RUNNING',
    `another sevsup daemon is serving ${socketPath}; stop it first (two daemons must never supervise the same guests)`,
    {
      details: { socketPath },
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

/** Guests are detached: crashing leaves them running, and the next daemon re-attaches them. */
function crash(logger: Logger, error: unknown): never {
  logger.fatal(
    { err: isSupervisorError(error) || error instanceof Error ? error : String(error) },
    'daemon crashed; guests keep running and are re-attached at the next start',
  );
  logger.flush();
  process.exit(EXIT_CRASH);
}
