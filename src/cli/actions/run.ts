// `sevsup run`: compose config, host caps, platform, run dir, control socket and the lifecycle for
// one foreground guest; print its lifecycle events; stop it on SIGINT/SIGTERM.
// Owns: option validation and the printing of events. Must not: know the launch order
// (vm/lifecycle.ts does) or print secrets (events carry none).
import { pino } from 'pino';
import { lifecycleTarget, singleLifecycle } from '../../api/lifecycle-target.js';
import { startControlServer } from '../../api/server.js';
import { POWERDOWN_TIMEOUT_SECONDS, SNP_FIRST_RUN_WINDOW_MS } from '../../config/daemon-keys.js';
import { loadVmConfig } from '../../config/vm-config.js';
import { SupervisorError } from '../../errors.js';
import { createLogger } from '../../log.js';
import { SIM_FAULTS, selectPlatform, type SimFault, type SimOptions } from '../../platform/select.js';
import { disableCoreDumps } from '../../process/core-limit.js';
import { lockDirs } from '../../process/dir-lock.js';
import { prepareVmRunDir } from '../../process/run-dir.js';
import { superviseGuest } from '../../guest/supervised.js';
import type { LifecycleEventRecord } from '../../vm/types.js';
import { DEFAULT_RUN_DIR } from '../../paths.js';
import type { RunCliOptions } from '../commands/run.js';

/** Upper bounds that catch unit mix-ups (ms given as seconds) rather than limit anyone. */
const MAX_HOLD_TIMEOUT_S = 7 * 24 * 3600;
const MAX_QMP_TIMEOUT_MS = 10 * 60_000;
const MAX_SIM_DELAY_MS = 60_000;

export async function runRun(ref: string, opts: RunCliOptions): Promise<void> {
  const holdTimeoutS = integerOption('--hold-timeout', opts.holdTimeout, 1, MAX_HOLD_TIMEOUT_S);
  const qmpTimeoutMs = integerOption('--qmp-timeout', opts.qmpTimeout, 1, MAX_QMP_TIMEOUT_MS);
  const powerdownS = integerOption(
    '--powerdown-timeout',
    opts.powerdownTimeout,
    POWERDOWN_TIMEOUT_SECONDS.min,
    POWERDOWN_TIMEOUT_SECONDS.max,
  );
  const snpWindowMs = integerOption(
    '--snp-first-run-window',
    opts.snpFirstRunWindow,
    SNP_FIRST_RUN_WINDOW_MS.min,
    SNP_FIRST_RUN_WINDOW_MS.max,
  );
  const sim = opts.platform === 'sim';
  if (!sim) {
    const simOnly = (['simTik', 'simTek', 'simFault', 'simDelayMs', 'simReplyShape'] as const).filter((k) => opts[k] !== undefined);
    if (simOnly.length > 0) throw usage(`--${kebab(simOnly[0] ?? '')} needs --platform sim`);
  }

  const spec = await loadVmConfig(ref, opts.vmDir === undefined ? {} : { vmDir: opts.vmDir });
  if (opts.hold === true && spec.sev === undefined) {
    throw usage(`VM ${spec.name} is not an SEV guest: there is no launch measurement to attest, so --hold does not apply`);
  }
  if (snpWindowMs !== undefined && spec.sev?.type !== 'snp') {
    throw usage(`VM ${spec.name} is not an SEV-SNP guest: --snp-first-run-window applies only to an SNP guest's first run`);
  }
  const logger = createLogger(
    { level: logLevel(opts.logLevel), base: { platform: sim ? 'simulated' : 'hardware' } },
    pino.destination({ dest: 2, sync: true }),
  );

  // A VM's own `qemu:` key names its QEMU on real hardware; the simulator runs the given one.
  const qemu = sim ? opts.qemu : (spec.qemu ?? opts.qemu);
  // Never beside a daemon on the same directories (it would re-attach, and fight over, this guest).
  // Taken while the platform is chosen (flock(1) is a process start; a hardware platform probes the
  // host); the platform's failure is still the one reported when both fail, as before.
  const locking = lockDirs([opts.runDir, opts.stateDir], { mode: 'shared', who: 'sevsup run' });
  locking.catch(() => undefined); // awaited below
  // The zero core limit QEMU inherits is set by prlimit(1), another process start: begun now, beside
  // the locks, so it is done by spawn. The launcher still awaits it (and retries and fails the
  // launch when it was not set): this only starts it sooner.
  disableCoreDumps().catch(() => undefined);
  const { platform, binary, binaryArgs, caps } = await selectPlatform({
    platform: opts.platform,
    ...(qemu === undefined ? {} : { qemu }),
    ...(opts.hostCaps === undefined ? {} : { hostCaps: opts.hostCaps }),
    ...(sim ? { sim: simOptions(opts) } : {}),
    logger,
  });

  await locking;
  // Refuses while another supervisor's sockets for this VM still answer.
  const paths = await prepareVmRunDir(opts.runDir, spec.name);
  const { lifecycle, closeProxy } = superviseGuest({
    spec,
    caps,
    platform,
    binary,
    binaryArgs,
    runDir: opts.runDir,
    stateDir: opts.stateDir,
    paths,
    logger,
    ...(opts.hold === true ? { hold: true } : {}),
    ...(holdTimeoutS === undefined ? {} : { holdTimeoutMs: holdTimeoutS * 1000 }),
    ...(qmpTimeoutMs === undefined ? {} : { qmpTimeoutMs }),
    ...(powerdownS === undefined ? {} : { powerdownTimeoutMs: powerdownS * 1000 }),
    ...(snpWindowMs === undefined ? {} : { snpFirstRunWindowMs: snpWindowMs }),
    ...(opts.sandbox === true || opts.runas !== undefined
      ? { qemuOptions: { ...(opts.sandbox === true ? { sandbox: true } : {}), ...(opts.runas === undefined ? {} : { runAs: opts.runas }) } }
      : {}),
  });
  const attestHint = opts.runDir === DEFAULT_RUN_DIR ? spec.name : `--run-dir ${opts.runDir} ${spec.name}`;
  lifecycle.onEvent(opts.json === true ? printJsonLine : (e) => printHuman(e, attestHint));

  const server = await startControlServer({ socketPath: paths.controlSocket, target: lifecycleTarget(singleLifecycle(lifecycle)), logger });
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'signal received; stopping the guest');
    void lifecycle.stop(`signal ${signal}`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await lifecycle.start().catch(() => undefined); // the outcome below says what happened
    const outcome = await lifecycle.finished;
    if (outcome.state === 'failed') throw outcome.error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await closeProxy();
    await server.close();
    logger.flush();
  }
}

