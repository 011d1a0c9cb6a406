// `sevsup demo`: an SEV guest from launch to power-off on the simulated platform, each step
// explained: the owner's keys and simulated launch session; with the daemon (default), the owner's
// attestation service (demo/owner-service.ts) that the daemon relays the held guest to, which
// injects the secret and approves with nobody typing, and rejects a changed launch; with `--via
// run`, the owner by hand (secret, approve); the record checked off-host with libvirt's
// virt-qemu-sev-validate, refused migrate/dump, the serial console; then an SEV-SNP guest
// (demo/snp.ts); and an orderly stop. Owns: the order of the steps (each a function here or in
// demo/sev-steps.ts, relay-steps.ts, snp.ts) and what is said about the set-up and the stop, and the
// demo's signal handling and clean-up; cli/actions/demo.ts only calls runDemo().
// Must not: leave anything running on any exit path (failure, Ctrl-C, SIGTERM), or show key or
// secret bytes (the demo prints lengths and file names only).
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { isSupervisorError, SupervisorError } from '../errors.js';
import type { VmStatus } from '../vm/types.js';
import { sevsupStep, type Ctx } from './context.js';
import { Narrator } from './narrator.js';
import { DEMO_PATHS } from './paths.js';
import { sweepProcesses } from './processes.js';
import { DEMO_HOST_ID, startOwnerService } from './owner-service.js';
import { CHANGED_CMDLINE, changedLaunchRefused, CMDLINE, HELD_TIMEOUT_MS, relayed, VM, VM_CHANGED } from './relay-steps.js';
import { DEMO_SECRET, measurementRecord, migrateAndDumpRefused, ownerByHand, serialConsole, verifiedOffHost } from './sev-steps.js';
import { snpDemo, SNP_STEPS } from './snp.js';
import { startDaemonSupervisor, startRunSupervisor, waitForState, type DemoPaths, type DemoSupervisor } from './supervisor.js';

const {
  sevsup: SEVSUP,
  kernel: KERNEL,
  initrd: INITRD,
  firmware: FIRMWARE,
  sim: SIM,
  python: PYTHON,
  validator: VALIDATOR,
  snpFirmware: SNP_FIRMWARE,
  simState: SIM_STATE,
} = DEMO_PATHS;

/** The SEV guest's eight, the SNP guest's, and the final stop. */
function stepsFor(relay: boolean): number {
  // With the relay, the owner's service also refuses a changed launch (one more step).
  return 8 + (relay ? 1 : 0) + SNP_STEPS + 1;
}

export interface DemoOptions {
  /** Keep the temporary work directory. */
  readonly keep?: boolean;
  /** Which supervisor drives the guest; `auto` is the daemon. */
  readonly via: 'auto' | 'daemon' | 'run';
}

/**
 * Run the demo. Sets process.exitCode to 130/143 when interrupted.
 * @throws the failed step's error, its message prefixed with the step (after everything is stopped).
 */
export async function runDemo(opts: DemoOptions): Promise<void> {
  // `auto` is the daemon: every build of sevsup has the `daemon` command.
  const via = opts.via === 'auto' ? 'daemon' : opts.via;
  checkPrerequisites(via);

  const steps = stepsFor(via === 'daemon');
  const say = new Narrator(process.stdout, steps);
  const abort = new AbortController();
  let interrupted: NodeJS.Signals | null = null;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted !== null) return;
    interrupted = signal;
    process.stderr.write(`\nsevsup demo: ${signal}: stopping everything…\n`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  const work = await mkdtemp(join(tmpdir(), 'sevsup-demo-'));
  const paths: DemoPaths = {
    work,
    vmDir: join(work, 'vms'),
    runDir: join(work, 'run'),
    stateDir: join(work, 'state'),
    ownerDir: join(work, 'owner'),
    tik: join(work, 'owner', 'tik.bin'),
    tek: join(work, 'owner', 'tek.bin'),
  };
  const ctx: Ctx = { say, paths, signal: abort.signal, via, supervisor: undefined, snpSupervisor: undefined, ownerService: undefined };
  let failure: unknown;
  try {
    await demo(ctx);
  } catch (error: unknown) {
    failure = error;
  } finally {
    await cleanUp(ctx, opts.keep === true, failure !== undefined || interrupted !== null);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
  }
  if (interrupted !== null) {
    process.exitCode = interrupted === 'SIGINT' ? 130 : interrupted === 'SIGTERM' ? 143 : 129;
    return;
  }
  if (failure !== undefined) {
    const where = `demo step ${say.current}/${steps} failed`;
    if (isSupervisorError(failure))
      throw new SupervisorError(failure.code, `${where}: ${failure.message}`, { details: failure.details, cause: failure });
    throw new SupervisorError('SUP_ERR_INTERNAL', `${where}: ${failure instanceof Error ? failure.message : String(failure)}`, {
      cause: failure,
    });
  }
}

