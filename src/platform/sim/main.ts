// Entry point of `sevsup-sim-qemu`, the simulated SEV platform: QEMU 7.2's start-up on an SEV host,
// the launch measurement, then the real QEMU (no SEV underneath) behind a monitor socket that
// answers SEV commands as the real host would. NOT a security boundary: nothing is encrypted.
// Owns: the process lifetime — the private 0700 directory, -pidfile (the sim's own pid: it is the
// process a supervisor manages), signals forwarded to QEMU, QEMU's exit status mirrored, QEMU killed
// on every exit path. QEMU runs in the sim's process group and under setpriv --pdeathsig KILL, so a
// SIGKILLed sim takes QEMU with it; killing the sim's process group stops both as well.
// Its own stderr lines start `sevsup-sim: simulated:`; lines QEMU would print are QEMU's verbatim.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { access, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readSnpFirmware, type SnpFirmwareFile } from '../../attestation/snp-inputs.js';
import { isSupervisorError } from '../../errors.js';
import { isPidAlive } from '../../process/pid.js';
import { MAX_UNIX_SOCKET_PATH_BYTES } from '../../qemu/argv.js';
import { POLICY_BITS } from '../../sev/policy.js';
import { TIK_BYTES } from '../../sev/measurement.js';
import { snpPolicyFlagMask } from '../../sev/snp-policy.js';
import type { Area } from '../../sev/ovmf-table.js';
import { hashKernelInputs } from '../../sev/kernel-hashes.js';
import { cpuSignature as cpuidSignature } from '../../sev/vmsa.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { readQemuArgv, type QemuArgvModel } from './argv-model.js';
import { rewriteQemuArgv } from './argv-rewrite.js';
import {
  cpuSignature,
  gatherStartupFacts,
  isBzImage,
  measureLaunch,
  readFirmware,
  type FirmwareRead,
  type LaunchMeasurement,
} from './measure.js';
import { MonitorServer } from './monitor-server.js';
import { readSessionKeys } from './session-keys.js';
import { parseSimCommandLine, SIM_HELP, type ResolvedSimOptions } from './options.js';
import { launchMeasureFailureLine, SevGuestSim, type InjectedSecret, type ResumeOutcome, type SevPlatformVersion } from './sev-state.js';
import { answerReportRequest } from './snp-guest-report.js';
import { snpLaunchFinish, type SnpFinish } from './snp-launch.js';
import { loadOrCreateSnpPlatform, simStateDir, type SnpPlatformIdentity } from './snp-platform-keys.js';
import { DEFAULT_BIOS, objectErrorLine, planSnpStartup, readSnpObject, type SnpFirmwareFacts } from './snp-startup-checks.js';
import { planStartup, QEMU_PROGNAME, type StartupPlan } from './startup-checks.js';
import type { QemuArgvModel as Model } from './argv-model.js';
import { SIM_STATUS_FILE, SIM_STATUS_SCHEMA, snpStatus, writeStatusFile } from './status-file.js';

const PREFIX = 'sevsup-sim: simulated:';
/** util-linux's setpriv: gives QEMU a parent-death signal, which Node cannot set itself. */
const SETPRIV = '/usr/bin/setpriv';
/** Where QEMU 7.2 looks for a -bios given by bare name (Debian's data directory). */
const QEMU_DATA_DIR = '/usr/share/qemu';
/** The guest handle the simulated firmware assigns at LAUNCH_START (the first guest on the host). */
const SIM_GUEST_HANDLE = 1;
/** Exit code for a bad `--sim-*` option (a caller bug; QEMU's own option errors exit 1). */
const EXIT_USAGE = 2;
/** Exit code for a sim bug (sysexits EX_SOFTWARE, as sevsup's internal errors). */
const EXIT_INTERNAL = 70;

function note(text: string): void {
  process.stderr.write(`${PREFIX} ${text}\n`);
}

class SimExit extends Error {
  constructor(readonly exit: { readonly code: number } | { readonly signal: NodeJS.Signals }) {
    super('exit');
  }
}

const fail = (message: string, code = 1): never => {
  note(message);
  throw new SimExit({ code });
};