function simOptions(opts: RunCliOptions): Omit<SimOptions, 'qemu'> {
  const faults = (opts.simFault ?? []).map((name): SimFault => {
    const fault = SIM_FAULTS.find((f) => f === name);
    if (fault === undefined) throw usage(`--sim-fault must be one of ${SIM_FAULTS.join(', ')}; got '${name}'`);
    return fault;
  });
  const delayMs = integerOption('--sim-delay-ms', opts.simDelayMs, 0, MAX_SIM_DELAY_MS);
  return {
    ...(opts.simTik === undefined ? {} : { tik: opts.simTik }),
    ...(opts.simTek === undefined ? {} : { tek: opts.simTek }),
    ...(faults.length === 0 ? {} : { faults }),
    ...(delayMs === undefined ? {} : { delayMs }),
    ...(opts.simReplyShape === undefined ? {} : { replyShape: opts.simReplyShape }),
  };
}

function printJsonLine(event: LifecycleEventRecord): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** One line per event for people; failures are printed by the CLI's error path (stderr). */
function printHuman(e: LifecycleEventRecord, attestHint: string): void {
  const line = humanLine(e, attestHint);
  if (line !== null) process.stdout.write(`${e.vm}: ${line}\n`);
}

function humanLine(e: LifecycleEventRecord, attestHint: string): string | null {
  switch (e.event) {
    case 'starting':
      return `starting (${e.platform === 'simulated' ? 'SIMULATED SEV platform' : 'hardware'}${e.sev ? '' : ', no SEV'})`;
    case 'spawned':
      return `QEMU started paused (pid ${e.pid})`;
    case 'attached':
      return `re-attached to QEMU (pid ${e.pid}; was ${e.was}, QEMU reports ${e.qemuStatus})`;
    case 'checked':
      return `SEV checks passed: ${e.sevType}, policy ${e.policy}, firmware API ${e.apiMajor}.${e.apiMinor} build ${e.buildId}`;
    case 'measured':
      return `launch measurement ${e.measurement}\n${e.vm}: record ${e.record}`;
    case 'snp-recorded':
      return (
        `SNP launch record ${e.record}\n${e.vm}: expected launch digest ${e.expectedLaunchDigest} (the guest's attestation report must carry it)` +
        (e.idBlockMatches === false
          ? `\n${e.vm}: WARNING: the ID block pins another digest or policy: the platform will refuse this launch`
          : '')
      );
    case 'held':
      return `held for attestation until ${e.deadline}: sevsup attest ${attestHint} --approve | --reject${e.secretInjection ? ' | --inject-secret HEADER_FILE SECRET_FILE' : ''}`;
    case 'secret-injected':
      return `launch secret injected at gpa 0x${e.gpa.toString(16)} (header ${e.headerBytes} bytes, secret ${e.secretBytes} bytes)`;
    case 'resumed':
      return 'resumed';
    case 'running':
      return `running (pid ${e.pid})`;
    case 'paused':
      return `paused (${e.reason})`;
    case 'stopping':
      return `stopping (${e.reason})`;
    case 'stopped':
      return `QEMU stopped (${e.how}${e.exitCode === null ? '' : `, exit code ${e.exitCode}`}${e.signal === null ? '' : `, ${e.signal}`})`;
    case 'failed':
      return null;
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function logLevel(text: string): (typeof LOG_LEVELS)[number] {
  const level = LOG_LEVELS.find((l) => l === text);
  if (level === undefined) throw usage(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  return level;
}

function integerOption(name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) throw usage(`${name} must be a whole number from ${min} to ${max}, got '${text}'`);
  return value;
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function usage(message: string): SupervisorError {
  return new SupervisorError('SUP_ERR_USAGE', message);
}
