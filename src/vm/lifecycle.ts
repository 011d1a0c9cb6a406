// The launch lifecycle of one guest: the only place that knows the order (style-anchors §6.9,
// DESIGN "Data flow"): preflight → run dir → argv → spawn paused (-S) → QMP → query-sev checks →
// launch measurement → record (durable) → [hold for the owner] → cont → running → watch.
// Owns: that order, the VM's state (through state.ts) and its lifecycle events. Fails closed: once
// QEMU is spawned, any failed check, refusal or error before `cont` stops QEMU (quit → SIGTERM →
// SIGKILL) and never resumes it. Must not: build argv strings (qemu/), parse QMP bytes (qmp/), or
// log or report secrets. Its collaborators are injectable (LifecycleDeps) so that the daemon can run
// many lifecycles at once and tests can drive each step.
// Daemon mode: QEMU runs detached and every transition is persisted to state.json, so a restarted
// daemon can attach() to the same QEMU (held stays held with its deadline, running stays running,
// never re-measured or resumed by mistake) and a stopping daemon can detach() without touching it.
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { AttestRequest, AttestResult, VmStatus } from './types.js';
import type { VmSpec } from '../config/vm-spec.js';
import { SupervisorError, hasCode, isSupervisorError } from '../errors.js';
import type { HostCaps } from '../host/host-caps.js';
import { silentLogger, type Logger } from '../log.js';
import { formatVmConfig } from '../config/vm-config.js';
import { adoptQemu, type AdoptOptions } from '../process/adopt.js';
import { describeEnd, launchQemu, type LaunchOptions, type QemuExit, type QemuProcess } from '../process/launcher.js';
import { readProcStat } from '../process/pid.js';
import { prepareVmRunDir, type VmPaths } from '../process/run-dir.js';
import { errorLines, readFileTail } from '../process/stderr-tail.js';
import { buildQemuArgv, type QemuArgvInput, type QemuArgvOptions } from '../qemu/argv.js';
import { QmpClient, type QmpConnectOptions, type QmpEvent } from '../qmp/client.js';
import { cont, querySev, querySevLaunchMeasure, queryStatus, sevInjectLaunchSecret } from '../qmp/commands.js';
import { sha256File } from '../sev/hash-file.js';
import { buildKernelHashesTable, cmdlineDigest, EMPTY_SHA256 } from '../sev/kernel-hashes.js';
import { launchDigest } from '../sev/launch-digest.js';
import { buildVmsas } from '../sev/vmsa.js';
import { describeSecretAreaProblem } from '../sev/ovmf-table.js';
import { encodePolicy, formatPolicy } from '../sev/policy.js';
import { checkMeasurement, checkSevInfo } from './checks.js';
import { checkDebugPolicy } from './debug-policy.js';
import { preflight, type Preflight } from './preflight.js';
import { buildRecord, RECORD_VMSA_INIT, type CpuSignature, type FileDigest, type LaunchInputs, type RecordPlatform } from './record.js';
import { writeRecord } from './record-store.js';
import { writeVmState, VM_STATE_SCHEMA, type PersistedVmState } from './state-file.js';
import { isErrorCode } from '../errors.js';
import { isTerminal, transition, type VmState } from './state.js';

/** What the owner gets when nobody answers a hold (DESIGN: the guest is rejected). */
export const DEFAULT_HOLD_TIMEOUT_MS = 600_000;
/** After QMP reports trouble, how long to wait for QEMU's exit so the error can quote its stderr. */
const EXIT_GRACE_MS = 2_000;
/** A guest that shut down makes QEMU exit by itself; after this it is told to quit. */
const GUEST_SHUTDOWN_GRACE_MS = 5_000;
/** Stderr lines quoted in a message (the whole tail goes into details). */
const MESSAGE_STDERR_LINES = 4;

export type LifecycleEvent =
  | { readonly event: 'starting'; readonly platform: RecordPlatform; readonly sev: boolean }
  | { readonly event: 'spawned'; readonly pid: number }
  | { readonly event: 'attached'; readonly pid: number; readonly was: VmState; readonly qemuStatus: string }
  | {
      readonly event: 'checked';
      readonly policy: string;
      readonly sevType: string;
      readonly apiMajor: number;
      readonly apiMinor: number;
      readonly buildId: number;
    }
  | { readonly event: 'measured'; readonly record: string; readonly measurement: string }
  | { readonly event: 'held'; readonly deadline: string; readonly timeoutSeconds: number; readonly controlSocket: string | null }
  | { readonly event: 'secret-injected'; readonly gpa: number; readonly headerBytes: number; readonly secretBytes: number }
  | { readonly event: 'resumed' }
  | { readonly event: 'running'; readonly pid: number }
  | { readonly event: 'paused'; readonly reason: string }
  | { readonly event: 'stopping'; readonly reason: string }
  | {
      readonly event: 'stopped';
      readonly how: string;
      readonly exitCode: number | null;
      readonly signal: string | null;
    }
  | { readonly event: 'failed'; readonly code: string; readonly message: string };

/** An event as delivered: with the VM and a timestamp. */
export type LifecycleEventRecord = LifecycleEvent & { readonly vm: string; readonly time: string };

export type LifecycleOutcome =
  | { readonly state: 'stopped'; readonly how: string; readonly ran: boolean }
  | { readonly state: 'failed'; readonly error: SupervisorError; readonly ran: boolean }
  /** detach(): QEMU was left running, unsupervised by this lifecycle. */
  | { readonly state: 'detached'; readonly ran: boolean };

/** The collaborators; defaults are the real modules. */
export interface LifecycleDeps {
  preflight(spec: VmSpec): Promise<Preflight>;
  prepareRunDir(runDir: string, vm: string): Promise<VmPaths>;
  buildArgv(input: QemuArgvInput): readonly string[];
  launch(options: LaunchOptions): Promise<QemuProcess>;
  connectQmp(options: QmpConnectOptions): Promise<QmpClient>;
  writeRecord: typeof writeRecord;
  hashFile(path: string): Promise<{ sha256: string }>;
  now(): Date;
  /** An already running QEMU by identity (attach); null when it is gone. */
  adopt(options: AdoptOptions): QemuProcess | null;
  /** /proc start time of a pid, recorded with it so a reused pid is never adopted. */
  procStartTime(pid: number): number | null;
  writeState: typeof writeVmState;
}

export const DEFAULT_LIFECYCLE_DEPS: LifecycleDeps = {
  preflight,
  prepareRunDir: (runDir, vm) => prepareVmRunDir(runDir, vm),
  buildArgv: buildQemuArgv,
  launch: launchQemu,
  connectQmp: (o) => QmpClient.connect(o),
  writeRecord,
  hashFile: sha256File,
  now: () => new Date(),
  adopt: adoptQemu,
  procStartTime: (pid) => readProcStat(pid)?.startTime ?? null,
  writeState: writeVmState,
};

