// How a lifecycle is made: its options (what to launch, where, how to run QEMU) and its
// collaborators (LifecycleDeps, the real modules by default; tests replace some of them).
// Owns: those shapes and the defaults. Must not: act (the lifecycle does).
import { SNP_FIRST_RUN_WINDOW_MS } from '../config/daemon-keys.js';
import type { VmSpec } from '../config/vm-spec.js';
import type { HostCaps } from '../host/host-caps.js';
import type { Logger } from '../log.js';
import { launchQemu, type LaunchOptions, type QemuProcess } from '../process/launcher.js';
import type { VmPaths } from '../process/run-dir.js';
import type { QemuArgvInput, QemuArgvOptions } from '../qemu/argv.js';
import type { QmpClient } from '../qmp/client.js';
import type { RelayHold, RelayOutcome } from '../relay/relay.js';
import { preflight, type Preflight } from './preflight.js';
import type { RecordPlatform } from './record.js';

/** What the owner gets when nobody answers a hold (DESIGN: the guest is rejected). */
export const DEFAULT_HOLD_TIMEOUT_MS = 600_000;

/** How long after its first `cont` an SEV-SNP guest's QEMU exiting is a failed launch (why: config/daemon-keys.ts). */
export const DEFAULT_SNP_FIRST_RUN_WINDOW_MS = SNP_FIRST_RUN_WINDOW_MS.default;

/**
 * The collaborators tests replace (the fake QEMU's environment, a firmware table it lacks); the
 * defaults are the real modules. Everything else the lifecycle calls directly.
 */
export interface LifecycleDeps {
  preflight(spec: VmSpec): Promise<Preflight>;
  launch(options: LaunchOptions): Promise<QemuProcess>;
}

export const DEFAULT_LIFECYCLE_DEPS: LifecycleDeps = { preflight, launch: launchQemu };

export interface LifecycleOptions {
  readonly spec: VmSpec;
  readonly caps: HostCaps;
  /** `simulated` marks every record and event of the sim platform. */
  readonly platform: RecordPlatform;
  /** QEMU, or the sim executable. */
  readonly binary: string;
  /** Arguments before QEMU's argv (the sim's `--sim-*` options). */
  readonly binaryArgs?: readonly string[];
  /**
   * QEMU's argv from the spec, the caps, the run dir's paths and the checked disks: qemu/argv.ts's
   * buildQemuArgv, given by the composition (guest/supervised.ts), since vm/ builds no argv.
   */
  readonly argv: (input: QemuArgvInput) => readonly string[];
  readonly runDir: string;
  readonly stateDir: string;
  /** An already prepared run dir (the run command prepares it first to open its control socket). */
  readonly paths?: VmPaths;
  /** Hold after measuring, whatever the config says. @default spec.attest !== 'none' (hold or relay) */
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
  /**
   * `attest: relay`: ask the guest owner's service during the hold (src/relay/relay.ts, given by the
   * composition so that vm/ holds no network client). Without it a relayed guest is rejected.
   */
  readonly relay?: (hold: RelayHold) => Promise<RelayOutcome>;
  /** QEMU's seccomp sandbox and the user it drops to after start-up (`-sandbox`, `-runas`). */
  readonly qemuOptions?: QemuArgvOptions;
  /** SEV-SNP: how long after the first `cont` a QEMU exit is a failed launch. @default DEFAULT_SNP_FIRST_RUN_WINDOW_MS */
  readonly snpFirstRunWindowMs?: number;
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