function checkPrerequisites(via: 'daemon' | 'run'): void {
  const needed: [string, string][] = [
    [KERNEL, 'the demo kernel'],
    [INITRD, 'the demo initrd'],
    [FIRMWARE, 'the test firmware'],
    [SIM, 'the simulated SEV platform'],
    [SIM_STATE, "the simulated SNP platform's chain (.cache/test-assets/sim-state)"],
    [SNP_FIRMWARE, "the SNP guest's test firmware (.cache/test-assets/ovmf-snp-test.fd)"],
    ...(via === 'daemon'
      ? ([[DEMO_PATHS.openssl, "openssl (package openssl), for the owner service's certificates"]] as [string, string][])
      : []),
    [PYTHON, "the system Python (for libvirt's validator)"],
    [VALIDATOR, "libvirt's virt-qemu-sev-validate (package libvirt-clients-qemu)"],
  ];
  const missing = needed.filter(([path]) => !existsSync(path));
  // The simulator runs the real QEMU from PATH, as sevsup does.
  const onPath = (process.env['PATH'] ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, 'qemu-system-x86_64')));
  if (!onPath) missing.push(['qemu-system-x86_64 (on PATH)', 'QEMU (package qemu-system-x86)']);
  if (missing.length > 0) {
    throw new SupervisorError(
      'SUP_ERR_USAGE',
      `cannot run the demo: ${missing.map(([path, what]) => `${what} (${path})`).join(', ')} missing; run \`bash scripts/setup.sh\` as root first`,
    );
  }
}

/** The steps, in order; each says what it shows (the SNP part is demo/snp.ts's). */
async function demo(ctx: Ctx): Promise<void> {
  const relay = ctx.via === 'daemon';
  introduce(ctx);
  const changedConf = await configAndKeys(ctx, relay); // 1
  const { supervisor, held } = await startSupervisor(ctx, relay); // 2
  const record = await measurementRecord(ctx, supervisor, held); // 3
  await verifiedOffHost(ctx, record); // 4
  if (relay)
    await relayed(ctx, supervisor, held.record); // 5, 6
  else await ownerByHand(ctx, supervisor, record);
  await migrateAndDumpRefused(ctx, supervisor); // 7
  await serialConsole(ctx, supervisor); // 8
  if (relay) await changedLaunchRefused(ctx, supervisor, changedConf); // 9
  await snpDemo(ctx);
  await stopEverything(ctx, supervisor);
  summarize(ctx, relay);
}

/** What the demo is, and that its platform is simulated. */
function introduce(ctx: Ctx): void {
  const { say, paths } = ctx;
  say.raw(
    [
      'sevsup demo: an AMD SEV guest launched, attested, given a secret and run',
      '',
      'THE PLATFORM IS SIMULATED. This machine has no SEV hardware: real QEMU boots the guest (unencrypted,',
      "under TCG) and sevsup's simulator stands in for AMD's secure processor, answering QEMU's SEV commands",
      'and computing the launch measurement as the hardware would. Nothing here is a security boundary;',
      'every record and log line says "simulated".',
      `Work directory: ${paths.work}`,
      '',
    ].join('\n'),
  );
}