export interface LifecycleOptions {
  readonly spec: VmSpec;
  readonly caps: HostCaps;
  /** `simulated` marks every record and event of the sim platform. */
  readonly platform: RecordPlatform;
  /** QEMU, or the sim executable. */
  readonly binary: string;
  /** Arguments before QEMU's argv (the sim's `--sim-*` options). */
  readonly binaryArgs?: readonly string[];
  readonly runDir: string;
  readonly stateDir: string;
  /** An already prepared run dir (the run command prepares it first to open its control socket). */
  readonly paths?: VmPaths;
  /** Hold after measuring, whatever the config says. @default spec.attest === 'hold' */
  readonly hold?: boolean;
  /** @default spec.holdTimeout seconds, else DEFAULT_HOLD_TIMEOUT_MS */
  readonly holdTimeoutMs?: number;
  /** QMP command reply timeout. @default the QMP client's (30 s) */
  readonly qmpTimeoutMs?: number;
  /** QMP connect + greeting deadline. @default the QMP client's (10 s) */
  readonly connectTimeoutMs?: number;
  /** How long a running guest gets to power down on stop() before QEMU is told to quit. @default the launcher's (10 s) */
  readonly powerdownTimeoutMs?: number;
  readonly logger?: Logger;
  readonly deps?: Partial<LifecycleDeps>;
  /**
   * Called once the supervisor's own QMP session is negotiated, before any SEV check: the run
   * command and the daemon put the filtering proxy in front of it here. A failure fails the launch.
   */
  readonly onMonitor?: (qmp: QmpClient) => Promise<void> | void;
  /** QEMU's seccomp sandbox and the user it drops to after start-up (`-sandbox`, `-runas`). */
  readonly qemuOptions?: QemuArgvOptions;
  /** Daemon `refuse-debug-policy`: refuse a policy that allows debugging (else warn). */
  readonly refuseDebugPolicy?: boolean;
  /**
   * Run QEMU detached (own process group, not killed with the supervisor), its stderr appended to
   * `stderrFile`: the daemon, whose guests outlive its restarts.
   */
  readonly detached?: { readonly stderrFile: string };
  /** Persist state.json here at every transition (needed by attach()). */
  readonly stateFile?: string;
}

/** Commands the daemon may send on sevsup's own monitor session (disk snapshots), by state. */
const MONITOR_STATES: readonly VmState[] = ['held', 'running', 'paused'];

type Decision = 'approve' | 'reject' | 'timeout' | 'stop' | 'exited' | 'detach';

/** Thrown inside start() when stop() was asked for before the guest ran; never escapes. */
class StopRequested extends Error {}

/** Thrown inside start()/attach() when detach() ended a hold; never escapes, QEMU is left as it is. */
class Detached extends Error {}

/** What attach() does with a QEMU it found alive, by the state persisted before the restart. */
export type ReattachPlan =
  | { readonly kind: 'hold' }
  | { readonly kind: 'running' | 'paused' }
  | { readonly kind: 'stop' }
  | { readonly kind: 'destroy'; readonly why: string };

/**
 * Pure: the state a re-attached guest resumes in. A held guest must still be paused (nothing may
 * have run it but sevsup); a guest caught mid-launch is destroyed, since it was never both measured
 * and approved as far as anyone can prove; a guest that ran keeps whatever QEMU says.
 */
