// The daemon's guests: one entry per VM config (and per guest re-attached after a restart), each
// with at most one live VmLifecycle and its QMP proxy. It is the daemon's ControlTarget.
// Owns: which guest has which lifecycle, start/stop/attach/detach of them, config reloads (new
// configs appear, removed ones are forgotten once stopped, changed ones apply at next start),
// the per-guest exclusion of offline work against a start, and the event fan-out.
// Must not: know the launch order or judge QEMU's answers (vm/lifecycle.ts), decide QMP commands
// (proxy/), or apply the seed's snapshot/migration rules itself (guest-ops.ts).
import { rename, stat } from 'node:fs/promises';
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
import { formatVmConfig, parseVmConfig } from '../config/vm-config.js';
import type { VmSpec } from '../config/vm-spec.js';
import { SupervisorError, hasCode } from '../errors.js';
import type { HostCaps } from '../host/host-caps.js';
import type { Logger } from '../log.js';
import { findQemuByCmdline } from '../process/adopt.js';
import { prepareVmRunDir, vmRunPaths, type VmPaths } from '../process/run-dir.js';
import { superviseGuest, type SupervisedGuest } from '../guest/supervised.js';
import type { VmLifecycle } from '../vm/lifecycle.js';
import type { LifecycleOptions } from '../vm/lifecycle-options.js';
import type { LifecycleEventRecord } from '../vm/types.js';
import type { MeasurementRecord, RecordPlatform } from '../vm/record.js';
import { listRecords, readRecordFile, recordsDir } from '../vm/record-store.js';
import { VM_STATE_SCHEMA, vmStateFilePath, type PersistedVmState } from '../vm/state-file.js';
import { isTerminal, type VmState } from '../vm/state.js';
import { readPidFile, removeStaleRunFiles, type UnreadableState } from './discover.js';
import { exportGuest, refuseMigrate, refuseSnapshot, snapshotOffline, snapshotOnline } from './guest-ops.js';
import type { VmConfigScan } from './vm-configs.js';

/** Guests launched at once at daemon start: QEMU start-up is CPU-bound, and the host has few cores. */
export const AUTOSTART_CONCURRENCY = 4;
/** Re-attaching is a QMP handshake and two queries per guest: cheap, but not unbounded. */
export const ATTACH_CONCURRENCY = 8;
/** A guest's state once a start or attach has settled (or it ended). */
const SETTLED: readonly VmState[] = ['held', 'running', 'paused', 'stopped', 'failed'];
/** States in which the lifecycle has its own monitor session for a disk snapshot. */
const ONLINE: readonly VmState[] = ['held', 'running', 'paused'];
/** Record names as the store writes them (`2026-11-26T10-35-20.123Z`, `latest`). */
const RECORD_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** QEMU's stderr (appended per launch) in the guest's run dir: it outlives a daemon restart. */
export const QEMU_LOG_FILE = 'qemu.log';

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
  /** Group of the per-VM run dirs and proxy sockets. */
  readonly gid?: number;
  readonly logger: Logger;
  readonly metrics?: {
    launch(outcome: string): void;
    failedCheck(code: string): void;
    refusedQmp(reason: string): void;
  };
  /** @default 'qemu-img' from PATH */
  readonly qemuImg?: string;
  /** Timeouts passed to every lifecycle (tests shorten them). */
  readonly lifecycle?: Partial<Pick<LifecycleOptions, 'qmpTimeoutMs' | 'connectTimeoutMs' | 'powerdownTimeoutMs' | 'qemuOptions' | 'refuseDebugPolicy'>>;
}

class Guest {
  /** The current config; null for a re-attached guest whose config file is gone. */
  spec: VmSpec | null;
  /** Its config file was removed: forget the guest once it has stopped. */
  removed = false;
  lifecycle: VmLifecycle | null = null;
  /** The current supervision (lifecycle and proxy), once one was made. */
  supervised: SupervisedGuest | null = null;
  /** Offline work or a launch being prepared; nothing else may start meanwhile. */
  busy: 'starting' | 'snapshot' | 'migrate' | null = null;
  /**
   * A QEMU of this guest that sevsup does not supervise, left alone and shown as such: its monitor
   * was unreachable on re-attach (`start` retries), or its state file is unreadable and nothing
   * proves which process is its QEMU (`orphaned`).
   */
  unsupervised: Unsupervised | null = null;

