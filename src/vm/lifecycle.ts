// The launch lifecycle of one guest: the only place that knows the order (style-anchors §6.9,
// DESIGN "Data flow"): preflight → run dir → argv → spawn paused (-S) → QMP → query-sev checks →
// launch measurement → record (durable) → [hold for the owner] → cont → running → watch.
// SEV-SNP: query-sev checks → expected-digest record (durable) → [hold] → cont → the first-run
// window (QEMU exiting in it is a failed launch) → running.
// Owns: that order, driving the VM's state machine, and the fail-closed end: once QEMU is spawned,
// any failed check, refusal or error before `cont` stops QEMU (quit → SIGTERM → SIGKILL) and never
// resumes it. One AbortController per launch: stop() before the guest ran and detach() abort it.
// Beside it, one job each: measure.ts (the SEV step), snp-launch.ts (the SNP step), hold.ts (the
// owner's hold and actions), hold-wait.ts (the hold's wait) with relay-step.ts (asking the owner's
// service during it), attach.ts (re-attach), guest-record.ts (state, facts, events, the
// state file), watch.ts + guest-events.ts (QEMU after the launch), failure.ts (naming a failure).
// Must not: build argv strings (its `argv` option does), parse QMP bytes (qmp/), or log or report
// secrets. Tests replace only LifecycleDeps (preflight, launch).
// Daemon mode: QEMU runs detached and every transition is persisted to state.json, so a restarted
// daemon can attach() to the same QEMU (held stays held with its deadline, running stays running,
// never re-measured or resumed by mistake) and a stopping daemon can detach() without touching it.
import type { VmSpec } from '../config/vm-spec.js';
import { hasCode, SupervisorError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { QemuExit, QemuProcess } from '../process/launcher.js';
import { readProcStat } from '../process/pid.js';
import { prepareVmRunDir } from '../process/run-dir.js';
import { QmpClient } from '../qmp/client.js';
import { cont, queryStatus } from '../qmp/commands.js';
import { adoptPersisted, endGone, inspectAdopted, leaveUnreachable, type ReattachPlan } from './attach.js';
import { checkDebugPolicy } from './debug-policy.js';
import { explainFailure, phaseOf } from './failure.js';
import { asSnpLaunchFailure, watchSnpFirstRun } from './snp-first-run.js';
import { AttestationHold, OwnerActions } from './hold.js';
import { waitForOwner } from './hold-wait.js';
import { relayToOwner } from './relay-step.js';
import { GuestWatch } from './watch.js';
import {
  DEFAULT_HOLD_TIMEOUT_MS,
  DEFAULT_LIFECYCLE_DEPS,
  DEFAULT_SNP_FIRST_RUN_WINDOW_MS,
  type LifecycleDeps,
  type LifecycleOptions,
} from './lifecycle-options.js';
import type { Preflight } from './preflight.js';
import { hashLaunchFiles, measureSevLaunch, type LaunchFileDigests, type MeasureContext } from './measure.js';
import { recordSnpLaunch, startSnpDigest } from './snp-launch.js';
import type { PreparedSnpDigest } from '../attestation/snp-inputs.js';
import type { PersistedVmState } from './state-file.js';
import { GuestRecord } from './guest-record.js';
import { isTerminal, type VmState } from './state.js';
import type { AttestRequest, AttestResult, LifecycleEventRecord, LifecycleOutcome, VmStatus } from './types.js';

/** Commands the daemon may send on sevsup's own monitor session (disk snapshots), by state. */
const MONITOR_STATES: readonly VmState[] = ['held', 'running', 'paused'];

/**
 * One launch of one guest. Create it, subscribe with onEvent(), call start(); `finished` settles
 * when the guest is gone. The attest methods act only while `held`.
 */
export class VmLifecycle {
  readonly vm: string;
  /** Settles once, when the VM reaches `stopped` or `failed`, or is detached. Never rejects. */
  readonly finished: Promise<LifecycleOutcome>;
  readonly #o: LifecycleOptions;
  readonly #deps: LifecycleDeps;
  readonly #log: Logger;
  readonly #vmLog: Logger;
  /** The guest's state, facts, events and state file. */
  readonly #g: GuestRecord;
  #preflight: Preflight | undefined;
  #stopReason: string | null = null;
  /** The hold's decision and the serial queue of attest actions. */
  readonly #hold = new AttestationHold();
  /** The owner's actions on a held guest (approve, reject, inject-secret). */
  readonly #owner: OwnerActions;
  /**
   * One per launch: stop() before the guest ran and detach() abort it; every launch step checks it
   * before it starts and the hold ends on it. start() and attach() then end as asked.
   */
  readonly #abort = new AbortController();
  /** QEMU's events and end, once the launch is through. */
  readonly #watch: GuestWatch;
  #hashing: Promise<LaunchFileDigests> | undefined;
  /** SEV-SNP: the expected digest up to the VMSAs, started at spawn beside #hashing. */
  #snpDigest: Promise<PreparedSnpDigest> | undefined;
  #detached = false;
  #force = false;

  constructor(options: LifecycleOptions) {
    this.#o = options;
    this.vm = options.spec.name;
    this.#deps = { ...DEFAULT_LIFECYCLE_DEPS, ...options.deps };
    // Collaborators (launcher, QMP client) bind their own `component`: they get the VM's logger,
    // not this one, so no line carries `component` twice.
    this.#vmLog = (options.logger ?? silentLogger()).child({ vm: this.vm });
    this.#log = this.#vmLog.child({ component: 'lifecycle' });
    this.#g = new GuestRecord({
      spec: options.spec,
      platform: options.platform,
      ...(options.stateFile === undefined ? {} : { stateFile: options.stateFile }),
      ...(options.detached === undefined ? {} : { stderrFile: options.detached.stderrFile }),
      logger: this.#log,
    });
    this.finished = this.#g.finished;
    this.#watch = new GuestWatch(this.#g, this.#log, {
      detached: () => this.#detached,
      stopRequested: () => this.#stopReason !== null,
      force: () => this.#force,
      destroy: () => this.#destroy(),
      ...(options.powerdownTimeoutMs === undefined ? {} : { powerdownTimeoutMs: options.powerdownTimeoutMs }),
    });
    this.#owner = new OwnerActions(
      this.#g,
      this.#hold,
      this.#log,
      () => this.#preflight?.firmware ?? null,
      this.#snp,
      options.spec.attest === 'relay',
    );
  }

  get state(): VmState {
    return this.#g.state;
  }

  /** The config this launch uses (a changed config file applies at the next launch). */
  get spec(): VmSpec {
    return this.#o.spec;
  }

  get pid(): number | null {
    return this.#g.proc?.pid ?? null;
  }

  get sev(): boolean {
    return this.#g.sev;
  }

  /** Subscribe to lifecycle events; returns the unsubscribe function. */
  onEvent(listener: (event: LifecycleEventRecord) => void): () => void {
    return this.#g.onEvent(listener);
  }

  status(): VmStatus {
    return this.#g.status();
  }

  /**
   * True until sevsup itself has resumed the guest after its checks (and the owner's approval):
   * until then only sevsup may `cont` it, so the proxy refuses `cont` from anyone else. The lock
   * is for the attestation window only: a guest that ran and was paused since (a proxy `stop`, a
   * panic or I/O error with `set-action ... pause`) may be resumed by its operator.
   */
  get resumeLocked(): boolean {
    return !this.#g.ran;
  }

  /**
   * Launch the guest and bring it to `running` (through `held` when holding). Resolves once it
   * runs, or once it was stopped on request before it ran.
   * @throws the SupervisorError that made it fail (QEMU is gone by then; state `failed`).
   */
  async start(): Promise<void> {
    this.#requireFresh();
    this.#g.move('starting');
    this.#g.emit({ event: 'starting', platform: this.#o.platform, sev: this.sev });
    try {
      await this.#launch();
      if (this.sev) {
        this.#g.move('measuring');
        if (this.#snp) await this.#recordSnp();
        else await this.#measure();
      }
      if (this.#holds()) await this.#waitForOwner();
      this.#abort.signal.throwIfAborted();
      await this.#resume();
    } catch (error: unknown) {
      await this.#failClosed(error);
      return;
    }
    this.#watch.start();
  }

  /**
   * The supervisor's own QMP session on QEMU's private monitor (launch and re-attach alike), then
   * the filtering proxy in front of it (onMonitor).
   */
  async #connectMonitor(path: string, proc: QemuProcess): Promise<QmpClient> {
    const qmp = await QmpClient.connect({
      path,
      isAlive: () => proc.isAlive(),
      exited: proc.exited,
      // OOB on the supervisor's own session lets proxy clients use the yank commands QEMU offers
      // out of band (the proxy still decides what passes).
      oob: true,
      logger: this.#vmLog,
      ...(this.#o.qmpTimeoutMs === undefined ? {} : { commandTimeoutMs: this.#o.qmpTimeoutMs }),
      ...(this.#o.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: this.#o.connectTimeoutMs }),
    });
    this.#g.qmp = qmp;
    await this.#o.onMonitor?.(qmp);
    return qmp;
  }

  /** The fail-closed end of start() and attach() before the guest ran: rethrow what failed. */
  async #failClosed(error: unknown): Promise<void> {
    if (this.#detached) {
      // detach() ended a hold (QEMU is left as it is), or re-attach could not reach QEMU.
      if (hasCode(error, 'SUP_ERR_VM_UNREACHABLE')) throw error;
      return;
    }
    await this.#endBeforeRunning(error);
    if (this.#g.state === 'failed' && this.#g.error !== null) throw this.#g.error;
  }

  /**
   * Take over a QEMU a previous supervisor left running (daemon restart), from its persisted state:
   * adopt the process (pid + start time + command line), reconnect to its private monitor, put the
   * proxy in front (onMonitor), and restore the state without touching the guest: held stays held
   * (paused, resume-locked, same deadline, same record; never re-measured), running stays running.
   * A guest caught mid-launch, or held but found running, is destroyed (fail closed). A QEMU that
   * is gone ends the lifecycle as stopped (it was stopping) or failed, with what is known.
   * Resolves once the state is restored (for a held guest: once approved, like start()).
   * @throws the SupervisorError that ended it (state `failed`).
   */
  async attach(persisted: PersistedVmState): Promise<void> {
    this.#requireFresh();
    this.#g.paths = this.#o.paths;
    this.#g.recordPath = persisted.record;
    this.#g.secretsInjected = persisted.secretsInjected;
    this.#g.ran = persisted.ran;
    this.#g.startTime = persisted.startTime;
    this.#g.move('attaching');
    let plan: ReattachPlan;
    try {
      const proc = adoptPersisted(persisted, this.#vmLog);
      if (proc === null) {
        endGone(this.#g, persisted);
        if (this.#g.state === 'failed' && this.#g.error !== null) throw this.#g.error;
        return;
      }
      this.#g.proc = proc;
      let status: string;
      try {
        const qmp = await this.#connectMonitor(persisted.monitorSocket, proc);
        const heldSevState = !this.sev ? null : this.#snp ? 'launch-update' : 'launch-secret';
        ({ status, plan } = await inspectAdopted(qmp, persisted, heldSevState, (what, run) => this.#step(what, run)));
      } catch (error: unknown) {
        // Re-attach destroys only what QEMU's own answers show to be wrong, never what it could
        // not look at: a monitor that is busy (someone else holds it) or silent is left alone.
        if (proc.isAlive()) {
          this.#detached = true;
          await leaveUnreachable(this.#g, proc, error, this.#log);
        }
        throw error;
      }
      this.#g.emit({ event: 'attached', pid: proc.pid, was: persisted.state, qemuStatus: status });
      if (plan.kind === 'destroy') {
        throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm}: re-attached after a restart, but ${plan.why}; QEMU was stopped`, {
          details: { vm: this.vm, was: persisted.state, qemuStatus: status },
        });
      }
      if (plan.kind === 'hold') {
        await this.#waitForOwner(persisted.holdDeadline === null ? undefined : new Date(persisted.holdDeadline));
        this.#abort.signal.throwIfAborted();
        await this.#resume();
      }
    } catch (error: unknown) {
      await this.#failClosed(error);
      return;
    }
    if (plan.kind === 'stop') {
      this.#watch.start();
      void this.#watch.shutdown('stop requested before the restart', false);
      return;
    }
    if (plan.kind === 'running' || plan.kind === 'paused') {
      this.#g.move(plan.kind);
      this.#g.running.resolve();
      if (plan.kind === 'running') this.#g.emit({ event: 'running', pid: this.#g.requireProc().pid });
      else this.#g.emit({ event: 'paused', reason: 'QEMU reports it paused' });
    }
    this.#watch.start();
  }

  /**
   * Let go of QEMU without touching it (daemon shutdown with `on-shutdown: keep`): a held guest
   * stays paused and held, a running one runs on; the QMP session is closed after the state file
   * is written. The lifecycle is finished with afterwards: `finished` settles as `detached`, and
   * stop() does nothing.
   * @throws SUP_ERR_VM_STATE unless held, running or paused (a launch in progress is stopped instead).
   */
  async detach(): Promise<void> {
    if (!MONITOR_STATES.includes(this.#g.state)) {
      throw new SupervisorError(
        'SUP_ERR_VM_STATE',
        `VM ${this.vm} is ${this.#g.state}; only a held, running or paused guest can be left running`,
      );
    }
    this.#detached = true;
    this.#abort.abort(new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} was detached`));
    this.#watch.stopListening();
    await this.#g.persisted();
    await this.#g.qmp?.close();
    this.#g.proc?.release();
    this.#log.info({ state: this.#g.state }, 'detached; QEMU left running');
    this.#g.finish({ state: 'detached', ran: this.#g.ran });
  }

  /**
   * Send one command on sevsup's own monitor session (the daemon's disk snapshots). The caller
   * decides what is allowed; this only requires a QEMU under supervision.
   * @throws SUP_ERR_VM_STATE unless held, running or paused; the QMP client's errors.
   */
  monitorExecute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (!MONITOR_STATES.includes(this.#g.state) || this.#detached) {
      return Promise.reject(
        new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} is ${this.#g.state}; its monitor is not available`, {
          details: { vm: this.vm, state: this.#g.state },
        }),
      );
    }
    return this.#g.requireQmp().execute(command, args);
  }

  /** Dispatch an attest request (the control API's entry); hold.ts runs it. */
  attest(request: AttestRequest): Promise<AttestResult> {
    return this.#owner.attest(request);
  }

  /** Let a held guest run. @throws SUP_ERR_ATTEST_NOT_HELD unless held; the error that failed the resume. */
  approve(): Promise<AttestResult> {
    return this.#owner.attest({ action: 'approve' });
  }

  /** Destroy a held guest; it never runs. @throws SUP_ERR_ATTEST_NOT_HELD unless held. */
  reject(): Promise<AttestResult> {
    return this.#owner.attest({ action: 'reject' });
  }

  /** `sev-inject-launch-secret` into a held guest. @throws SUP_ERR_ATTEST_NOT_HELD, SUP_ERR_SECRET_NO_AREA, SUP_ERR_SECRET_REFUSED. */
  injectSecret(request: { readonly packetHeader: string; readonly secret: string; readonly gpa?: number }): Promise<AttestResult> {
    return this.#owner.attest({ action: 'inject-secret', ...request });
  }

  /**
   * Resume a guest that ran and was paused since (the API's `start` on a paused guest). Never
   * before sevsup's own first `cont`: that is approve()'s, after every check.
   * @throws SUP_ERR_VM_STATE unless paused after it ran; SUP_ERR_QMP_EXECUTE with QEMU's refusal.
   */
  async resumePaused(): Promise<void> {
    if (this.#g.state !== 'paused' || !this.#g.ran || this.#detached) {
      throw new SupervisorError(
        'SUP_ERR_VM_STATE',
        `VM ${this.vm} is ${this.#g.state}; only a guest that ran and was paused since can be resumed this way`,
        {
          details: { vm: this.vm, state: this.#g.state },
        },
      );
    }
    const qmp = this.#g.requireQmp();
    await cont(qmp);
    // QEMU's RESUME event moves the state (#onQmpEvent); confirm in case it was missed.
    const status = await queryStatus(qmp);
    if (status.running && this.#g.state === 'paused') {
      this.#g.move('running');
      this.#g.emit({ event: 'running', pid: this.#g.requireProc().pid });
    }
    this.#log.info({ state: this.#g.state }, 'paused guest resumed on request');
  }

  /**
   * Stop the guest: a running one gets system_powerdown first, a paused or held one is told to
   * quit at once; one still starting is aborted (it never runs). Resolves with the outcome.
   */
  stop(reason = 'stop requested', options: { readonly force?: boolean } = {}): Promise<LifecycleOutcome> {
    if (isTerminal(this.#g.state) || this.#detached) return this.finished;
    if (options.force === true) {
      this.#force = true;
      // Already stopping: escalate the ladder to SIGKILL now.
      if (this.#stopReason !== null) void this.#g.proc?.kill().catch(() => undefined);
    }
    if (this.#stopReason !== null) return this.finished;
    this.#stopReason = reason;
    if (!this.#g.ran) this.#abort.abort(new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} was stopped before it ran`));
    this.#log.info({ reason }, 'stop requested');
    if (this.#g.state === 'defined') {
      this.#g.move('stopped');
      this.#g.finish({ state: 'stopped', how: 'never started', ran: false });
      return this.finished;
    }
    if (this.#g.state === 'running' || this.#g.state === 'paused') {
      void this.#watch.shutdown(reason, this.#g.state === 'running');
    } else if (this.#g.proc !== undefined) {
      // Starting/measuring/resuming: end QEMU now; the pending step fails and start() ends it.
      void this.#destroy().catch(() => undefined);
    }
    return this.finished;
  }

  // Section: the launch steps, in order ---------------------------------------------------------

  /** preflight → run dir → argv → spawn paused → QMP negotiated. MUST be the first step. */
  async #launch(): Promise<void> {
    const { spec } = this.#o;
    const debugWarning = checkDebugPolicy(spec, this.#o.refuseDebugPolicy === true);
    if (debugWarning !== null) this.#log.warn({ event: 'debug-policy' }, debugWarning);
    this.#preflight = await this.#deps.preflight(spec);
    this.#abort.signal.throwIfAborted();
    const paths = this.#o.paths ?? (await prepareVmRunDir(this.#o.runDir, this.vm));
    this.#g.paths = paths;
    const argv = this.#o.argv({
      spec,
      caps: this.#o.caps,
      paths: {
        monitorSocket: paths.monitorSocket,
        pidFile: paths.pidFile,
        ...(spec.serial === 'file' ? { serialLog: paths.serialLog } : {}),
      },
      ...(this.#o.qemuOptions === undefined ? {} : { options: this.#o.qemuOptions }),
      backingChains: this.#preflight.disks,
      ...(this.#preflight.snp === undefined ? {} : { snp: this.#preflight.snp }),
    });
    this.#abort.signal.throwIfAborted();
    this.#g.proc = await this.#deps.launch({
      binary: this.#o.binary,
      argv: [...(this.#o.binaryArgs ?? []), ...argv],
      logger: this.#vmLog,
      ...(this.#o.detached === undefined ? {} : { detached: true, stderrFile: this.#o.detached.stderrFile }),
      ready: async (proc) => {
        this.#g.proc = proc;
        this.#g.startTime = readProcStat(proc.pid)?.startTime ?? null;
        this.#g.persist();
        this.#g.emit({ event: 'spawned', pid: proc.pid });
        if (this.sev) this.#hashing = hashLaunchFiles(this.#o.spec);
        if (this.#snp) this.#snpDigest = this.#startSnpDigest();
        await this.#connectMonitor(paths.monitorSocket, proc);
      },
    });
    this.#abort.signal.throwIfAborted();
  }

  /** The checks and the durable record (measure.ts). MUST run after #launch, with QEMU paused. */
  async #measure(): Promise<void> {
    this.#g.recordPath = await measureSevLaunch(this.#measureContext());
  }

  /**
   * SEV-SNP: the checks and the durable expected-digest record (snp-launch.ts); no measurement
   * command exists. MUST run after #launch, with QEMU paused.
   */
  async #recordSnp(): Promise<void> {
    const snp = this.#preflight?.snp ?? null;
    if (snp === null) throw new SupervisorError('SUP_ERR_INTERNAL', `VM ${this.vm}: no SNP preflight`);
    this.#g.recordPath = await recordSnpLaunch({ ...this.#measureContext(), snp, digest: this.#snpDigest ?? this.#startSnpDigest() });
  }

  /** SEV-SNP: the digest's part that needs no answer from QEMU, computed while QEMU starts (snp-launch.ts). */
  #startSnpDigest(): Promise<PreparedSnpDigest> {
    const firmware = this.#preflight?.snpFirmware;
    if (firmware === undefined) throw new SupervisorError('SUP_ERR_INTERNAL', `VM ${this.vm}: no SNP preflight`);
    this.#hashing ??= hashLaunchFiles(this.#o.spec);
    return startSnpDigest(this.#o.spec, firmware, this.#hashing);
  }

  #measureContext(): MeasureContext {
    const { spec, platform, stateDir } = this.#o;
    return {
      vm: this.vm,
      spec,
      platform,
      stateDir,
      qmp: this.#g.requireQmp(),
      firmware: this.#preflight?.firmware ?? null,
      firmwareHash: this.#preflight?.firmwareHash ?? null,
      hashing: this.#hashing ?? hashLaunchFiles(spec),
      step: (what, run) => this.#step(what, run),
      signal: this.#abort.signal,
      emit: (event) => {
        if (event.event === 'measured') this.#log.info({ record: event.record }, 'measurement recorded');
        if (event.event === 'snp-recorded') {
          this.#log.info({ record: event.record, expectedLaunchDigest: event.expectedLaunchDigest }, 'SNP launch recorded');
          if (event.idBlockMatches === false) {
            this.#log.warn(
              { record: event.record },
              'the ID block pins another launch digest or policy than this launch has: the platform will refuse it at its first run',
            );
          }
        }
        this.#g.emit(event);
      },
    };
  }

  /**
   * Report the guest held, durably, then wait paused for the owner (hold-wait.ts). MUST run after
   * #measure. @throws SUP_ERR_ATTEST_REJECTED / _TIMEOUT, the abort's reason, QEMU's exit.
   */
  async #waitForOwner(restoredDeadline?: Date): Promise<void> {
    const timeoutMs =
      this.#o.holdTimeoutMs ?? (this.#o.spec.holdTimeout !== undefined ? this.#o.spec.holdTimeout * 1000 : DEFAULT_HOLD_TIMEOUT_MS);
    const proc = this.#g.requireProc();
    this.#hold.open();
    // A re-attached guest keeps the deadline it was given when it was first held.
    const deadline = restoredDeadline ?? new Date(Date.now() + timeoutMs);
    this.#g.holdDeadline = deadline;
    this.#g.move('held');
    // Durable before anyone hears it is held: a restart must find it held, with this deadline.
    await this.#g.persisted();
    this.#g.emit({
      event: 'held',
      deadline: deadline.toISOString(),
      timeoutSeconds: timeoutMs / 1000,
      controlSocket: this.#g.paths?.controlSocket ?? null,
      secretInjection: !this.#snp,
    });
    await waitForOwner({
      vm: this.vm,
      hold: this.#hold,
      deadline,
      timeoutMs,
      proc,
      signal: this.#abort.signal,
      relay: this.#o.spec.attest === 'relay' ? (end, refuse) => this.#relay(deadline, end, refuse) : null,
    });
  }

  /** attest: relay: ask the owner's service while the hold waits (relay-step.ts). */
  #relay(deadline: Date, signal: AbortSignal, refuse: (error: SupervisorError) => void): Promise<void> {
    return relayToOwner({
      vm: this.vm,
      spec: this.#o.spec.relay,
      run: this.#o.relay,
      recordPath: this.#g.recordPath,
      deadline,
      signal,
      owner: this.#owner,
      refuse,
      logger: this.#vmLog,
    });
  }

  /**
   * `cont` and confirm. MUST be the last step; the only `cont` before the guest ever ran. An SEV-SNP
   * guest stays `resuming` through its first-run window: its launch is finished only when the PSP
   * has measured and accepted it, which happens at this first run (#snpFirstRun).
   */
  async #resume(): Promise<void> {
    const qmp = this.#g.requireQmp();
    this.#g.move('resuming');
    this.#g.ran = true;
    try {
      await this.#step('cont', () => cont(qmp));
      this.#g.emit({ event: 'resumed' });
      const status = await this.#step('query-status', () => queryStatus(qmp));
      if (!status.running) {
        throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm}: QEMU reports status ${status.status} after cont, expected running`, {
          details: { vm: this.vm, status: status.status },
        });
      }
      if (this.#snp) await this.#snpFirstRun();
    } catch (error: unknown) {
      throw this.#snp ? this.#asSnpLaunchFailure(error) : error;
    }
    this.#g.move('running');
    // Durable before anyone hears it runs: a restart must find it running, not resuming.
    await this.#g.persisted();
    this.#g.running.resolve();
    this.#g.emit({ event: 'running', pid: this.#g.requireProc().pid });
  }

  /** SEV-SNP's first run: a QEMU that exits within the window is a failed launch (snp-first-run.ts). */
  #snpFirstRun(): Promise<void> {
    return watchSnpFirstRun({ vm: this.vm, exited: this.#g.requireProc().exited, windowMs: this.#snpWindowMs, signal: this.#abort.signal });
  }

  /** A QEMU that died during an SNP guest's `cont` or first-run window: a failed SNP launch with QEMU's words. */
  #asSnpLaunchFailure(error: unknown): unknown {
    return asSnpLaunchFailure(this.vm, error, this.#snpWindowMs);
  }

  get #snpWindowMs(): number {
    return this.#o.snpFirstRunWindowMs ?? DEFAULT_SNP_FIRST_RUN_WINDOW_MS;
  }

  // Section: failing closed ------------------------------------------------------------------------

  /** Any error before the guest ran (or while resuming): stop QEMU, never `cont`, record why. */
  async #endBeforeRunning(error: unknown): Promise<void> {
    const requested = this.#stopReason !== null;
    const failure = requested ? null : await this.#explain(error, phaseOf(this.#g.state));
    this.#g.running.reject(failure ?? new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} was stopped before it ran`));
    if (this.#g.proc !== undefined) {
      if (this.#g.state !== 'stopping' && this.#g.state !== 'defined') {
        this.#g.move('stopping');
        this.#g.emit({ event: 'stopping', reason: failure === null ? (this.#stopReason ?? 'stop requested') : failure.code });
      }
      let exit: QemuExit | null = null;
      try {
        exit = await this.#destroy();
      } catch (destroyError: unknown) {
        this.#log.error({ err: destroyError }, 'QEMU could not be stopped');
      }
      if (exit !== null) this.#g.emitStopped(exit, exit.how);
    }
    if (failure === null) {
      const how = 'stopped before running';
      this.#g.move('stopped');
      this.#g.finish({ state: 'stopped', how, ran: this.#g.ran });
      return;
    }
    this.#g.fail(failure);
  }

  /** quit → SIGTERM → SIGKILL (no powerdown: a paused guest cannot act on it). */
  async #destroy(): Promise<QemuExit> {
    const proc = this.#g.requireProc();
    const exit = this.#force
      ? await proc.kill()
      : await proc.stop({ ...(this.#g.qmp === undefined ? {} : { qmp: this.#g.qmp }), powerdownTimeoutMs: 0 });
    await this.#g.qmp?.close();
    return exit;
  }

  /** Name the failure precisely (failure.ts). */
  #explain(error: unknown, phase: string): Promise<SupervisorError> {
    return explainFailure(this.vm, this.#g.proc, error, phase);
  }

  // Section: helpers -------------------------------------------------------------------------------

  /** An SEV-SNP guest: its own launch step, no secrets, the first-run window. */
  get #snp(): boolean {
    return this.#o.spec.sev?.type === 'snp';
  }

  #holds(): boolean {
    return this.#o.hold ?? this.#o.spec.attest !== 'none';
  }

  /** A QMP step whose failure because QEMU died is reported as such. */
  async #step<T>(what: string, run: () => Promise<T>): Promise<T> {
    this.#abort.signal.throwIfAborted();
    try {
      return await run();
    } catch (error: unknown) {
      throw await this.#explain(error, `${phaseOf(this.#g.state)} (${what})`);
    }
  }

  #requireFresh(): void {
    if (this.#g.state !== 'defined') {
      throw new SupervisorError(
        'SUP_ERR_VM_STATE',
        `VM ${this.vm} is ${this.#g.state}; a lifecycle starts once (create a new one to launch again)`,
      );
    }
  }
}
