// The daemon's guests: one entry per VM config (and per guest re-attached after a restart), each
// with at most one live VmLifecycle and its QMP proxy. It is the daemon's ControlTarget.
// Owns: which guest has which lifecycle, start/stop/attach/detach of them, config reloads (new
// configs appear, removed ones are forgotten once stopped, changed ones apply at next start),
// the per-guest exclusion of offline work against a start, and the event fan-out.
// Must not: know the launch order or judge QEMU's answers (vm/lifecycle.ts), decide QMP commands
// (proxy/), apply the seed's snapshot/migration rules itself (guest-ops.ts), or decide how a
// guest left by a previous daemon is re-attached (reattach.ts; this file only schedules it).
import { join } from 'node:path';
import type { StreamEvent } from '../api/server.js';
import type {
  AttestRequest,
  AttestResult,
  ConfigProblem,
  MigrateRequest,
  MigrateResult,
  RecordSummary,
  SnapshotRequest,
  SnapshotResult,
  StopRequest,
  VmListReply,
  VmStatus,
} from '../api/types.js';
import type { VmSpec } from '../config/vm-spec.js';
import { SupervisorError, hasCode } from '../errors.js';
import type { HostCaps } from '../host/host-caps.js';
import type { Logger } from '../log.js';
import { prepareVmRunDir, vmRunPaths, type VmPaths } from '../process/run-dir.js';
import { superviseGuest } from '../guest/supervised.js';
import { inBatches } from '../util/batches.js';
import type { VmLifecycle } from '../vm/lifecycle.js';
import type { LifecycleOptions } from '../vm/lifecycle-options.js';
import type { LifecycleEventRecord } from '../vm/types.js';
import type { LaunchRecord, RecordPlatform } from '../vm/record.js';
import { listRecords, readRecordFile, recordsDir } from '../vm/record-store.js';
import { vmStateFilePath, type PersistedVmState } from '../vm/state-file.js';
import { isTerminal, type VmState } from '../vm/state.js';
import type { UnreadableState } from './discover.js';
import { canonical, Guest, settled, type Unsupervised } from './guest-entry.js';
import { exportGuest, refuseMigrate, refuseSnapshot, snapshotOffline, snapshotOnline } from './guest-ops.js';
import { adoptPersisted, adoptUnreadable, QEMU_LOG_FILE, type ReattachContext } from './reattach.js';
import type { VmConfigScan } from './vm-configs.js';

/** Guests launched at once at daemon start: QEMU start-up is CPU-bound, and the host has few cores. */
export const AUTOSTART_CONCURRENCY = 4;
/** Re-attaching is a QMP handshake and two queries per guest: cheap, but not unbounded. */
export const ATTACH_CONCURRENCY = 8;
/** States in which the lifecycle has its own monitor session for a disk snapshot. */
const ONLINE: readonly VmState[] = ['held', 'running', 'paused'];
/** Record names as the store writes them (`2026-11-26T10-35-20.123Z`, `latest`). */
const RECORD_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** What the daemon runs guests with (config, platform and host caps, resolved once). */
export interface GuestRegistryOptions {
  readonly runDir: string;
  readonly stateDir: string;
  readonly platform: RecordPlatform;
  readonly binary: string;
  readonly binaryArgs: readonly string[];
  readonly caps: HostCaps;
  /** Hold timeout (s) of guests whose config sets none. */
  readonly holdTimeoutSeconds: number;
  /** Firmware of `bios: ovmf` configs without a `firmware:` key. */
  readonly defaultFirmware: string | null;
  /** The host's id in relay requests (`host-id`); absent: os.hostname(). */
  readonly hostId?: string;
  /** Group of the per-VM run dirs and proxy sockets. */
  readonly gid?: number;
  readonly logger: Logger;
  readonly metrics?: {
    launch(outcome: string): void;
    failedCheck(code: string): void;
    refusedQmp(reason: string): void;
    relayAttempt(result: string, seconds: number): void;
    relayOutcome(result: string, seconds: number): void;
  };
  /** @default 'qemu-img' from PATH */
  readonly qemuImg?: string;
  /**
   * Called for each start after the guest's run directory is prepared and before QEMU is spawned
   * (the daemon writes an SNP guest's certificate table there). A throw fails the start.
   */
  readonly beforeLaunch?: (vm: string, spec: VmSpec, paths: VmPaths) => Promise<void>;
  /** Timeouts passed to every lifecycle (tests shorten them). */
  readonly lifecycle?: Partial<
    Pick<
      LifecycleOptions,
      'qmpTimeoutMs' | 'connectTimeoutMs' | 'powerdownTimeoutMs' | 'qemuOptions' | 'refuseDebugPolicy' | 'snpFirstRunWindowMs'
    >
  >;
}