async function loadKey(file: string | null, dir: string, name: string, what: string): Promise<{ key: Buffer; path: string }> {
  if (file !== null) {
    const key = await readFile(file).catch((e: NodeJS.ErrnoException) =>
      fail(`cannot read the ${what} file ${file}: ${e.code ?? e.message}`),
    );
    if (key.length !== TIK_BYTES) fail(`the ${what} file ${file} must hold exactly ${TIK_BYTES} bytes, got ${key.length}`);
    return { key, path: file };
  }
  const key = randomBytes(TIK_BYTES);
  const path = join(dir, name);
  await writeFileAtomic(path, key, { mode: 0o600, overwrite: true });
  return { key, path };
}

/**
 * The platform's TIK/TEK for this launch: a simulated launch session's (the owner's keys, as the
 * session carries them on hardware; session-keys.ts), else --sim-tik/--sim-tek, else generated.
 */
async function launchKeys(
  o: ResolvedSimOptions,
  plan: StartupPlan,
  dir: string,
): Promise<{ tik: { key: Buffer; path: string }; tek: { key: Buffer; path: string } }> {
  const session = plan.kind === 'sev' ? await readSessionKeys(plan.params) : ({ kind: 'none' } as const);
  if (session.kind === 'fail') {
    note(session.problem);
    return failStartup({ kind: 'fail', lines: session.lines.map((l) => `${QEMU_PROGNAME}: ${l}`), exit: 'exit-1' });
  }
  if (session.kind === 'keys') {
    if (o.tik !== null || o.tek !== null) {
      return fail('give the keys either with --sim-tik/--sim-tek or in a simulated launch session (session-file), not both');
    }
    note(`TIK and TEK from the simulated launch session ${session.file}`);
    return { tik: { key: session.tik, path: session.file }, tek: { key: session.tek, path: session.file } };
  }
  return { tik: await loadKey(o.tik, dir, 'sim-tik.bin', 'TIK'), tek: await loadKey(o.tek, dir, 'sim-tek.bin', 'TEK') };
}

/** Private directories are named after the sim's pid, so a later sim can remove a SIGKILLed one's. */
const PRIVATE_DIR_PREFIX = '.sevsup-sim-';
const PRIVATE_DIR_NAME = /^\.sevsup-sim-(\d+)-/;
const UPSTREAM_SOCKET = 'qmp.sock';

async function removeStalePrivateDirs(parent: string): Promise<void> {
  const entries = await readdir(parent).catch(() => [] as string[]);
  for (const name of entries) {
    const pid = PRIVATE_DIR_NAME.exec(name)?.[1];
    if (pid !== undefined && !isPidAlive(Number(pid))) await rm(join(parent, name), { recursive: true, force: true });
  }
}

/**
 * The sim's private 0700 directory for QEMU's real monitor: next to the caller's monitor socket
 * (inside the supervisor's own private directory, removed with it) when the socket path fits a
 * sockaddr_un there, else in the temp directory.
 */
async function makePrivateDir(monitorDir: string): Promise<string> {
  const prefix = join(monitorDir, `${PRIVATE_DIR_PREFIX}${process.pid}-`);
  const parent = Buffer.byteLength(`${prefix}XXXXXX/${UPSTREAM_SOCKET}`) <= MAX_UNIX_SOCKET_PATH_BYTES ? monitorDir : tmpdir();
  await removeStalePrivateDirs(parent);
  return mkdtemp(join(parent, `${PRIVATE_DIR_PREFIX}${process.pid}-`));
}

function resolveBiosPath(path: string): string {
  return path.includes('/') || existsSync(path) ? path : join(QEMU_DATA_DIR, path);
}

/** The one running simulation: QEMU child, private directory, monitor server, status. */
class Simulation {
  child: ChildProcess | null = null;
  privateDir: string | null = null;
  server: MonitorServer | null = null;
  pidfile: string | null = null;
  private childExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;

  qemuAlive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  spawnQemu(binary: string, args: readonly string[]): void {
    const withPdeathsig = existsSync(SETPRIV);
    const child = withPdeathsig
      ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', binary, ...args], { stdio: 'inherit' })
      : spawn(binary, args, { stdio: 'inherit' });
    this.child = child;
    this.childExit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.once('error', (error) => note(`cannot run ${binary}: ${error.message}`));
  }

  async waitForQemu(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.childExit ?? { code: null, signal: null };
  }

  async killQemu(): Promise<void> {
    if (this.qemuAlive()) this.child?.kill('SIGKILL');
    await this.waitForQemu();
  }