export function planReattach(persisted: VmState, ran: boolean, qemuRunning: boolean, qemuPrelaunch = false): ReattachPlan {
  // QEMU's `prelaunch` means no `cont` ever reached it: whatever the file says, it never ran.
  if (qemuPrelaunch && (persisted === 'running' || persisted === 'paused')) {
    return { kind: 'destroy', why: `it was recorded as ${persisted}, but QEMU says it never ran (prelaunch): nothing proves it was approved` };
  }
  switch (persisted) {
    case 'held':
      return qemuRunning
        ? { kind: 'destroy', why: 'it was held for attestation, but QEMU reports it running: nothing but sevsup may resume it' }
        : { kind: 'hold' };
    case 'running':
    case 'paused':
      return { kind: qemuRunning ? 'running' : 'paused' };
    case 'resuming':
      return qemuRunning ? { kind: 'running' } : { kind: 'destroy', why: 'sevsup stopped while resuming it, before it ran' };
    case 'stopping':
      return { kind: 'stop' };
    case 'defined':
    case 'starting':
    case 'attaching':
    case 'measuring':
      return ran && qemuRunning ? { kind: 'running' } : { kind: 'destroy', why: `sevsup stopped while it was ${persisted}, before its launch completed` };
    case 'stopped':
    case 'failed':
      return { kind: 'destroy', why: `it was recorded as ${persisted}` };
  }
}

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
  readonly #listeners = new Set<(event: LifecycleEventRecord) => void>();
  #state: VmState = 'defined';
  #ran = false;
  #proc: QemuProcess | undefined;
  #qmp: QmpClient | undefined;
  #paths: VmPaths | undefined;
  #preflight: Preflight | undefined;
  #recordPath: string | null = null;
  #error: SupervisorError | null = null;
  #stopReason: string | null = null;
  #shutdownSeen: string | null = null;
  #holdDeadline: Date | null = null;
  #decide: ((decision: Decision) => void) | null = null;
  #secretsInjected = 0;
  /** Attest actions run one at a time (an approve must not overtake an injection). */
  #attestQueue: Promise<unknown> = Promise.resolve();
  #resolveFinished!: (outcome: LifecycleOutcome) => void;
  #running!: { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void };
  #unsubscribeEvents: (() => void) | undefined;
  #hashing: Promise<[FileDigest | null, FileDigest | null]> | undefined;
  #startTime: number | null = null;
  #persisting: Promise<void> = Promise.resolve();
  #configText: string | undefined;
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
    this.finished = new Promise((resolve) => (this.#resolveFinished = resolve));
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined); // observed through approve() or finished
    this.#running = { promise, resolve, reject };
  }

  get state(): VmState {
    return this.#state;
  }

  /** The config this launch uses (a changed config file applies at the next launch). */
  get spec(): VmSpec {
    return this.#o.spec;
  }

  get pid(): number | null {
    return this.#proc?.pid ?? null;
  }

  get sev(): boolean {
    return this.#o.spec.sev !== undefined;
  }

  /**
   * True until sevsup itself has resumed the guest after its checks (and the owner's approval):
   * until then only sevsup may `cont` it, so the proxy refuses `cont` from anyone else. The lock
   * is for the attestation window only: a guest that ran and was paused since (a proxy `stop`, a
   * panic or I/O error with `set-action ... pause`) may be resumed by its operator.
   */
  get resumeLocked(): boolean {
    return !this.#ran;
  }

  /** Subscribe to lifecycle events; returns the unsubscribe function. */
  onEvent(listener: (event: LifecycleEventRecord) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  status(): VmStatus {
    return {
      vm: this.vm,
      state: this.#state,
      platform: this.#o.platform,
      sev: this.sev,
      pid: this.#proc !== undefined && this.#proc.isAlive() ? this.#proc.pid : null,
      record: this.#recordPath,
      holdDeadline: this.#state === 'held' && this.#holdDeadline !== null ? this.#holdDeadline.toISOString() : null,
      secretsInjected: this.#secretsInjected,
      error: this.#error === null ? null : { code: this.#error.code, message: this.#error.message },
    };
  }

  /**
   * Launch the guest and bring it to `running` (through `held` when holding). Resolves once it
   * runs, or once it was stopped on request before it ran.
   * @throws the SupervisorError that made it fail (QEMU is gone by then; state `failed`).
   */
  async start(): Promise<void> {
    this.#requireFresh();
    this.#move('starting');
    this.#emit({ event: 'starting', platform: this.#o.platform, sev: this.sev });
    try {
      await this.#launch();
      if (this.sev) {
        this.#move('measuring');
        await this.#measure();
      }
      if (this.#holds()) await this.#hold();
      this.#checkpoint();
      await this.#resume();
    } catch (error: unknown) {
      await this.#failClosed(error);
      return;
    }
    this.#watch();
  }

  /**
   * The supervisor's own QMP session on QEMU's private monitor (launch and re-attach alike), then
   * the filtering proxy in front of it (onMonitor).
   */
  async #connectMonitor(path: string, proc: QemuProcess): Promise<QmpClient> {
    const qmp = await this.#deps.connectQmp({
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
    this.#qmp = qmp;
    await this.#o.onMonitor?.(qmp);
    return qmp;
  }

  /** The fail-closed end of start() and attach() before the guest ran: rethrow what failed. */
  async #failClosed(error: unknown): Promise<void> {
    if (error instanceof Detached) return;
    if (hasCode(error, 'SUP_ERR_VM_UNREACHABLE') && this.#detached) throw error;
    await this.#endBeforeRunning(error);
    if (this.#state === 'failed' && this.#error !== null) throw this.#error;
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
    this.#paths = this.#o.paths;
    this.#recordPath = persisted.record;
    this.#secretsInjected = persisted.secretsInjected;
    this.#ran = persisted.ran;
    this.#startTime = persisted.startTime;
    this.#move('attaching');
    let plan: ReattachPlan;
    try {
      const proc = this.#adopt(persisted);
      if (proc === null) {
        this.#endGone(persisted);
        if (this.#state === 'failed' && this.#error !== null) throw this.#error;
        return;
      }
      this.#proc = proc;
      let status: Awaited<ReturnType<typeof queryStatus>>;
      try {
        const qmp = await this.#connectMonitor(persisted.monitorSocket, proc);
        status = await this.#step('query-status', () => queryStatus(qmp));
        plan = planReattach(persisted.state, persisted.ran, status.running, status.status === 'prelaunch');
        if (plan.kind === 'hold' && this.sev) {
          // Still waiting for its secret: LAUNCH_FINISH (the first cont) has not happened.
          const sev = await this.#step('query-sev', () => querySev(qmp));
          if (sev.state !== 'launch-secret') plan = { kind: 'destroy', why: `it was held, but its SEV state is ${sev.state}, not launch-secret` };
        }
      } catch (error: unknown) {
        // Re-attach destroys only what QEMU's own answers show to be wrong, never what it could
        // not look at: a monitor that is busy (someone else holds it) or silent is left alone.
        if (proc.isAlive()) await this.#leaveUnreachable(proc, error);
        throw error;
      }
      this.#emit({ event: 'attached', pid: proc.pid, was: persisted.state, qemuStatus: status.status });
      if (plan.kind === 'destroy') {
        throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm}: re-attached after a restart, but ${plan.why}; QEMU was stopped`, {
          details: { vm: this.vm, was: persisted.state, qemuStatus: status.status },
        });
      }
      if (plan.kind === 'hold') {
        await this.#hold(persisted.holdDeadline === null ? undefined : new Date(persisted.holdDeadline));
        this.#checkpoint();
        await this.#resume();
      }
    } catch (error: unknown) {
      await this.#failClosed(error);
      return;
    }
    if (plan.kind === 'stop') {
      this.#watch();
      void this.#shutdown('stop requested before the restart', false);
      return;
    }
    if (plan.kind === 'running' || plan.kind === 'paused') {
      this.#move(plan.kind);
      this.#running.resolve();
      if (plan.kind === 'running') this.#emit({ event: 'running', pid: this.#requireProc().pid });
      else this.#emit({ event: 'paused', reason: 'QEMU reports it paused' });
    }
    this.#watch();
  }

  /**
   * Let go of QEMU without touching it (daemon shutdown with `on-shutdown: keep`): a held guest
   * stays paused and held, a running one runs on; the QMP session is closed after the state file
   * is written. The lifecycle is finished with afterwards: `finished` settles as `detached`, and
   * stop() does nothing.
   * @throws SUP_ERR_VM_STATE unless held, running or paused (a launch in progress is stopped instead).
   */
  async detach(): Promise<void> {
    if (!MONITOR_STATES.includes(this.#state)) {
      throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} is ${this.#state}; only a held, running or paused guest can be left running`);
    }
    this.#detached = true;
    this.#decide?.('detach');
    this.#unsubscribeEvents?.();
    await this.#persisting;
    await this.#qmp?.close();
    this.#log.info({ state: this.#state }, 'detached; QEMU left running');
    this.#resolveFinished({ state: 'detached', ran: this.#ran });
  }

  /**
   * Send one command on sevsup's own monitor session (the daemon's disk snapshots). The caller
   * decides what is allowed; this only requires a QEMU under supervision.
   * @throws SUP_ERR_VM_STATE unless held, running or paused; the QMP client's errors.
   */
  monitorExecute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (!MONITOR_STATES.includes(this.#state) || this.#detached) {
      return Promise.reject(new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} is ${this.#state}; its monitor is not available`, { details: { vm: this.vm, state: this.#state } }));
    }
    return this.#requireQmp().execute(command, args);
  }

  /** Dispatch an attest request (the control API's entry). */
  attest(request: AttestRequest): Promise<AttestResult> {
    switch (request.action) {
      case 'approve':
        return this.approve();
      case 'reject':
        return this.reject();
      case 'inject-secret':
        return this.injectSecret(request);
    }
  }

  /**
   * Let a held guest run: `cont`, then confirm QEMU runs.
   * @throws SUP_ERR_ATTEST_NOT_HELD unless held; the error that failed the resume.
   */
  approve(): Promise<AttestResult> {
    return this.#exclusive('approve', async () => {
      this.#log.info('guest owner approved the guest');
      this.#decide?.('approve');
      await this.#running.promise;
      return { vm: this.vm, action: 'approve', state: this.#state };
    });
  }

  /** Destroy a held guest; it never runs. @throws SUP_ERR_ATTEST_NOT_HELD unless held. */
  reject(): Promise<AttestResult> {
    return this.#exclusive('reject', async () => {
      this.#log.info('guest owner rejected the guest');
      this.#decide?.('reject');
      await this.finished;
      return { vm: this.vm, action: 'reject', state: this.#state };
    });
  }

  /**
   * `sev-inject-launch-secret` into a held guest; may be repeated before approve. Without `gpa`
   * the firmware's launch-secret area is used (QEMU would silently use GPA 0 for an empty one).
   * @throws SUP_ERR_ATTEST_NOT_HELD, SUP_ERR_SECRET_NO_AREA, SUP_ERR_SECRET_REFUSED (QEMU's desc).
   */
  injectSecret(request: { readonly packetHeader: string; readonly secret: string; readonly gpa?: number }): Promise<AttestResult> {
    return this.#exclusive('inject-secret', async () => {
      const gpa = request.gpa ?? this.#secretAreaBase();
      const qmp = this.#requireQmp();
      try {
        await sevInjectLaunchSecret(qmp, { packetHeader: request.packetHeader, secret: request.secret, gpa });
      } catch (error: unknown) {
        if (!hasCode(error, 'SUP_ERR_QMP_EXECUTE')) throw error;
        const desc = typeof error.details['desc'] === 'string' ? error.details['desc'] : error.message;
        throw new SupervisorError('SUP_ERR_SECRET_REFUSED', `VM ${this.vm}: the platform refused the launch secret: ${desc}`, {
          details: { vm: this.vm, gpa, desc },
        });
      }
      this.#secretsInjected += 1;
      this.#persist();
      // Durable before the owner hears it: a restarted daemon must report the same count.
      await this.#persisting;
      const headerBytes = Buffer.byteLength(request.packetHeader, 'base64');
      const secretBytes = Buffer.byteLength(request.secret, 'base64');
      this.#log.info({ gpa, headerBytes, secretBytes }, 'launch secret injected');
      this.#emit({ event: 'secret-injected', gpa, headerBytes, secretBytes });
      return { vm: this.vm, action: 'inject-secret', state: this.#state, gpa, headerBytes, secretBytes };
    });
  }

  /**
   * Resume a guest that ran and was paused since (the API's `start` on a paused guest). Never
   * before sevsup's own first `cont`: that is approve()'s, after every check.
   * @throws SUP_ERR_VM_STATE unless paused after it ran; SUP_ERR_QMP_EXECUTE with QEMU's refusal.
   */
  async resumePaused(): Promise<void> {
    if (this.#state !== 'paused' || !this.#ran || this.#detached) {
      throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} is ${this.#state}; only a guest that ran and was paused since can be resumed this way`, {
        details: { vm: this.vm, state: this.#state },
      });
    }
    const qmp = this.#requireQmp();
    await cont(qmp);
    // QEMU's RESUME event moves the state (#onQmpEvent); confirm in case it was missed.
    const status = await queryStatus(qmp);
    if (status.running && this.#state === 'paused') {
      this.#move('running');
      this.#emit({ event: 'running', pid: this.#requireProc().pid });
    }
    this.#log.info({ state: this.#state }, 'paused guest resumed on request');
  }

  /**
   * Stop the guest: a running one gets system_powerdown first, a paused or held one is told to
   * quit at once; one still starting is aborted (it never runs). Resolves with the outcome.
   */
  stop(reason = 'stop requested', options: { readonly force?: boolean } = {}): Promise<LifecycleOutcome> {
    if (isTerminal(this.#state) || this.#detached) return this.finished;
    if (options.force === true) {
      this.#force = true;
      // Already stopping: escalate the ladder to SIGKILL now.
      if (this.#stopReason !== null) void this.#proc?.kill().catch(() => undefined);
    }
    if (this.#stopReason !== null) return this.finished;
    this.#stopReason = reason;
    this.#log.info({ reason }, 'stop requested');
    if (this.#state === 'defined') {
      this.#move('stopped');
      this.#resolveFinished({ state: 'stopped', how: 'never started', ran: false });
      return this.finished;
    }
    if (this.#state === 'running' || this.#state === 'paused') {
      void this.#shutdown(reason, this.#state === 'running');
    } else if (this.#state === 'held') {
      this.#decide?.('stop');
    } else if (this.#proc !== undefined) {
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
    this.#checkpoint();
    const paths = this.#o.paths ?? (await this.#deps.prepareRunDir(this.#o.runDir, this.vm));
    this.#paths = paths;
    const argv = this.#deps.buildArgv({
      spec,
      caps: this.#o.caps,
      paths: { monitorSocket: paths.monitorSocket, pidFile: paths.pidFile, ...(spec.serial === 'file' ? { serialLog: paths.serialLog } : {}) },
      ...(this.#o.qemuOptions === undefined ? {} : { options: this.#o.qemuOptions }),
      backingChains: this.#preflight.disks,
    });
    this.#checkpoint();
    this.#proc = await this.#deps.launch({
      binary: this.#o.binary,
      argv: [...(this.#o.binaryArgs ?? []), ...argv],
      logger: this.#vmLog,
      ...(this.#o.detached === undefined ? {} : { detached: true, stderrFile: this.#o.detached.stderrFile }),
      ready: async (proc) => {
        this.#proc = proc;
        this.#startTime = this.#deps.procStartTime(proc.pid);
        this.#persist();
        this.#emit({ event: 'spawned', pid: proc.pid });
        if (this.sev) this.#startHashing();
        await this.#connectMonitor(paths.monitorSocket, proc);
      },
    });
    this.#checkpoint();
  }

  /**
   * The fail-closed checks and the durable record. MUST run after #launch, with QEMU paused.
   * @throws SUP_ERR_CHECK_* and SUP_ERR_RECORD_WRITE (from checks.ts / record-store.ts).
   */
  async #measure(): Promise<void> {
    const sevSpec = this.#o.spec.sev;
    if (sevSpec === undefined) return;
    const qmp = this.#requireQmp();
    const expectedPolicy = encodePolicy(sevSpec);
    const seen = await this.#step('query-sev', () => querySev(qmp));
    checkSevInfo(this.vm, seen, { policy: expectedPolicy });
    const sevType = sevSpec.type === 'es' ? 'sev-es' : 'sev';
    this.#emit({
      event: 'checked',
      policy: formatPolicy(seen.policy),
      sevType,
      apiMajor: seen.apiMajor,
      apiMinor: seen.apiMinor,
      buildId: seen.buildId,
    });

    let measurement: string;
    try {
      measurement = await this.#step('query-sev-launch-measure', () => querySevLaunchMeasure(qmp));
    } catch (error: unknown) {
      if (!hasCode(error, 'SUP_ERR_QMP_EXECUTE')) throw error;
      throw new SupervisorError('SUP_ERR_CHECK_MEASUREMENT', `VM ${this.vm}: QEMU gave no launch measurement: ${error.message}; the guest was not resumed`, {
        details: { vm: this.vm, check: 'measurement' },
        cause: error,
      });
    }
    const bytes = checkMeasurement(this.vm, measurement);
    this.#checkpoint();

    const cpuSignature = sevType === 'sev-es' ? await this.#cpuSignature(qmp) : undefined;
    const expectedLaunchDigest = await this.#expectedLaunchDigest(cpuSignature);
    const record = buildRecord({
      vm: this.vm,
      capturedAt: this.#deps.now(),
      platform: this.#o.platform,
      sevType,
      reported: { policy: seen.policy, apiMajor: seen.apiMajor, apiMinor: seen.apiMinor, buildId: seen.buildId, state: seen.state },
      expectedPolicy,
      measurement,
      mnonce: bytes.mnonce,
      launch: await this.#launchInputs(qmp),
      expectedLaunchDigest,
      ...(cpuSignature === undefined ? {} : { cpuSignature }),
    });
    try {
      this.#recordPath = await this.#deps.writeRecord(this.#o.stateDir, record);
    } catch (error: unknown) {
      if (!hasCode(error, 'SUP_ERR_RECORD_WRITE')) throw error;
      throw new SupervisorError('SUP_ERR_RECORD_WRITE', `VM ${this.vm}: ${error.message}; the guest was not resumed`, {
        details: error.details,
        cause: error,
      });
    }
    this.#log.info({ record: this.#recordPath }, 'measurement recorded');
    this.#emit({ event: 'measured', record: this.#recordPath, measurement });
  }

  /** Wait paused for the owner. MUST run after #measure. @throws SUP_ERR_ATTEST_REJECTED / _TIMEOUT. */
  async #hold(restoredDeadline?: Date): Promise<void> {
    const timeoutMs = this.#o.holdTimeoutMs ?? (this.#o.spec.holdTimeout !== undefined ? this.#o.spec.holdTimeout * 1000 : DEFAULT_HOLD_TIMEOUT_MS);
    const proc = this.#requireProc();
    const timer = new AbortController();
    const decision = new Promise<Decision>((resolve) => {
      this.#decide = resolve;
    });
    // A re-attached guest keeps the deadline it was given when it was first held.
    this.#holdDeadline = restoredDeadline ?? new Date(this.#deps.now().getTime() + timeoutMs);
    const waitMs = Math.max(0, this.#holdDeadline.getTime() - this.#deps.now().getTime());
    this.#move('held');
    if (this.#stopReason !== null) this.#decide?.('stop');
    // Durable before anyone hears it is held: a restart must find it held, with this deadline.
    await this.#persisting;
    this.#emit({
      event: 'held',
      deadline: this.#holdDeadline.toISOString(),
      timeoutSeconds: timeoutMs / 1000,
      controlSocket: this.#paths?.controlSocket ?? null,
    });
    const outcome = await Promise.race([
      decision,
      proc.exited.then((): Decision => 'exited'),
      delay(waitMs, 'timeout' as const, { signal: timer.signal }).catch((): Decision => 'stop'),
    ]);
    timer.abort();
    this.#decide = null;
    switch (outcome) {
      case 'detach':
        throw new Detached();
      case 'approve':
        return;
      case 'reject':
        throw new SupervisorError('SUP_ERR_ATTEST_REJECTED', `VM ${this.vm} was rejected by the guest owner; QEMU was stopped and the guest never ran`, {
          details: { vm: this.vm },
        });
      case 'timeout':
        throw new SupervisorError(
          'SUP_ERR_ATTEST_TIMEOUT',
          `VM ${this.vm}: nobody approved the guest within ${timeoutMs / 1000} s of holding it; it was rejected, QEMU was stopped and the guest never ran`,
          { details: { vm: this.vm, timeoutMs } },
        );
      case 'stop':
        throw new StopRequested();
      case 'exited':
        throw await this.#explain(new SupervisorError('SUP_ERR_QEMU_EXITED', 'QEMU exited while held'), 'the attestation hold');
    }
  }

  /** `cont` and confirm. MUST be the last step; the only `cont` before the guest ever ran. */
  async #resume(): Promise<void> {
    const qmp = this.#requireQmp();
    this.#move('resuming');
    this.#ran = true;
    await this.#step('cont', () => cont(qmp));
    this.#emit({ event: 'resumed' });
    const status = await this.#step('query-status', () => queryStatus(qmp));
    if (!status.running) {
      throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm}: QEMU reports status ${status.status} after cont, expected running`, {
        details: { vm: this.vm, status: status.status },
      });
    }
    this.#move('running');
    // Durable before anyone hears it runs: a restart must find it running, not resuming.
    await this.#persisting;
    this.#running.resolve();
    this.#emit({ event: 'running', pid: this.#requireProc().pid });
  }

  // Section: after it runs -------------------------------------------------------------------------

  /** Keep the state true to QEMU's events and process exit. MUST be called once, when running. */
  #watch(): void {
    const qmp = this.#requireQmp();
    const proc = this.#requireProc();
    this.#unsubscribeEvents = qmp.onEvent((event) => this.#onQmpEvent(event));
    void proc.exited.then((exit) => this.#onExit(exit));
    const ending = (): boolean => isTerminal(this.#state) || this.#state === 'stopping' || this.#detached;
    void qmp.closed.then(async (cause) => {
      if (ending()) return;
      // The monitor went away but QEMU may live on: without it the guest cannot be supervised.
      const exit = await Promise.race([proc.exited, delay(EXIT_GRACE_MS, null)]);
      if (exit !== null || ending()) return;
      this.#log.error({ err: cause }, 'QMP monitor closed while QEMU runs; stopping QEMU');
      this.#error = new SupervisorError('SUP_ERR_QMP_INTERRUPTED', `VM ${this.vm}: QEMU's QMP monitor closed while the guest was running; QEMU was stopped`, {
        details: { vm: this.vm },
        ...(cause === undefined ? {} : { cause }),
      });
      void this.#shutdown('monitor lost', false);
    });
  }

  #onQmpEvent(event: QmpEvent): void {
    switch (event.event) {
      case 'STOP':
        if (this.#state === 'running') {
          this.#move('paused');
          this.#emit({ event: 'paused', reason: 'QEMU reported STOP' });
        }
        return;
      case 'RESUME':
        if (this.#state === 'paused') {
          this.#move('running');
          this.#emit({ event: 'running', pid: this.#requireProc().pid });
        }
        return;
      case 'SHUTDOWN': {
        const reason = typeof event.data?.['reason'] === 'string' ? event.data['reason'] : 'unknown';
        this.#shutdownSeen = reason;
        this.#log.info({ reason }, 'guest shut down');
        if (reason === 'host-signal' && (this.#state === 'running' || this.#state === 'paused') && this.#stopReason === null) {
          // A signal sevsup did not send (its own come only once it is stopping): QEMU exits 0 on
          // SIGTERM, but the guest was killed, not stopped. Reported as a failure, never `stopped`.
          this.#error ??= new SupervisorError(
            'SUP_ERR_QEMU_SIGNALLED',
            `VM ${this.vm}: QEMU was ended by a signal that sevsup did not send while the guest was ${this.#state} (QMP SHUTDOWN reason host-signal); see qemu.log for the sender's pid`,
            { details: { vm: this.vm, was: this.#state } },
          );
          this.#log.warn({ was: this.#state }, 'QEMU ended by an external signal');
        }
        if (this.#state === 'running' || this.#state === 'paused') {
          this.#move('stopping');
          this.#emit({ event: 'stopping', reason: `guest shutdown (${reason})` });
          const proc = this.#requireProc();
          // QEMU exits by itself after SHUTDOWN unless told not to; only then is it told to quit.
          void Promise.race([proc.exited, delay(GUEST_SHUTDOWN_GRACE_MS, null)]).then((exit) => {
            if (exit === null) void this.#destroy().catch(() => undefined);
          });
        }
        return;
      }
      default:
        return;
    }
  }

  #onExit(exit: QemuExit): void {
    if (isTerminal(this.#state) || this.#detached) return;
    this.#unsubscribeEvents?.();
    void this.#qmp?.close();
    const clean = exit.signal === undefined && exit.exitCode === 0;
    if (this.#error === null && (this.#state === 'stopping' || clean)) {
      const how = exit.how === 'exited' ? (this.#shutdownSeen !== null ? 'guest-shutdown' : 'exited') : exit.how;
      this.#emitStopped(exit, how);
      this.#move('stopped');
      this.#resolveFinished({ state: 'stopped', how, ran: this.#ran });
      return;
    }
    const error =
      this.#error ??
      new SupervisorError('SUP_ERR_QEMU_EXITED', `VM ${this.vm}: QEMU ${describeEnd(exit)} while the guest was ${this.#state}${quoteStderr(exit.stderrTail)}`, {
        details: { vm: this.vm, exitCode: exit.exitCode, signal: exit.signal, stderrTail: exit.stderrTail },
      });
    this.#emitStopped(exit, exit.how);
    this.#fail(error);
  }

  /** Graceful stop of a guest that ran. */
  async #shutdown(reason: string, powerdown: boolean): Promise<void> {
    if (this.#state !== 'stopping') {
      this.#move('stopping');
      this.#emit({ event: 'stopping', reason });
    }
    const proc = this.#requireProc();
    const stopped = this.#force
      ? proc.kill()
      : proc.stop({
          ...(this.#qmp === undefined ? {} : { qmp: this.#qmp }),
          ...(powerdown ? (this.#o.powerdownTimeoutMs === undefined ? {} : { powerdownTimeoutMs: this.#o.powerdownTimeoutMs }) : { powerdownTimeoutMs: 0 }),
        });
    await stopped.catch((error: unknown) => {
      this.#log.error({ err: error }, 'QEMU did not stop');
      this.#error ??= isSupervisorError(error) ? error : new SupervisorError('SUP_ERR_SHUTDOWN_ABNORMAL', String(error));
    });
    // #onExit (from proc.exited) records the outcome.
  }

  // Section: failing closed ------------------------------------------------------------------------

  /** Any error before the guest ran (or while resuming): stop QEMU, never `cont`, record why. */
  async #endBeforeRunning(error: unknown): Promise<void> {
    const requested = error instanceof StopRequested || this.#stopReason !== null;
    const failure = requested ? null : await this.#explain(error, this.#phase());
    this.#running.reject(failure ?? new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} was stopped before it ran`));
    if (this.#proc !== undefined) {
      if (this.#state !== 'stopping' && this.#state !== 'defined') {
        this.#move('stopping');
        this.#emit({ event: 'stopping', reason: failure === null ? (this.#stopReason ?? 'stop requested') : failure.code });
      }
      let exit: QemuExit | null = null;
      try {
        exit = await this.#destroy();
      } catch (destroyError: unknown) {
        this.#log.error({ err: destroyError }, 'QEMU could not be stopped');
      }
      if (exit !== null) this.#emitStopped(exit, exit.how);
    }
    if (failure === null) {
      const how = 'stopped before running';
      this.#move('stopped');
      this.#resolveFinished({ state: 'stopped', how, ran: this.#ran });
      return;
    }
    this.#fail(failure);
  }

  /** quit → SIGTERM → SIGKILL (no powerdown: a paused guest cannot act on it). */
  async #destroy(): Promise<QemuExit> {
    const proc = this.#requireProc();
    const exit = this.#force ? await proc.kill() : await proc.stop({ ...(this.#qmp === undefined ? {} : { qmp: this.#qmp }), powerdownTimeoutMs: 0 });
    await this.#qmp?.close();
    return exit;
  }

  #fail(error: SupervisorError): void {
    this.#error = error;
    if (this.#state !== 'failed') this.#move('failed');
    // Reported to the caller (event, outcome, start()'s rejection); logged here for the record only.
    this.#log.info({ code: error.code, reason: error.message }, 'VM failed');
    this.#emit({ event: 'failed', code: error.code, message: error.message });
    this.#resolveFinished({ state: 'failed', error, ran: this.#ran });
  }

  /**
   * Name the failure precisely: a QMP error because QEMU died becomes SUP_ERR_QEMU_EXITED quoting
   * QEMU's stderr; anything that is not a SupervisorError becomes SUP_ERR_INTERNAL.
   */
  async #explain(error: unknown, phase: string): Promise<SupervisorError> {
    const proc = this.#proc;
    if (hasCode(error, 'SUP_ERR_LAUNCH_FAILED') || (hasCode(error, 'SUP_ERR_QEMU_EXITED') && error.details['stderrTail'] !== undefined)) return error;
    const qmpGone = hasCode(error, 'SUP_ERR_QMP_INTERRUPTED', 'SUP_ERR_QMP_STATE', 'SUP_ERR_QEMU_EXITED') || (proc !== undefined && !proc.isAlive());
    if (proc !== undefined && qmpGone) {
      const exit = await Promise.race([proc.exited, delay(EXIT_GRACE_MS, null)]);
      if (exit !== null) {
        return new SupervisorError('SUP_ERR_QEMU_EXITED', `VM ${this.vm}: QEMU ${describeEnd(exit)} during ${phase}${quoteStderr(exit.stderrTail)}`, {
          details: { vm: this.vm, phase, exitCode: exit.exitCode, signal: exit.signal, stderrTail: exit.stderrTail },
          cause: error,
        });
      }
    }
    if (isSupervisorError(error)) return error;
    return new SupervisorError('SUP_ERR_INTERNAL', `VM ${this.vm}: internal error during ${phase}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }

  #phase(): string {
    switch (this.#state) {
      case 'starting':
        return 'start-up';
      case 'measuring':
        return 'the SEV checks';
      case 'held':
        return 'the attestation hold';
      case 'resuming':
        return 'resume';
      default:
        return this.#state;
    }
  }

  // Section: helpers -------------------------------------------------------------------------------

  #holds(): boolean {
    return this.#o.hold ?? this.#o.spec.attest === 'hold';
  }

  /** A QMP step whose failure because QEMU died is reported as such. */
  async #step<T>(what: string, run: () => Promise<T>): Promise<T> {
    this.#checkpoint();
    try {
      return await run();
    } catch (error: unknown) {
      throw await this.#explain(error, `${this.#phase()} (${what})`);
    }
  }

  #checkpoint(): void {
    if (this.#stopReason !== null && !this.#ran) throw new StopRequested();
  }

  /**
   * Hash the kernel and initrd for the record. Started right after spawn so that it overlaps
   * QEMU's start-up (a 14 MB kernel takes tens of ms); awaited when the record is built.
   */
  #startHashing(): void {
    const { spec } = this.#o;
    const digest = async (path: string | undefined): Promise<FileDigest | null> =>
      path === undefined ? null : { path, sha256: (await this.#deps.hashFile(path)).sha256 };
    const hashing = Promise.all([digest(spec.kernel), digest(spec.initrd)]);
    hashing.catch(() => undefined); // awaited (and its error reported) in #launchInputs
    this.#hashing = hashing;
  }

  async #launchInputs(qmp: QmpClient): Promise<LaunchInputs> {
    const { spec } = this.#o;
    const fw = this.#preflight?.firmware ?? null;
    if (this.#hashing === undefined) this.#startHashing();
    const [kernel, initrd] = (await this.#hashing) ?? [null, null];
    const { qemu, package: pkg } = qmp.greeting.QMP.version;
    return {
      firmware: fw === null ? null : { path: fw.path, sha256: fw.sha256 },
      kernel,
      initrd,
      cmdline: spec.cmdline ?? null,
      kernelHashes: spec.sev?.kernelHashes ?? false,
      vcpus: spec.cores,
      cpuModel: spec.cpu,
      qemuVersion: `${qemu.major}.${qemu.minor}.${qemu.micro}${pkg.trim() === '' ? '' : ` (${pkg.trim()})`}`,
    };
  }

  /**
   * GCTX.LD as the host computes it from the inputs it gave QEMU: a diagnostic for owners whose
   * check fails, never a substitute for their own computation (the owner must not trust the host).
   * SEV-ES VMSAs are built as QEMU with KVM_SEV_ES_INIT builds them (the `legacy` variant).
   */
  async #expectedLaunchDigest(cpu: CpuSignature | undefined): Promise<string> {
    const { spec } = this.#o;
    const fw = this.#preflight?.firmware ?? null;
    if (fw === null) throw new SupervisorError('SUP_ERR_INTERNAL', `VM ${this.vm}: no firmware after preflight`);
    let kernelHashesTable: Buffer | undefined;
    if ((spec.sev?.kernelHashes ?? false) && spec.kernel !== undefined) {
      // The table holds only digests: reuse the kernel/initrd hashes taken at spawn.
      if (this.#hashing === undefined) this.#startHashing();
      const [kernel, initrd] = (await this.#hashing) ?? [null, null];
      if (kernel === null) throw new SupervisorError('SUP_ERR_INTERNAL', `VM ${this.vm}: kernel not hashed`);
      kernelHashesTable = buildKernelHashesTable({
        cmdline: cmdlineDigest(spec.cmdline),
        initrd: initrd === null ? EMPTY_SHA256 : Buffer.from(initrd.sha256, 'hex'),
        kernel: Buffer.from(kernel.sha256, 'hex'),
      });
    }
    let vmsas: Buffer[] | undefined;
    if (cpu !== undefined) {
      const resetAddress = fw.table.sevResetAddress;
      if (resetAddress === null) throw new SupervisorError('SUP_ERR_FIRMWARE_NO_SEV_INFO', `VM ${this.vm}: firmware ${fw.path} has no SEV-ES reset address`);
      vmsas = buildVmsas({ vcpus: spec.cores, ...cpu, resetAddress, vmsaInit: RECORD_VMSA_INIT });
    }
    const firmware = await this.#step('read firmware', () => readFile(fw.path));
    const digest = launchDigest({
      firmware,
      ...(kernelHashesTable === undefined ? {} : { kernelHashesTable }),
      ...(vmsas === undefined ? {} : { vmsas }),
    });
    return digest.toString('hex');
  }


  /** The CPU signature QEMU put in the VMSAs: the vCPU object's family/model/stepping properties. */
  async #cpuSignature(qmp: QmpClient): Promise<CpuSignature> {
    const cpus = await this.#step('query-cpus-fast', () => qmp.execute('query-cpus-fast'));
    const first = Array.isArray(cpus) ? cpus[0] : undefined;
    const path = typeof first === 'object' && first !== null && 'qom-path' in first ? first['qom-path'] : undefined;
    if (typeof path !== 'string') throw new SupervisorError('SUP_ERR_QMP_PROTOCOL', `VM ${this.vm}: query-cpus-fast returned no vCPU qom-path`);
    const prop = async (property: string): Promise<number> => {
      const value = await this.#step(`qom-get ${property}`, () => qmp.execute('qom-get', { path, property }));
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
        throw new SupervisorError('SUP_ERR_QMP_PROTOCOL', `VM ${this.vm}: qom-get ${path} ${property} is not an integer`);
      }
      return value;
    };
    return { family: await prop('family'), model: await prop('model'), stepping: await prop('stepping') };
  }

  #secretAreaBase(): number {
    const fw = this.#preflight?.firmware ?? null;
    const area = fw?.table.secretArea ?? null;
    const problem = describeSecretAreaProblem(area);
    if (area === null || problem !== '') {
      throw new SupervisorError(
        'SUP_ERR_SECRET_NO_AREA',
        `VM ${this.vm}: no gpa given and the firmware ${fw?.path ?? '(none)'} has no usable launch-secret area (${problem || 'no firmware'}); ` +
          'give the guest physical address with --gpa, or use a firmware that declares one (an OVMF AmdSev build)',
        { details: { vm: this.vm, firmware: fw?.path ?? null } },
      );
    }
    return area.base;
  }

  /** Run attest actions one at a time, each only while held. */
  #exclusive<T>(action: string, run: () => Promise<T>): Promise<T> {
    const turn = this.#attestQueue.then(() => {
      if (this.#state !== 'held') {
        throw new SupervisorError('SUP_ERR_ATTEST_NOT_HELD', `VM ${this.vm} is ${this.#state}, not held for attestation; ${action} applies only to a held guest`, {
          details: { vm: this.vm, state: this.#state, action },
        });
      }
      return run();
    });
    this.#attestQueue = turn.catch(() => undefined);
    return turn;
  }

  #requireFresh(): void {
    if (this.#state !== 'defined') {
      throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} is ${this.#state}; a lifecycle starts once (create a new one to launch again)`);
    }
  }

  #requireQmp(): QmpClient {
    if (this.#qmp === undefined) throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} has no QMP connection (state ${this.#state})`);
    return this.#qmp;
  }

  #requireProc(): QemuProcess {
    if (this.#proc === undefined) throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${this.vm} has no QEMU process (state ${this.#state})`);
    return this.#proc;
  }

  #move(next: VmState): void {
    const previous = this.#state;
    this.#state = transition(previous, next, this.vm);
    this.#log.debug({ from: previous, to: next }, 'state');
    this.#persist();
  }

  // Section: the state file (daemon mode) ----------------------------------------------------------

  /** Queue an atomic write of state.json with the state as it is now; writes land in order. */
  #persist(): void {
    const file = this.#o.stateFile;
    const paths = this.#paths;
    // While attaching, the file keeps the state from before the restart: it is still the truth,
    // and a second restart in the middle must find it, not "attaching".
    if (file === undefined || paths === undefined || this.#state === 'attaching') return;
    const snapshot: PersistedVmState = {
      schema: VM_STATE_SCHEMA,
      vm: this.vm,
      state: this.#state,
      platform: this.#o.platform,
      sev: this.sev,
      pid: this.#proc?.pid ?? null,
      startTime: this.#startTime,
      monitorSocket: paths.monitorSocket,
      stderrFile: this.#o.detached?.stderrFile ?? null,
      record: this.#recordPath,
      holdDeadline: this.#state === 'held' && this.#holdDeadline !== null ? this.#holdDeadline.toISOString() : null,
      secretsInjected: this.#secretsInjected,
      ran: this.#ran,
      config: this.#launchConfigText(),
      configSource: this.#o.spec.source,
      error: this.#error === null ? null : { code: this.#error.code, message: this.#error.message },
      updatedAt: this.#deps.now().toISOString(),
    };
    this.#persisting = this.#persisting
      .then(() => this.#deps.writeState(file, snapshot))
      .catch((error: unknown) => this.#log.error({ err: error, file }, 'cannot write the VM state file; a restarted daemon may not re-attach this guest'));
  }

  /** The launch's config as canonical text ('' if it cannot be written: attach then fails closed). */
  #launchConfigText(): string {
    if (this.#configText === undefined) {
      try {
        this.#configText = formatVmConfig(this.#o.spec);
      } catch {
        this.#configText = '';
      }
    }
    return this.#configText;
  }

  /** The persisted QEMU, if it is still that process; null when gone or never spawned. */
  #adopt(persisted: PersistedVmState): QemuProcess | null {
    if (persisted.pid === null || persisted.startTime === null) return null;
    return this.#deps.adopt({
      pid: persisted.pid,
      startTime: persisted.startTime,
      cmdlineIncludes: persisted.monitorSocket,
      ...(persisted.stderrFile === null ? {} : { stderrFile: persisted.stderrFile }),
      logger: this.#vmLog,
    });
  }

  /**
   * attach() found QEMU alive but could not talk to it: let go without touching it (not stopped,
   * not resumed, state file unchanged) and say so. @throws SUP_ERR_VM_UNREACHABLE, always.
   */
  async #leaveUnreachable(proc: QemuProcess, cause: unknown): Promise<never> {
    this.#detached = true;
    this.#unsubscribeEvents?.();
    await this.#qmp?.close().catch(() => undefined);
    const why = cause instanceof Error ? cause.message : String(cause);
    const error = new SupervisorError(
      'SUP_ERR_VM_UNREACHABLE',
      `VM ${this.vm}: its QEMU (pid ${proc.pid}) is running, but its monitor could not be reached on re-attach (${why}); ` +
        'sevsup left it alone (not stopped, not resumed). Free its monitor (is another supervisor attached to it?), then `sevsup start ' +
        `${this.vm}\` re-attaches it`,
      { details: { vm: this.vm, pid: proc.pid }, cause },
    );
    this.#error = error;
    this.#log.error({ pid: proc.pid, reason: why }, 'guest unreachable on re-attach; left alone');
    this.#running.reject(error);
    this.#resolveFinished({ state: 'detached', ran: this.#ran });
    throw error;
  }

  /** attach() found no QEMU: it ended while nobody supervised it. Report what is known. */
  #endGone(persisted: PersistedVmState): void {
    if (persisted.state === 'stopping' || persisted.state === 'stopped') {
      const how = 'exited while sevsup was not running';
      this.#move('stopping');
      this.#emit({ event: 'stopped', how, exitCode: null, signal: null });
      this.#move('stopped');
      this.#resolveFinished({ state: 'stopped', how, ran: this.#ran });
      return;
    }
    const known = persisted.error;
    if (persisted.state === 'failed' && known !== null && isErrorCode(known.code)) {
      this.#fail(new SupervisorError(known.code, known.message, { details: { vm: this.vm } }));
      return;
    }
    const tail = persisted.stderrFile === null ? '' : readFileTail(persisted.stderrFile);
    const pid = persisted.pid === null ? '' : ` (pid ${persisted.pid})`;
    this.#fail(
      new SupervisorError('SUP_ERR_QEMU_EXITED', `VM ${this.vm}: QEMU${pid} ended while sevsup was not running; the guest was ${persisted.state}${quoteStderr(tail)}`, {
        details: { vm: this.vm, pid: persisted.pid, was: persisted.state, stderrTail: tail },
      }),
    );
  }

  #emitStopped(exit: QemuExit, how: string): void {
    this.#emit({ event: 'stopped', how, exitCode: exit.exitCode ?? null, signal: exit.signal ?? null });
  }

  #emit(event: LifecycleEvent): void {
    const record: LifecycleEventRecord = { ...event, vm: this.vm, time: this.#deps.now().toISOString() };
    for (const listener of [...this.#listeners]) {
      try {
        listener(record);
      } catch (error: unknown) {
        this.#log.error({ err: error }, 'lifecycle event listener threw');
      }
    }
  }
}

function quoteStderr(tail: string): string {
  const lines = errorLines(tail).slice(-MESSAGE_STDERR_LINES);
  return lines.length > 0 ? `: ${lines.join('; ')}` : ' (it printed nothing on stderr)';
}