export class GuestRegistry {
  readonly #o: GuestRegistryOptions;
  readonly #log: Logger;
  readonly #guests = new Map<string, Guest>();
  readonly #listeners = new Set<{ readonly vm: string | null; readonly fn: (event: StreamEvent) => void }>();
  #problems: readonly ConfigProblem[] = [];
  /** Closed until re-attaching is done: a start then could launch a second QEMU for an adopted guest. */
  #open = false;
  /** What reattach.ts works on: these guests, supervised and announced as every other. */
  readonly #reattach: ReattachContext;

  constructor(options: GuestRegistryOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'guests' });
    this.#reattach = {
      runDir: options.runDir,
      platform: options.platform,
      log: this.#log,
      guests: this.#guests,
      supervise: (guest, spec, paths) => this.#lifecycle(guest, spec, paths),
      withDefaults: (spec) => this.#withDefaults(spec),
      daemonEvent: (event, vm) => this.#daemonEvent(event, vm),
    };
  }

  // Section: reading (served from memory) ---------------------------------------------------------

  status(vm: string): VmStatus | undefined {
    const guest = this.#guests.get(vm);
    return guest === undefined ? undefined : this.#statusOf(guest);
  }

  list(): VmListReply {
    const names = [...this.#guests.keys()].sort();
    return { vms: names.map((n) => this.#statusOf(this.#require(n))), configErrors: this.#problems };
  }

  /** The run directories of SNP guests that have (or may have) a QEMU: whose certificate tables are kept. */
  snpGuestPaths(): VmPaths[] {
    const out: VmPaths[] = [];
    for (const guest of this.#guests.values()) {
      if (guest.spec?.sev?.type === 'snp' && guest.hasQemu()) out.push(vmRunPaths(this.#o.runDir, guest.name));
    }
    return out;
  }

  /** Guests by state, for the metrics gauge. */
  countByState(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const guest of this.#guests.values()) {
      const state = this.#statusOf(guest).state;
      counts[state] = (counts[state] ?? 0) + 1;
    }
    return counts;
  }

  /** This launch's record; never an earlier launch's (an owner must not verify a stale one). */
  async measurement(vm: string): Promise<LaunchRecord | null> {
    const path = this.#require(vm).lifecycle?.status().record ?? null;
    return path === null ? null : readRecordFile(path);
  }

  async records(vm: string): Promise<readonly RecordSummary[]> {
    const paths = await listRecords(this.#o.stateDir, vm);
    return paths.map((path) => ({ name: path.slice(path.lastIndexOf('/') + 1, -'.json'.length), path }));
  }

  async record(vm: string, name: string): Promise<LaunchRecord | null> {
    if (!RECORD_NAME.test(name) || name.includes('..')) return null;
    return readRecordFile(join(recordsDir(this.#o.stateDir, vm), `${name}.json`));
  }

  subscribe(fn: (event: StreamEvent) => void, vm: string | null): () => void {
    const entry = { vm, fn };
    this.#listeners.add(entry);
    return () => this.#listeners.delete(entry);
  }

  // Section: configs --------------------------------------------------------------------------------

  /**
   * Apply a config scan: new configs appear (not started), changed ones apply at the next start,
   * removed ones are forgotten once their guest has stopped. Running guests are not touched. A
   * config that became unreadable keeps its guest as it was (its file is broken, not gone).
   */
  reload(scan: VmConfigScan): void {
    this.#problems = scan.problems;
    for (const problem of scan.problems) this.#log.error({ code: problem.code, file: problem.file }, problem.message);
    const broken = new Set(scan.problems.map((p) => p.file));
    for (const [name, spec] of scan.specs) {
      const guest = this.#guests.get(name);
      if (guest === undefined) {
        this.#guests.set(name, new Guest(name, spec));
        this.#daemonEvent('config-added', name);
      } else {
        if (guest.spec === null || guest.removed || canonical(guest.spec) !== canonical(spec)) this.#daemonEvent('config-changed', name);
        guest.spec = spec;
        guest.removed = false;
      }
    }
    for (const guest of [...this.#guests.values()]) {
      if (scan.specs.has(guest.name) || guest.removed) continue;
      if (guest.spec !== null && broken.has(guest.spec.source)) continue;
      this.#daemonEvent('config-removed', guest.name);
      if (guest.hasQemu()) guest.removed = true;
      else this.#guests.delete(guest.name);
    }
  }

  /** Start every autostart guest that has no QEMU (daemon start), a few at a time. */
  async autostart(): Promise<void> {
    if (!this.#open) return;
    const names = [...this.#guests.values()]
      .filter((g) => g.spec?.autostart === true && g.lifecycle === null && !g.hasQemu())
      .map((g) => g.name);
    await inBatches(names, AUTOSTART_CONCURRENCY, (name) =>
      this.start(name).then(
        () => undefined,
        (error: unknown) => this.#log.error({ vm: name, err: error }, 'autostart failed'),
      ),
    );
  }

  // Section: lifecycle operations -----------------------------------------------------------------

  /** Accept operations (start, stop, attest, snapshot, migrate); reading is always served. */
  open(): void {
    this.#open = true;
  }

  close(): void {
    this.#open = false;
  }

  /**
   * Launch a guest; resolves once it is held or running.
   * @throws SUP_ERR_VM_NOT_FOUND, SUP_ERR_VM_STATE (already has a QEMU, or busy), and the error
   *   that failed the launch (QEMU is gone then).
   */
  async start(vm: string): Promise<VmStatus> {
    const guest = this.#operate(vm);
    const left = guest.unsupervised;
    if (left?.state === 'unreachable' && left.persisted !== null && guest.busy === null) {
      // Retry the re-attach (the monitor may be free now); never a second QEMU.
      guest.unsupervised = null;
      guest.busy = 'starting';
      try {
        await adoptPersisted(this.#reattach, left.persisted);
      } finally {
        guest.busy = null;
      }
      const still = guest.unsupervised as Unsupervised | null;
      if (still !== null) throw still.error;
      return this.#statusOf(guest);
    }
    // An orphaned QEMU is never joined by a second one.
    this.#refuseUnsupervised(guest, 'start');
    const paused = guest.active();
    if (paused !== null && paused.state === 'paused' && guest.busy === null) {
      // A guest that ran and was paused since (proxy `stop`, a panic or I/O error action): resume it.
      await paused.resumePaused();
      return paused.status();
    }
    this.#requireIdle(guest, 'start');
    const spec = guest.spec;
    if (spec === null || guest.removed) {
      throw new SupervisorError(
        'SUP_ERR_VM_NOT_FOUND',
        `VM ${vm}'s config was removed; it is kept only until it stops and cannot be started`,
        {
          details: { vm },
        },
      );
    }
    guest.busy = 'starting';
    let lifecycle: VmLifecycle;
    try {
      const paths = await prepareVmRunDir(this.#o.runDir, vm, this.#o.gid === undefined ? {} : { group: this.#o.gid });
      await this.#o.beforeLaunch?.(vm, spec, paths);
      lifecycle = this.#lifecycle(guest, this.#withDefaults(spec), paths);
    } finally {
      guest.busy = null;
    }
    void lifecycle.start().catch(() => undefined); // the outcome is read below and from events
    await settled(lifecycle);
    if (lifecycle.state === 'failed') {
      const outcome = await lifecycle.finished;
      if (outcome.state === 'failed') throw outcome.error;
    }
    return lifecycle.status();
  }

  /**
   * Stop a guest: graceful (powerdown, quit, SIGTERM, SIGKILL), or SIGKILL at once with `force`.
   * Resolves with its final status. @throws SUP_ERR_VM_NOT_FOUND, SUP_ERR_VM_STATE (no QEMU)
   */
  async stop(vm: string, request: StopRequest): Promise<VmStatus> {
    const guest = this.#operate(vm);
    this.#refuseUnsupervised(guest, 'stop');
    const lifecycle = guest.active();
    if (lifecycle === null) {
      throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${vm} is not running (it is ${this.#statusOf(guest).state})`, { details: { vm } });
    }
    await lifecycle.stop(request.force ? 'forced stop requested' : 'stop requested', { force: request.force });
    return lifecycle.status();
  }

  async attest(vm: string, request: AttestRequest): Promise<AttestResult> {
    const guest = this.#operate(vm);
    this.#refuseUnsupervised(guest, request.action);
    const lifecycle = guest.lifecycle;
    if (lifecycle === null) {
      throw new SupervisorError(
        'SUP_ERR_ATTEST_NOT_HELD',
        `VM ${vm} is defined, not held for attestation; ${request.action} applies only to a held guest`,
        {
          details: { vm, state: 'defined', action: request.action },
        },
      );
    }
    return lifecycle.attest(request);
  }

  /**
   * A disk-only snapshot: through sevsup's own monitor session while QEMU runs (held, running or
   * paused), with qemu-img while the guest is stopped.
   * @throws SUP_ERR_SNAPSHOT_VMSTATE, SUP_ERR_SNAPSHOT_UNSUPPORTED, SUP_ERR_SNAPSHOT_FAILED, SUP_ERR_VM_STATE
   */
  async snapshot(vm: string, request: SnapshotRequest): Promise<SnapshotResult> {
    const guest = this.#operate(vm);
    this.#refuseUnsupervised(guest, 'snapshot');
    const lifecycle = guest.active();
    const spec = lifecycle?.spec ?? this.#requireSpec(guest);
    const disks = refuseSnapshot(spec, request.vmstate);
    if (lifecycle === null) return this.#offline(guest, 'snapshot', () => snapshotOffline(spec, disks, request.name, this.#o.qemuImg));
    if (!ONLINE.includes(lifecycle.state)) {
      throw new SupervisorError(
        'SUP_ERR_VM_STATE',
        `VM ${vm} is ${lifecycle.state}; a snapshot is taken while it is held, running, paused or stopped`,
        {
          details: { vm, state: lifecycle.state },
        },
      );
    }
    try {
      await snapshotOnline(lifecycle, disks, request.name);
    } catch (error: unknown) {
      if (!hasCode(error, 'SUP_ERR_QMP_EXECUTE')) throw error;
      throw new SupervisorError(
        'SUP_ERR_SNAPSHOT_FAILED',
        `VM ${vm}: QEMU refused the disk snapshot '${request.name}': ${String(error.details['desc'] ?? error.message)}`,
        {
          details: { vm },
          cause: error,
        },
      );
    }
    this.#log.info({ vm, snapshot: request.name, disks: disks.length }, 'disk snapshot taken');
    return { vm, name: request.name, via: 'qmp', disks: disks.map((d) => d.file) };
  }

  /**
   * The seed's rule: a running SEV guest is not migratable; a stopped one moves offline.
   * @throws SUP_ERR_MIGRATE_SEV, SUP_ERR_MIGRATE_RUNNING, SUP_ERR_MIGRATE_TARGET, SUP_ERR_MIGRATE_FAILED
   */
  async migrate(vm: string, request: MigrateRequest): Promise<MigrateResult> {
    const guest = this.#operate(vm);
    this.#refuseUnsupervised(guest, 'migrate');
    const lifecycle = guest.active();
    const spec = lifecycle?.spec ?? this.#requireSpec(guest);
    refuseMigrate(spec, lifecycle !== null || guest.busy === 'starting', request.target);
    return this.#offline(guest, 'migrate', async () => {
      const result = await exportGuest(spec, request.target);
      this.#log.info({ vm, target: result.target }, 'stopped guest copied for an offline move');
      return result;
    });
  }

  // Section: daemon restarts ------------------------------------------------------------------------

  /**
   * Re-attach the guests a previous daemon left (discover.ts), a few at a time; resolves once each
   * is held, running, paused or known to be gone (then its stale sockets are removed).
   */
  async adopt(found: readonly PersistedVmState[], unreadable: readonly UnreadableState[] = []): Promise<void> {
    await inBatches(found, ATTACH_CONCURRENCY, (persisted) => adoptPersisted(this.#reattach, persisted));
    await inBatches(unreadable, ATTACH_CONCURRENCY, (bad) => adoptUnreadable(this.#reattach, bad));
  }

  /**
   * Daemon shutdown. `keep`: leave every guest as it is (held stays held, running runs on); a
   * launch still in progress is stopped (it never ran). `shutdown`: stop every guest gracefully.
   */
  async shutdown(mode: 'keep' | 'shutdown'): Promise<void> {
    this.#open = false;
    await Promise.all(
      [...this.#guests.values()].map(async (guest) => {
        const lifecycle = guest.active();
        if (lifecycle === null) return;
        if (mode === 'shutdown') {
          await lifecycle.stop('daemon shutdown');
        } else {
          if (lifecycle.state === 'attaching' || lifecycle.state === 'resuming') await settled(lifecycle);
          if (ONLINE.includes(lifecycle.state)) {
            await guest.supervised?.closeProxy();
            await lifecycle.detach();
          } else if (!isTerminal(lifecycle.state)) {
            await lifecycle.stop('daemon shutdown during its launch (it never ran)');
          }
        }
        await guest.supervised?.closeProxy();
      }),
    );
  }

  // Section: internals ------------------------------------------------------------------------------

  /** A supervised lifecycle for `guest` (superviseGuest), wired to the event stream and the metrics. */
  #lifecycle(guest: Guest, spec: VmSpec, paths: VmPaths): VmLifecycle {
    const { platform, binary, binaryArgs, caps, runDir, stateDir } = this.#o;
    const supervised = superviseGuest({
      spec,
      caps,
      platform,
      // A VM's own `qemu:` key names its QEMU on real hardware; the simulator runs the daemon's.
      binary: platform === 'hardware' ? (spec.qemu ?? binary) : binary,
      binaryArgs,
      runDir,
      stateDir,
      paths,
      logger: this.#o.logger,
      ...(spec.holdTimeout === undefined ? { holdTimeoutMs: this.#o.holdTimeoutSeconds * 1000 } : {}),
      ...this.#o.lifecycle,
      detached: { stderrFile: join(paths.dir, QEMU_LOG_FILE) },
      stateFile: vmStateFilePath(paths.dir),
      ...(this.#o.gid === undefined ? {} : { proxyGid: this.#o.gid }),
      onRefusal: (reason) => this.#o.metrics?.refusedQmp(reason),
      replaces: guest.supervised,
      relayEnv: {
        ...(this.#o.hostId === undefined ? {} : { hostId: this.#o.hostId }),
        ...(this.#o.metrics === undefined
          ? {}
          : {
              metrics: {
                attempt: (result: string, seconds: number) => this.#o.metrics?.relayAttempt(result, seconds),
                outcome: (result: string, seconds: number) => this.#o.metrics?.relayOutcome(result, seconds),
              },
            }),
      },
    });
    const { lifecycle } = supervised;
    guest.lifecycle = lifecycle;
    guest.supervised = supervised;
    let launchReported = false;
    lifecycle.onEvent((event) => {
      this.#publish(event);
      const outcome = event.event === 'held' || event.event === 'running' || event.event === 'failed' ? event.event : null;
      if (outcome !== null && !launchReported) {
        launchReported = true;
        this.#o.metrics?.launch(outcome);
      }
      if (event.event === 'failed') this.#o.metrics?.failedCheck(event.code);
    });
    void lifecycle.finished.then(async (outcome) => {
      // Forgotten before anything is awaited: whoever saw the stop (the API's stop reply) must not
      // then still find a guest whose config is gone. Detached (daemon shutdown, or left alone as
      // unreachable): its QEMU runs on; not forgotten.
      if (outcome.state !== 'detached' && guest.lifecycle === lifecycle && guest.removed) {
        this.#guests.delete(guest.name);
        this.#daemonEvent('forgotten', guest.name);
      }
      await supervised.closeProxy();
    });
    return lifecycle;
  }

  /** Run offline work on a stopped guest, excluding a start meanwhile. */
  async #offline<T>(guest: Guest, what: 'snapshot' | 'migrate', work: () => Promise<T>): Promise<T> {
    this.#requireIdle(guest, what);
    guest.busy = what;
    try {
      return await work();
    } finally {
      guest.busy = null;
    }
  }

  #requireIdle(guest: Guest, what: string): void {
    if (guest.busy !== null) {
      throw new SupervisorError(
        'SUP_ERR_VM_STATE',
        `VM ${guest.name} is busy (${guest.busy} in progress); try ${what} again when it is done`,
        {
          details: { vm: guest.name, busy: guest.busy },
        },
      );
    }
    const active = guest.active();
    if (what === 'start' && active !== null) {
      throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${guest.name} is already ${active.state}`, {
        details: { vm: guest.name, state: active.state },
      });
    }
  }

  /** Operations other than `start` (which retries a re-attach) do not apply to an unsupervised QEMU. */
  #refuseUnsupervised(guest: Guest, what: string): void {
    const left = guest.unsupervised;
    if (left === null) return;
    throw new SupervisorError(left.error.code, `${what} refused: ${left.error.message}`, {
      details: { ...left.error.details, state: left.state },
    });
  }

  /** The guest, for an operation that changes something. */
  #operate(vm: string): Guest {
    if (!this.#open) {
      throw new SupervisorError('SUP_ERR_VM_STATE', 'the daemon is re-attaching its guests (or shutting down); try again in a moment', {
        details: { vm },
      });
    }
    return this.#require(vm);
  }

  #require(vm: string): Guest {
    const guest = this.#guests.get(vm);
    if (guest === undefined)
      throw new SupervisorError('SUP_ERR_VM_NOT_FOUND', `no VM named ${JSON.stringify(vm)} is known to the daemon`, { details: { vm } });
    return guest;
  }

  #requireSpec(guest: Guest): VmSpec {
    if (guest.spec === null)
      throw new SupervisorError('SUP_ERR_VM_NOT_FOUND', `VM ${guest.name} has no config any more`, { details: { vm: guest.name } });
    return guest.spec;
  }

  #statusOf(guest: Guest): VmStatus {
    const left = guest.unsupervised;
    if (left !== null) {
      return {
        vm: guest.name,
        state: left.state,
        platform: this.#o.platform,
        sev: guest.spec?.sev !== undefined,
        pid: left.pid,
        record: left.persisted?.record ?? null,
        holdDeadline: null,
        secretsInjected: left.persisted?.secretsInjected ?? 0,
        error: { code: left.error.code, message: left.error.message },
      };
    }
    if (guest.lifecycle !== null) return guest.lifecycle.status();
    return {
      vm: guest.name,
      state: 'defined',
      platform: this.#o.platform,
      sev: guest.spec?.sev !== undefined,
      pid: null,
      record: null,
      holdDeadline: null,
      secretsInjected: 0,
      error: null,
    };
  }

  /** The daemon's defaults for what a config leaves open (the firmware of an OVMF guest). */
  #withDefaults(spec: VmSpec): VmSpec {
    const firmware = this.#o.defaultFirmware;
    return spec.bios === 'ovmf' && spec.firmware === undefined && firmware !== null ? { ...spec, firmware: { path: firmware } } : spec;
  }

  #publish(event: LifecycleEventRecord | StreamEvent): void {
    for (const listener of [...this.#listeners]) {
      if (listener.vm !== null && listener.vm !== event.vm) continue;
      try {
        listener.fn(event);
      } catch (error: unknown) {
        this.#log.error({ err: error }, 'event listener threw');
      }
    }
  }

  #daemonEvent(event: 'config-added' | 'config-changed' | 'config-removed' | 'forgotten' | 'unreachable' | 'orphaned', vm: string): void {
    this.#log.info({ vm, event }, event);
    this.#publish({ event, vm, time: new Date().toISOString() });
  }
}