  /** Idempotent cleanup for every exit path; leaves the public socket as QEMU leaves it. */
  async cleanup(): Promise<void> {
    await this.killQemu();
    await this.server?.close();
    if (this.privateDir !== null) rmSync(this.privateDir, { recursive: true, force: true });
    this.privateDir = null;
    if (this.pidfile !== null) await unlink(this.pidfile).catch(() => undefined);
    this.pidfile = null;
  }

  /** Last resort on process exit: nothing async is possible any more. */
  cleanupSync(): void {
    if (this.qemuAlive()) this.child?.kill('SIGKILL');
    if (this.privateDir !== null) rmSync(this.privateDir, { recursive: true, force: true });
  }
}

async function runPassthrough(sim: Simulation, o: ResolvedSimOptions, argv: readonly string[]): Promise<never> {
  sim.spawnQemu(o.qemu, argv);
  const exit = await sim.waitForQemu();
  throw new SimExit(exit.signal !== null ? { signal: exit.signal } : { code: exit.code ?? 1 });
}

function failStartup(plan: Extract<StartupPlan, { kind: 'fail' }>): never {
  for (const line of plan.lines) process.stderr.write(`${line}\n`);
  throw new SimExit(plan.exit === 'abort' ? { signal: 'SIGABRT' } : { code: 1 });
}