/**
 * Step 1: the owner's keys and launch session, with the relay the owner's service, and the VM config.
 * @returns the config of the guest the host later starts with a changed command line (step 9).
 */
async function configAndKeys(ctx: Ctx, relay: boolean): Promise<string> {
  const { say, paths } = ctx;
  say.step('The VM config, and who holds the keys');
  await mkdir(paths.vmDir);
  // The owner makes the keys; the simulated launch session carries them to the platform.
  await mkdir(paths.ownerDir, { mode: 0o700 });
  await Promise.all([writeFile(paths.tik, randomBytes(16), { mode: 0o600 }), writeFile(paths.tek, randomBytes(16), { mode: 0o600 })]);
  const session = join(paths.work, 'session');
  const conf = join(paths.vmDir, `${VM}.conf`);
  say.say(
    'The guest boots a real Debian kernel and a tiny initrd straight from QEMU. With kernel-hashes=1 QEMU puts the ' +
      'SHA-256 of each, and of the command line, in a table inside the firmware, which the platform measures with it. ' +
      (relay
        ? "`attest: relay` keeps the guest paused until its owner's attestation service has checked that measurement: " +
          'the daemon sends it the record and acts on its answer, with nobody typing.'
        : '`attest: hold` keeps the guest paused until its owner has checked that measurement.'),
  );
  say.say(
    'SEV protects a guest from the host it runs on. Its owner, not the host, holds two transport keys: the TIK ' +
      "(integrity) and the TEK (encryption). On real hardware the owner makes them and hands them to AMD's secure " +
      'processor wrapped for it alone (the launch session: `sevctl session`, then the dh-cert and session files), so the ' +
      'host never sees them. Here the demo, playing the owner, makes fresh keys and writes a SIMULATED session that ' +
      'carries them to the simulated platform the same way (its files hold the keys in the clear and say so).',
  );
  say.line(`the owner's TIK and TEK: 16 random bytes each, in ${paths.tik} and ${paths.tek} (mode 0600; never shown)`);
  await sevsupStep(ctx, ['owner', 'session', '--tik', paths.tik, '--tek', paths.tek, '--out', session]);
  let attest: readonly string[] = ['attest: hold'];
  if (relay) {
    say.say(
      "The owner runs their attestation service (sevsup owner serve; on the owner's own machine in production, on " +
        'loopback here) with HTTPS under a CA the owner made, knowing the host by a bearer token. Its config holds the ' +
        "owner's own copies of the launch inputs, the allowed policy, the TIK and TEK, and the secret for this guest.",
    );
    const secretFile = join(paths.ownerDir, 'luks-key');
    await writeFile(secretFile, DEMO_SECRET, { mode: 0o600 });
    const service = await startOwnerService(ctx, join(paths.work, 'owner-service'), {
      vms: [VM, VM_CHANGED],
      firmware: FIRMWARE,
      kernel: KERNEL,
      initrd: INITRD,
      cmdline: CMDLINE,
      policy: '0xb',
      tik: paths.tik,
      tek: paths.tek,
      secret: `luks-key:${secretFile}`,
    });
    say.line(`${service.conf}:`);
    say.output(
      service.confText
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .join('\n'),
    );
    say.command(['sevsup', 'owner', 'serve', '--config', service.conf]);
    say.line(`listening: ${service.vmKeys[1]?.replace('attest-url: ', '') ?? '?'} (pid ${service.process.pid ?? '?'})`);
    attest = service.vmKeys;
  }
  await writeFile(conf, demoConfig(session, attest, CMDLINE));
  // The second launch (step 9): the same guest image, its command line changed by the host.
  const changedConf = join(paths.vmDir, `${VM_CHANGED}.conf`);
  if (relay) await writeFile(changedConf, demoConfig(session, attest, CHANGED_CMDLINE, VM_CHANGED));
  say.line(`${conf}:`);
  say.output(
    demoConfig(session, attest, CMDLINE)
      .split('\n')
      .filter((l) => /^(amd_sev|firmware|kernel|initrd|cmdline|launch|attest|autostart):/.test(l))
      .join('\n'),
  );
  return changedConf;
}