  constructor(
    readonly name: string,
    spec: VmSpec | null,
  ) {
    this.spec = spec;
  }

  /** A lifecycle that has (or may have) a QEMU. */
  active(): VmLifecycle | null {
    return this.lifecycle !== null && !isTerminal(this.lifecycle.state) ? this.lifecycle : null;
  }

  /** A QEMU may run for it, supervised or not: never launch another, never forget it. */
  hasQemu(): boolean {
    return this.active() !== null || this.unsupervised !== null;
  }
}

interface Unsupervised {
  readonly state: 'unreachable' | 'orphaned';
  readonly pid: number | null;
  readonly error: SupervisorError;
  /** What re-attaching needs (unreachable only). */
  readonly persisted: PersistedVmState | null;
}

export class GuestRegistry {
  readonly #o: GuestRegistryOptions;
  readonly #log: Logger;
  readonly #guests = new Map<string, Guest>();
  readonly #listeners = new Set<{ readonly vm: string | null; readonly fn: (event: StreamEvent) => void }>();
  #problems: readonly ConfigProblem[] = [];
  /** Closed until re-attaching is done: a start then could launch a second QEMU for an adopted guest. */
  #open = false;

  constructor(options: GuestRegistryOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'guests' });
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
  async measurement(vm: string): Promise<MeasurementRecord | null> {
    const path = this.#require(vm).lifecycle?.status().record ?? null;
    return path === null ? null : readRecordFile(path);
  }

  async records(vm: string): Promise<readonly RecordSummary[]> {
    const paths = await listRecords(this.#o.stateDir, vm);
    return paths.map((path) => ({ name: path.slice(path.lastIndexOf('/') + 1, -'.json'.length), path }));
  }

  async record(vm: string, name: string): Promise<MeasurementRecord | null> {
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
    const names = [...this.#guests.values()].filter((g) => g.spec?.autostart === true && g.lifecycle === null && !g.hasQemu()).map((g) => g.name);
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
        await this.#adoptOne(left.persisted);
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
      throw new SupervisorError('SUP_ERR_VM_NOT_FOUND', `VM ${vm}'s config was removed; it is kept only until it stops and cannot be started`, {
        details: { vm },
      });
    }
    guest.busy = 'starting';
    let lifecycle: VmLifecycle;
    try {
      const paths = await prepareVmRunDir(this.#o.runDir, vm, this.#o.gid === undefined ? {} : { group: this.#o.gid });
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
      throw new SupervisorError('SUP_ERR_ATTEST_NOT_HELD', `VM ${vm} is defined, not held for attestation; ${request.action} applies only to a held guest`, {
        details: { vm, state: 'defined', action: request.action },
      });
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
      throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${vm} is ${lifecycle.state}; a snapshot is taken while it is held, running, paused or stopped`, {
        details: { vm, state: lifecycle.state },
      });
    }
    try {
      await snapshotOnline(lifecycle, disks, request.name);
    } catch (error: unknown) {
      if (!hasCode(error, 'SUP_ERR_QMP_EXECUTE')) throw error;
      throw new SupervisorError('SUP_ERR_SNAPSHOT_FAILED', `VM ${vm}: QEMU refused the disk snapshot '${request.name}': ${String(error.details['desc'] ?? error.message)}`, {
        details: { vm },
        cause: error,
      });
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
    await inBatches(found, ATTACH_CONCURRENCY, (persisted) => this.#adoptOne(persisted));
    await inBatches(unreadable, ATTACH_CONCURRENCY, (bad) => this.#adoptUnreadable(bad));
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

  async #adoptOne(persisted: PersistedVmState): Promise<void> {
    const known = this.#guests.get(persisted.vm);
    let spec: VmSpec;
    try {
      spec = parseVmConfig(persisted.config, persisted.configSource);
    } catch (error: unknown) {
      this.#log.error({ vm: persisted.vm, pid: persisted.pid, err: error }, 'cannot read the launch config in the state file; guest not re-attached');
      return;
    }
    const guest = known ?? new Guest(persisted.vm, null);
    if (known === undefined) {
      // Its config file is gone: supervise it until it stops, then forget it.
      guest.removed = true;
      this.#guests.set(persisted.vm, guest);
    }
    // QEMU's pid file must agree with the state file; either way attach() adopts only a process
    // whose start time and command line match (a reused pid is never taken for the guest).
    const pidFile = await readPidFile(this.#o.runDir, persisted.vm);
    if (pidFile !== null && pidFile !== persisted.pid) {
      this.#log.warn({ vm: persisted.vm, pidFile, pid: persisted.pid }, 'qemu.pid disagrees with state.json; checking the recorded process');
    }
    const lifecycle = this.#lifecycle(guest, spec, vmRunPaths(this.#o.runDir, persisted.vm));
    void lifecycle.attach(persisted).catch(() => undefined);
    await settled(lifecycle);
    const error = lifecycle.status().error;
    if (error !== null && error.code === 'SUP_ERR_VM_UNREACHABLE') {
      // Its QEMU runs but could not be talked to: left alone, shown as unreachable.
      guest.lifecycle = null;
      guest.unsupervised = {
        state: 'unreachable',
        pid: persisted.pid,
        error: new SupervisorError('SUP_ERR_VM_UNREACHABLE', error.message, { details: { vm: persisted.vm, pid: persisted.pid } }),
        persisted,
      };
      this.#daemonEvent('unreachable', persisted.vm);
      return;
    }
    if (isTerminal(lifecycle.state)) await removeStaleRunFiles(this.#o.runDir, persisted.vm);
    this.#log.info({ vm: persisted.vm, was: persisted.state, state: lifecycle.state, pid: lifecycle.pid }, 're-attached after restart');
  }

  /**
   * A state file that exists but cannot be used. Said loudly; then its QEMU is looked for by
   * command line (only this VM's QEMU names its private monitor socket). Exactly one such process
   * that started before sevsup last wrote the file, with a config to supervise it by, is adopted
   * as a guest that ran (QEMU's `prelaunch` still fails it closed: a hold cannot be restored);
   * anything less certain is shown as `orphaned`, with why, and left alone.
   */
  async #adoptUnreadable(bad: UnreadableState): Promise<void> {
    const { vm, file, reason } = bad;
    this.#log.error({ vm, file, reason }, `state file of VM ${vm} is unusable: ${reason}; looking for its QEMU by command line`);
    const paths = vmRunPaths(this.#o.runDir, vm);
    const written = await stat(file).then((s) => s.mtime, () => null);
    const candidates = findQemuByCmdline(paths.monitorSocket);
    const guest = this.#guests.get(vm) ?? new Guest(vm, null);
    if (!this.#guests.has(vm)) {
      guest.removed = true;
      this.#guests.set(vm, guest);
    }
    const aside = `${file}.unreadable`;
    if (candidates.length === 0) {
      // Nothing runs for it: keep the bad file for inspection, out of the next daemon's way.
      await rename(file, aside).catch(() => undefined);
      await removeStaleRunFiles(this.#o.runDir, vm);
      if (guest.spec === null) this.#guests.delete(vm);
      this.#log.warn({ vm, file: aside }, 'no QEMU of this VM is running; the unusable state file was moved aside');
      return;
    }
    const orphan = (why: string): void => {
      const pid = candidates.length === 1 ? (candidates[0]?.pid ?? null) : null;
      const error = new SupervisorError(
        'SUP_ERR_VM_ORPHANED',
        `VM ${vm}: its state file ${file} is unusable (${reason}), and ${why}; sevsup left it alone. ` +
          `Stop that QEMU by hand (pids: ${candidates.map((c) => c.pid).join(', ')}), or fix the file and restart the daemon`,
        { details: { vm, file, pids: candidates.map((c) => c.pid) } },
      );
      guest.unsupervised = { state: 'orphaned', pid, error, persisted: null };
      this.#log.error({ vm, pids: candidates.map((c) => c.pid), why }, 'guest orphaned: its QEMU runs unsupervised');
      this.#daemonEvent('orphaned', vm);
    };
    const [only] = candidates;
    if (candidates.length > 1 || only === undefined) return orphan(`${candidates.length} processes name its monitor socket`);
    if (written === null || only.startedAt.getTime() > written.getTime() + 1000) {
      return orphan(`process ${only.pid} started after sevsup last wrote the file, so nothing proves it is the guest's QEMU`);
    }
    if (guest.spec === null || guest.removed) return orphan(`there is no config for it to be supervised by`);
    const spec = this.#withDefaults(guest.spec);
    await rename(file, aside).catch(() => undefined);
    this.#log.warn({ vm, pid: only.pid, file: aside }, 'adopting the QEMU its command line and start time name, with the current config');
    await this.#adoptOne({
      schema: VM_STATE_SCHEMA,
      vm,
      // A guest that ran: QEMU's own status decides running or paused (prelaunch fails closed).
      state: 'paused',
      platform: this.#o.platform,
      sev: spec.sev !== undefined,
      pid: only.pid,
      startTime: only.startTime,
      monitorSocket: paths.monitorSocket,
      stderrFile: join(paths.dir, QEMU_LOG_FILE),
      record: null,
      holdDeadline: null,
      secretsInjected: 0,
      ran: true,
      config: canonical(spec),
      configSource: spec.source,
      error: null,
      updatedAt: new Date().toISOString(),
    });
  }

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
      await supervised.closeProxy();
      // Detached (daemon shutdown, or left alone as unreachable): its QEMU runs on; not forgotten.
      if (outcome.state === 'detached') return;
      if (guest.lifecycle === lifecycle && guest.removed) {
        this.#guests.delete(guest.name);
        this.#daemonEvent('forgotten', guest.name);
      }
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
      throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${guest.name} is busy (${guest.busy} in progress); try ${what} again when it is done`, {
        details: { vm: guest.name, busy: guest.busy },
      });
    }
    const active = guest.active();
    if (what === 'start' && active !== null) {
      throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${guest.name} is already ${active.state}`, { details: { vm: guest.name, state: active.state } });
    }
  }

  /** Operations other than `start` (which retries a re-attach) do not apply to an unsupervised QEMU. */
  #refuseUnsupervised(guest: Guest, what: string): void {
    const left = guest.unsupervised;
    if (left === null) return;
    throw new SupervisorError(left.error.code, `${what} refused: ${left.error.message}`, { details: { ...left.error.details, state: left.state } });
  }

  /** The guest, for an operation that changes something. */
  #operate(vm: string): Guest {
    if (!this.#open) {
      throw new SupervisorError('SUP_ERR_VM_STATE', 'the daemon is re-attaching its guests (or shutting down); try again in a moment', { details: { vm } });
    }
    return this.#require(vm);
  }

  #require(vm: string): Guest {
    const guest = this.#guests.get(vm);
    if (guest === undefined) throw new SupervisorError('SUP_ERR_VM_NOT_FOUND', `no VM named ${JSON.stringify(vm)} is known to the daemon`, { details: { vm } });
    return guest;
  }

  #requireSpec(guest: Guest): VmSpec {
    if (guest.spec === null) throw new SupervisorError('SUP_ERR_VM_NOT_FOUND', `VM ${guest.name} has no config any more`, { details: { vm: guest.name } });
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

/** Resolves once the lifecycle is held, running or paused, or has ended. */
export function settled(lifecycle: VmLifecycle): Promise<void> {
  return new Promise((resolve) => {
    const done = (): boolean => SETTLED.includes(lifecycle.state);
    if (done()) {
      resolve();
      return;
    }
    const unsubscribe = lifecycle.onEvent(() => {
      if (!done()) return;
      unsubscribe();
      resolve();
    });
    void lifecycle.finished.then(() => {
      unsubscribe();
      resolve();
    });
  });
}

/** Run `work` over `items`, at most `limit` at a time. */
async function inBatches<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++];
      if (item !== undefined) await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner));
}

function canonical(spec: VmSpec): string {
  try {
    return formatVmConfig(spec);
  } catch {
    return JSON.stringify(spec);
  }
}