async function measure(
  o: ResolvedSimOptions,
  model: QemuArgvModel,
  plan: Extract<StartupPlan, { kind: 'sev' }>,
  firmware: string,
  tik: Buffer,
  policy: number,
  platform: SevPlatformVersion,
): Promise<LaunchMeasurement | null> {
  if (o.faults.has('no-measurement')) return null;
  let sevEs = null;
  if (plan.es) {
    const sig = cpuSignature(model.cpuModel);
    if (sig === null)
      fail(`SEV-ES needs the CPU signature of -cpu ${model.cpuModel ?? '(default)'}, which the simulated platform does not know`);
    sevEs = { vcpus: model.vcpus, ...(sig as NonNullable<typeof sig>), resetAddress: plan.resetAddress ?? 0, vmsaInit: 'legacy' as const };
  }
  try {
    return await measureLaunch({ firmware, model, measureKernelHashes: plan.measureKernelHashes, sevEs, tik, policy, platform });
  } catch (error: unknown) {
    return fail(`cannot compute the launch measurement: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** QEMU 10's debug-allowed policy bit: the wrong-policy fault flips it, as it flips SEV's NODBG. */
const SNP_POLICY_DEBUG = snpPolicyFlagMask('DEBUG');

/** What the SNP path gives the guest: its applied policy and its first run. */
interface SnpPrepared {
  readonly requestedPolicy: bigint;
  readonly policy: bigint;
  /** The firmware's launch-secret area (QEMU 10 looks it up before refusing the state). */
  readonly secretArea: Area | null;
  readonly finish: () => SnpFinish;
}

/**
 * QEMU 10's start-up of a sev-snp-guest on the simulated host (snp-startup-checks.ts), with the
 * files it reads: the -bios image (kept: QEMU measures the bytes it loaded), the kernel inputs
 * when it builds the kernel-hashes table. Fails as QEMU would; returns the first-run step.
 */
async function prepareSnp(o: ResolvedSimOptions, model: Model): Promise<SnpPrepared> {
  const object = model.sevObjects.find((s) => s.id === model.cgsId);
  if (model.firmware?.kind === 'pflash' || model.firmware?.kind === 'unsupported') {
    return fail(
      'an SEV-SNP guest takes its firmware as -bios (QEMU 10 maps it into guest_memfd RAM; KVM cannot map a pflash ROM for SNP): not simulated',
    );
  }
  const read = object === undefined ? null : readSnpObject(object);
  const existingDevices = new Set<string>();
  if (read !== null && !('error' in read) && read.sevDevice !== '/dev/sev') {
    if (
      await access(read.sevDevice).then(
        () => true,
        () => false,
      )
    )
      existingDevices.add(read.sevDevice);
  }
  const given = model.firmware?.kind === 'bios' ? model.firmware.path : DEFAULT_BIOS;
  const path = resolveBiosPath(given);
  let file: SnpFirmwareFile | null = null;
  let firmware: SnpFirmwareFacts;
  try {
    file = await readSnpFirmware(path);
    firmware = { given, size: file.size, table: file.table, tableError: null };
  } catch (error: unknown) {
    const size = await stat(path).then(
      (s) => (s.isFile() ? s.size : null),
      () => null,
    );
    const tableError =
      isSupervisorError(error) && error.code === 'SUP_ERR_FIRMWARE_TABLE_INVALID' ? `${QEMU_PROGNAME}: ${error.message}` : null;
    firmware = { given, size, table: null, tableError };
  }
  const plan = planSnpStartup(model, {
    host: { apiMajor: o.apiMajor, apiMinor: o.apiMinor, existingDevices },
    firmware,
    kernelIsBzImage: model.kernel === null ? null : await isBzImage(model.kernel),
  });
  if (plan.kind === 'fail') return failStartup(plan);
  for (const line of plan.lines) process.stderr.write(`${line}\n`);
  const fw = file as SnpFirmwareFile;
  let kernelHashesTable: Buffer | null = null;
  if (plan.kernelHashesBuilt && model.kernel !== null) {
    try {
      const inputs = await hashKernelInputs({
        kernel: model.kernel,
        ...(model.initrd === null ? {} : { initrd: model.initrd }),
        ...(model.append === null ? {} : { cmdline: model.append }),
      });
      kernelHashesTable = inputs.table;
    } catch (error: unknown) {
      return fail(`cannot hash the kernel inputs: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const sig = cpuSignature(model.cpuModel);
  if (sig === null)
    return fail(`SEV-SNP needs the CPU signature of -cpu ${model.cpuModel ?? '(default)'}, which the simulated platform does not know`);
  const policy = o.faults.has('wrong-policy') ? plan.params.policy ^ SNP_POLICY_DEBUG : plan.params.policy;
  const params = plan.params;
  return {
    requestedPolicy: params.policy,
    policy,
    secretArea: fw.table.secretArea,
    finish: () =>
      snpLaunchFinish({
        params,
        policy,
        firmware: fw.bytes,
        metadata: fw.metadata,
        kernelHashesTable,
        kernelHashesBase: fw.table.hashesArea?.base ?? 0,
        resetAddress: plan.resetAddress,
        vcpus: model.vcpus,
        vcpuSignature: cpuidSignature(sig.family, sig.model, sig.stepping),
        hardwareError: o.faults.has('crash-on-cont'),
      }),
  };
}

async function run(sim: Simulation, argv: readonly string[]): Promise<never> {
  const cl = parseSimCommandLine(argv);
  if (cl.kind === 'help') {
    process.stdout.write(SIM_HELP);
    throw new SimExit({ code: 0 });
  }
  if (cl.kind === 'error') return fail(cl.message, EXIT_USAGE);
  if (cl.kind === 'init') {
    const dir = simStateDir(cl.options.stateDir);
    const identity = await loadOrCreateSnpPlatform(dir).catch((e: unknown) =>
      fail(`cannot make the simulated SNP platform in ${dir}: ${e instanceof Error ? e.message : String(e)}`),
    );
    process.stdout.write(`${join(identity.dir, 'snp')}\n`);
    throw new SimExit({ code: 0 });
  }
  const o = cl.options;
  const model = readQemuArgv(cl.qemuArgv);
  const object = model.cgsId === null ? null : (model.sevObjects.find((s) => s.id === model.cgsId) ?? null);
  if (model.monitor === null && object === null) return runPassthrough(sim, o, cl.qemuArgv);
  if (model.daemonize) return fail('-daemonize is not supported: the simulated platform must stay the process that is supervised');
  const monitor = model.monitor;
  if (monitor === null || !monitor.server) {
    return fail(
      'needs the QMP monitor as a unix socket server: -chardev socket,id=ID,path=P,server=on,wait=off -mon chardev=ID,mode=control',
    );
  }
  const monitorDir = dirname(monitor.path);

  // QEMU 7.2's start-up on the SEV host, up to the measurement.
  const firmwarePath = model.firmware?.kind === 'pflash' || model.firmware?.kind === 'bios' ? resolveBiosPath(model.firmware.path) : null;
  let plan: StartupPlan = { kind: 'plain' };
  let firmware: FirmwareRead = { info: null, tableError: null };
  // QEMU 10 creates every -object, linked or not: an unlinked sev-snp-guest is inert, but its
  // properties are still checked (the linked one's are, in planSnpStartup).
  for (const other of model.sevObjects) {
    if (other.qomType !== 'sev-snp-guest' || other === object) continue;
    const read = readSnpObject(other);
    if ('error' in read) return failStartup({ kind: 'fail', lines: [objectErrorLine(other, read)], exit: 'exit-1' });
  }
  const snp = object?.qomType === 'sev-snp-guest' ? await prepareSnp(o, model) : null;
  if (object !== null && snp === null) {
    if (model.firmware?.kind === 'unsupported') return fail(`cannot measure the firmware: ${model.firmware.reason}`);
    if (firmwarePath !== null) firmware = await readFirmware(firmwarePath);
    plan = planStartup(model, await gatherStartupFacts(model, firmware));
    if (plan.kind === 'fail') return failStartup(plan);
    if (plan.kind === 'unreadable')
      note(`cannot read the sev-guest object (${plan.reason}); QEMU judges it, and the guest is not simulated as SEV`);
    if (plan.kind === 'sev' && firmwarePath === null)
      return fail('an SEV guest needs a firmware image (-bios or pflash unit 0) to measure');
  }
  // The simulated SNP platform's chain and chip key (made on first use): signs the guest's reports.
  // Not awaited: on first use the keys take up to a minute, and the launch must not wait for them.
  let snpIdentity: SnpPlatformIdentity | string = 'the simulated SNP platform is still making its chain (first use); try again shortly';
  if (snp !== null) {
    const dir = simStateDir(o.stateDir);
    void loadOrCreateSnpPlatform(dir).then(
      (identity) => {
        snpIdentity = identity;
      },
      (e: unknown) => {
        snpIdentity = `cannot make or read the simulated SNP platform in ${dir} (see the sim's stderr)`;
        note(
          `no signed SNP reports: cannot make or read the simulated SNP platform in ${dir}: ${e instanceof Error ? e.message : String(e)}`,
        );
      },
    );
  }
  const snpReportId = randomBytes(32);
  const { tik, tek } = await launchKeys(o, plan, monitorDir);

  const platform = { apiMajor: o.apiMajor, apiMinor: o.apiMinor, buildId: o.buildId };
  const sevOn = (plan.kind === 'sev' || snp !== null) && !o.faults.has('sev-disabled');
  const requestedPolicy = snp !== null ? Number(snp.requestedPolicy) : plan.kind === 'sev' ? plan.params.policy : 0;
  // wrong-policy: the platform applied another policy than asked (debugging allowed instead of not).
  const policy = snp !== null ? Number(snp.policy) : o.faults.has('wrong-policy') ? requestedPolicy ^ POLICY_BITS.NODBG : requestedPolicy;
  let measurement: LaunchMeasurement | null = null;
  if (plan.kind === 'sev') {
    for (const line of plan.lines) process.stderr.write(`${line}\n`);
    if (sevOn) measurement = await measure(o, model, plan, firmwarePath as string, tik.key, policy, platform);
  }
  const guest = new SevGuestSim({
    enabled: sevOn,
    policy,
    platform,
    handle: SIM_GUEST_HANDLE,
    launchDigest: measurement?.digest ?? null,
    measurement,
    secretArea: snp !== null ? snp.secretArea : (firmware.info?.table.secretArea ?? null),
    memoryBytes: model.memoryBytes,
    tik: tik.key,
    tek: tek.key,
    replyShape: o.replyShape,
    crashOnCont: o.faults.has('crash-on-cont'),
    onlyMigratable: model.onlyMigratable,
    snp: snp === null || !sevOn ? null : { finish: snp.finish },
  });

  sim.privateDir = await makePrivateDir(monitorDir);
  const upstreamPath = join(sim.privateDir, UPSTREAM_SOCKET);
  if (model.pidfile !== null) {
    await writeFile(model.pidfile, `${process.pid}\n`, { mode: 0o600 });
    sim.pidfile = model.pidfile;
  }
  let contCount = 0;
  const statusPath = join(monitorDir, SIM_STATUS_FILE);
  let statusProblemReported = false;
  const writeStatus = (): void => {
    const problem = writeStatusFile(statusPath, {
      schema: SIM_STATUS_SCHEMA,
      platform: 'simulated',
      pid: process.pid,
      qemuPid: sim.child?.pid ?? null,
      sev: sevOn,
      state: guest.state,
      policy,
      requestedPolicy,
      apiMajor: o.apiMajor,
      apiMinor: o.apiMinor,
      buildId: o.buildId,
      handle: SIM_GUEST_HANDLE,
      measurement: guest.measurementBase64,
      launchDigest: measurement?.digest.toString('hex') ?? null,
      faults: [...o.faults],
      injectedSecrets: guest.injected,
      contCount,
      tikFile: tik.path,
      tekFile: tek.path,
      sevType: !sevOn ? null : snp !== null ? 'sev-snp' : 'sev',
      snp: guest.snpFacts === null ? null : snpStatus(guest.snpFacts),
    });
    if (problem !== null && !statusProblemReported) note(`cannot write ${statusPath}: ${problem}`);
    statusProblemReported ||= problem !== null;
  };

  let fatal: ((outcome: Extract<ResumeOutcome, { kind: 'fatal' | 'abort' }>) => void) | null = null;
  const onResume = (): void => {
    contCount++;
    const outcome = guest.resume();
    writeStatus();
    if (outcome.kind === 'fatal' || outcome.kind === 'abort') fatal?.(outcome);
  };
  const exitPromise = new Promise<never>((_, reject) => {
    fatal = (outcome): void => {
      if (outcome.kind === 'fatal' && outcome.note != null) note(`the launch failed: ${outcome.note}`);
      process.stderr.write(`${QEMU_PROGNAME}: ${outcome.message}\n`);
      // QEMU exits inside vm_state_notify: nothing after the RESUME event reaches the client.
      void sim.server?.close();
      reject(new SimExit(outcome.kind === 'abort' ? { signal: 'SIGABRT' } : { code: 1 }));
    };
  });
  exitPromise.catch(() => undefined);

  sim.server = new MonitorServer({
    publicPath: monitor.path,
    upstreamPath,
    guest,
    replyDelayMs: o.faults.has('slow-qmp') ? o.delayMs : 0,
    isQemuAlive: () => sim.qemuAlive(),
    onResume,
    hooks: {
      randomBytes: (n) => randomBytes(n),
      snpReport: (args) => answerReportRequest(args, guest, snpIdentity, platform, snpReportId),
      secretAccepted: (injected: InjectedSecret) => {
        const list = injected.secrets.map((s) => `${s.guid} (${s.length} bytes)`).join(', ');
        note(
          `launch secret accepted at gpa 0x${injected.gpa.toString(16)}: ${injected.secrets.length} secret(s)${list === '' ? '' : `: ${list}`}`,
        );
        writeStatus();
      },
      secretRefused: (desc, reason) => note(`launch secret refused: ${desc}${reason === null ? '' : ` (${reason})`}`),
    },
  });
  await sim.server.listen();
  const qemuArgv = rewriteQemuArgv(cl.qemuArgv, model, {
    sevObjectId: object?.id ?? null,
    monitorPath: upstreamPath,
    accel: o.accel,
  });
  sim.spawnQemu(o.qemu, qemuArgv);
  writeStatus();
  if (sevOn && snp === null && measurement === null) process.stderr.write(`${QEMU_PROGNAME}: ${launchMeasureFailureLine()}\n`);
  // Without -S, vm_start (and so LAUNCH_FINISH) runs before the monitor is usable.
  if (!model.startPaused && sevOn) onResume();

  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(signal, () => {
      // QEMU exits on it; the sim then exits with QEMU's status.
      if (sim.qemuAlive()) sim.child?.kill(signal);
    });
  }
  const exit = await Promise.race([sim.waitForQemu(), exitPromise]);
  throw new SimExit(exit.signal !== null ? { signal: exit.signal } : { code: exit.code ?? 1 });
}

/** Run the simulated platform with `argv` (without node and the script); never returns. */
export async function runSimQemu(argv: readonly string[]): Promise<never> {
  const sim = new Simulation();
  process.once('exit', () => sim.cleanupSync());
  let exit: SimExit['exit'];
  try {
    await run(sim, argv);
    exit = { code: 0 };
  } catch (error: unknown) {
    if (error instanceof SimExit) exit = error.exit;
    else {
      note(`internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      exit = { code: EXIT_INTERNAL };
    }
  }
  await sim.cleanup();
  if ('signal' in exit) {
    // Die of the same signal as QEMU did, so the caller sees exactly QEMU's status.
    for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.removeAllListeners(s);
    process.kill(process.pid, exit.signal);
  }
  process.exit('code' in exit ? exit.code : 1);
}