/** Step 2: the supervisor starts; the guest is launched paused and measured, then held. */
async function startSupervisor(ctx: Ctx, relay: boolean): Promise<{ supervisor: DemoSupervisor; held: VmStatus }> {
  const { say, paths } = ctx;
  say.step('Start the supervisor; the guest is launched paused and measured');
  const spawnOptions = { node: process.execPath, sevsup: SEVSUP, vm: VM, paths, hostId: DEMO_HOST_ID };
  const supervisor = ctx.via === 'daemon' ? await startDaemonSupervisor(spawnOptions) : startRunSupervisor(spawnOptions);
  ctx.supervisor = supervisor;
  say.say(
    supervisor.kind === 'daemon'
      ? 'sevsup runs as a daemon (under systemd in production) and starts every guest marked `autostart: 1`.'
      : 'sevsup runs this one guest in the foreground (the daemon is not built here, so the demo uses `sevsup run`).',
  );
  if (supervisor.config !== null) {
    say.line(`${supervisor.config.path}:`);
    say.output(
      supervisor.config.text
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .join('\n'),
    );
  }
  say.command(supervisor.shown);
  say.say(
    'sevsup starts QEMU with -S, so the guest has not executed a single instruction. Over QMP it checks that SEV is ' +
      'enabled with exactly the policy the config asks for (0xb: no debugging, no key sharing, never to be sent ' +
      'elsewhere) and that the launch is still open for a secret, asks the platform for the launch measurement, and ' +
      'writes the measurement record to disk before anything could resume the guest. Any failed check stops QEMU.',
  );
  const held = await waitForState(supervisor, relay ? ['held', 'running'] : 'held', HELD_TIMEOUT_MS, ctx.signal);
  say.line(
    held.state === 'held'
      ? `${VM}: state held (paused, measured, waiting for its owner until ${held.holdDeadline ?? '?'})`
      : `${VM}: state ${held.state} (measured; the owner's service has already answered)`,
  );
  if (supervisor.daemonTarget !== null) await sevsupStep(ctx, ['list', ...supervisor.daemonTarget]);
  return { supervisor, held };
}

/** The last step: the supervisor and the owner's service stop, and nothing is left running. */
async function stopEverything(ctx: Ctx, supervisor: DemoSupervisor): Promise<void> {
  const { say, paths } = ctx;
  say.step('Stop everything');
  if (supervisor.process.running) {
    say.say('The daemon is told to stop (SIGTERM, as `systemctl stop sevsup` does); it closes its sockets and exits.');
    const exit = await supervisor.shutdown();
    if (exit.code !== 0)
      throw new SupervisorError(
        'SUP_ERR_INTERNAL',
        `the supervisor exited with ${exit.signal ?? `code ${exit.code ?? '?'}`}:\n${supervisor.process.stderr.trim()}`,
      );
    say.line(`sevsup ${supervisor.kind} exited (code 0)`);
  } else {
    say.line(`sevsup ${supervisor.kind} exited by itself (code 0) once its guest had powered off`);
  }
  const ownerService = ctx.ownerService;
  if (ownerService?.running) {
    await ownerService.stop('SIGTERM', 5_000);
    say.line(`sevsup owner serve exited (${ownerService.running ? 'still running' : 'stopped'})`);
  }
  const left = await sweepProcesses(paths.work);
  if (left.length > 0)
    throw new SupervisorError(
      'SUP_ERR_INTERNAL',
      `processes were left running and had to be killed: ${left.map((p) => p.cmdline.slice(0, 80)).join('; ')}`,
    );
  say.line('no QEMU, simulator, supervisor or owner service process is left');
}

/** What the reader has seen, in a paragraph. */
function summarize(ctx: Ctx, relay: boolean): void {
  ctx.say.raw(
    [
      '',
      'Done. On the SIMULATED platform, sevsup launched demo-sev paused, checked its SEV policy, captured the',
      ...(relay
        ? [
            "measurement and held the guest; the daemon relayed it to its owner's service, which verified it, sent a",
            'secret the host never saw in the clear and approved, with nobody typing (virt-qemu-sev-validate agrees:',
            'valid); the service refused a launch with a changed command line; migrate and',
          ]
        : [
            'measurement and held the guest; its owner verified the measurement (virt-qemu-sev-validate: valid) and',
            'injected a secret the host never saw in the clear; the guest ran on approval, and migrate and',
          ]),
      'dump-guest-memory were refused. The SEV-SNP guest ran only with the digest its owner pinned in an ID block;',
      'its report verified offline for a fresh nonce, a tampered one was refused, and the platform refused the launch',
      'with a changed command line.',
      '',
    ].join('\n'),
  );
}

function demoConfig(session: string, attest: readonly string[], cmdline: string, vm = VM): string {
  return [
    '# demo-sev, written by `sevsup demo`: examples/vms/demo-sev.conf with absolute paths and autostart.',
    `name: ${vm}`,
    'memory: 512',
    'cores: 1',
    'cpu: EPYC-v3',
    'bios: ovmf',
    `firmware: ${FIRMWARE}`,
    `kernel: ${KERNEL}`,
    `initrd: ${INITRD}`,
    `cmdline: ${cmdline}`,
    `launch: dh-cert=${join(session, 'dh-cert')},session=${join(session, 'session')}`,
    ...attest,
    'hold-timeout: 300',
    'serial: file',
    `autostart: ${vm === VM ? 1 : 0}`,
    'amd_sev: type=std,nodbg=1,noks=1,kernel-hashes=1',
    '',
  ].join('\n');
}

/** Stop the supervisor if it still runs, end anything left under the work dir, remove it unless kept. */
async function cleanUp(ctx: Ctx, keep: boolean, failed: boolean): Promise<void> {
  const snp = ctx.snpSupervisor;
  if (snp?.process.running) {
    process.stderr.write(`sevsup demo: stopping sevsup run (pid ${snp.process.pid ?? '?'})…\n`);
    await snp.shutdown();
  }
  const s = ctx.supervisor;
  if (s?.process.running) {
    process.stderr.write(`sevsup demo: stopping sevsup ${s.kind} (pid ${s.process.pid ?? '?'})…\n`);
    await s.shutdown();
  }
  if (failed && s !== undefined && s.process.stderr.trim() !== '') {
    process.stderr.write(`sevsup demo: the supervisor's last log lines:\n${s.process.stderr.trim().split('\n').slice(-10).join('\n')}\n`);
  }
  const owner = ctx.ownerService;
  if (owner?.running) await owner.stop('SIGTERM', 5_000);
  const left = await sweepProcesses(ctx.paths.work);
  for (const p of left) process.stderr.write(`sevsup demo: ended leftover process ${p.pid}: ${p.cmdline.slice(0, 120)}\n`);
  if (keep) {
    const what: Record<string, string> = {
      'sevsup.conf': 'the daemon config',
      vms: 'the VM config',
      owner: "the owner's TIK, TEK, secret packet, ID key and SNP report",
      images: "the SNP guest's firmware",
      snp: "the SNP guest's config, ID block, run directory and launch records",
      state: 'the measurement record',
      run: 'sockets, serial.log',
    };
    const present = await readdir(ctx.paths.work).catch(() => [] as string[]);
    const listed = present.map((name) => (what[name] === undefined ? name : `${name} (${what[name]})`)).join(', ');
    process.stdout.write(`\nKept ${ctx.paths.work}: ${listed}.\n`);
    return;
  }
  await rm(ctx.paths.work, { recursive: true, force: true });
}
