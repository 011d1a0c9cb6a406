// The SEV-SNP part of `sevsup demo`, on the simulated platform: the owner's expected digest
// (`sevsup measure --mode snp`) pinned in an ID block signed with the owner's P-384 ID key
// (`sevsup id-block`), host data; the guest launched through `sevsup run --platform sim --hold`
// with its launch record; a report for a fresh nonce fetched (`sevsup sim snp-report`) and verified
// offline (`sevsup verify --report`), one tampered report refused; and a relaunch with a changed
// command line refused by the platform itself at LAUNCH_FINISH. Owns: those steps and their words.
// Must not: print key bytes (the ID key stays in its 0600 file; only its public digest is shown),
// or leave the SNP supervisor running (ctx.snpSupervisor is stopped by the demo's clean-up).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SupervisorError } from '../errors.js';
import { isRecord } from '../util/is-record.js';
import { commandFailed, demoEnv, sevsup, sevsupStep, type Ctx } from './context.js';
import { DEMO_PATHS } from './paths.js';
import { pollUntil } from './processes.js';
import { startRunSupervisor, waitForState } from './supervisor.js';

export const SNP_VM = 'demo-snp';
export const SNP_STEPS = 4;
const CMDLINE = 'console=ttyS0 panic=-1';
/** What a host that wants a root shell in the guest would boot it with instead. */
const CHANGED_CMDLINE = `${CMDLINE} init=/bin/sh`;
/** `cpu: EPYC-v3`, one vCPU: the VMSA the platform measures (sevsup measure --vcpu-type). */
const VCPU_TYPE = 'EPYC-v3';
const POLICY = '0x30000';
/** Launch to held, held to running: as for the SEV guest. */
const STATE_TIMEOUT_MS = 90_000;
/** The guest boots and powers itself off (about 5 s under TCG here); `sevsup run` then exits. */
const GUEST_RUN_TIMEOUT_MS = 240_000;

interface OwnerSnp {
  readonly conf: string;
  readonly firmware: string;
  readonly digest: string;
  readonly hostData: string;
  readonly idKeyDigest: string;
  readonly text: (cmdline: string) => string;
}

/** Steps 1–4 of the SNP part; the caller numbers them after the SEV guest's. */
export async function snpDemo(sevCtx: Ctx): Promise<void> {
  // Its own VM, run and state directories: the SEV guest's daemon holds a lock on its own.
  const base = join(sevCtx.paths.work, 'snp');
  const ctx: Ctx = {
    ...sevCtx,
    paths: { ...sevCtx.paths, vmDir: join(base, 'vms'), runDir: join(base, 'run'), stateDir: join(base, 'state') },
  };
  try {
    await snpSteps(ctx);
  } finally {
    sevCtx.snpSupervisor = ctx.snpSupervisor;
  }
}

async function snpSteps(ctx: Ctx): Promise<void> {
  const owner = await ownerPrepares(ctx);
  await launchAndRecord(ctx, owner);
  await reportVerified(ctx, owner);
  await changedCmdlineRefused(ctx, owner);
}

async function ownerPrepares(ctx: Ctx): Promise<OwnerSnp> {
  const { say, paths } = ctx;
  say.step("SEV-SNP: the owner's expected digest, pinned in an ID block");
  say.say(
    'SEV-SNP measures the guest inside the secure processor and puts the measurement into attestation reports the ' +
      'chip signs; there is no host-side measurement and no launch secret. The owner computes the digest the launch must ' +
      'have from their own copies of the firmware, kernel, initrd and command line, and signs it with their ID key into ' +
      'an ID block. The platform compares the ID block with what it measured when the guest first runs, and refuses the ' +
      'launch when they differ: a host that boots anything else gets no guest at all. Host data (32 bytes the owner ' +
      'chooses) is bound into every report.',
  );
  const images = join(paths.work, 'images');
  await Promise.all([mkdir(images, { recursive: true }), mkdir(paths.vmDir, { recursive: true })]);
  const firmware = join(images, 'ovmf-snp.fd');
  await copyFile(DEMO_PATHS.snpFirmware, firmware);
  say.line(`firmware: ${firmware} (Debian's OVMF.fd with SNP metadata and a kernel-hashes page, as the test firmware is made)`);

  const idKey = join(paths.ownerDir, 'id-key-p384.pem');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  await writeFile(idKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  say.line(`the owner's ID key: a fresh ECDSA P-384 key in ${idKey} (mode 0600; never shown)`);

  const measureArgs = ['measure', '--mode', 'snp', '--firmware', firmware, '--kernel', DEMO_PATHS.kernel, '--initrd', DEMO_PATHS.initrd];
  const measured = await sevsupStep(ctx, [...measureArgs, '--cmdline', CMDLINE, '--vcpus', '1', '--vcpu-type', VCPU_TYPE]);
  const digest = measured.stdout.trim();
  if (!/^[0-9a-f]{96}$/.test(digest)) throw new SupervisorError('SUP_ERR_INTERNAL', `sevsup measure printed no SHA-384 digest: ${digest}`);

  const idBlock = `${SNP_VM}.idblock`;
  const idAuth = `${SNP_VM}.idauth`;
  const idArgs = ['id-block', '--launch-digest', digest, '--id-key', idKey, '--policy', POLICY];
  const signed = await sevsupStep(
    ctx,
    [...idArgs, '--id-block-file', join(paths.vmDir, idBlock), '--id-auth-file', join(paths.vmDir, idAuth), '--json'],
    {
      quiet: true,
    },
  );
  const parsed: unknown = JSON.parse(signed.stdout);
  const idKeyDigest = isRecord(parsed) && typeof parsed['idKeyDigest'] === 'string' ? parsed['idKeyDigest'] : '?';
  say.line(`ID block (96 bytes) and ID auth (4 KiB) written beside the VM config; the ID key digest reports will carry: ${idKeyDigest}`);

  const hostData = randomBytes(32);
  const hostDataFile = `${SNP_VM}.hostdata`;
  await writeFile(join(paths.vmDir, hostDataFile), hostData);
  const text = (cmdline: string): string =>
    [
      `# ${SNP_VM}, written by \`sevsup demo\`: an SEV-SNP guest pinned by its owner's ID block.`,
      `name: ${SNP_VM}`,
      'memory: 512',
      'cores: 1',
      `cpu: ${VCPU_TYPE}`,
      'bios: ovmf',
      `firmware: ${firmware}`,
      `kernel: ${DEMO_PATHS.kernel}`,
      `initrd: ${DEMO_PATHS.initrd}`,
      `cmdline: ${cmdline}`,
      'serial: file',
      '# the sim-only report request passes the QMP proxy only when the config names it',
      'qmp-allow: x-sevsup-sim-snp-report',
      `amd-sev: type=snp,no-debug=1,kernel-hashes=1,id-block=${idBlock},id-auth=${idAuth},host-data-file=${hostDataFile}`,
      '',
    ].join('\n');
  const conf = join(paths.vmDir, `${SNP_VM}.conf`);
  await writeFile(conf, text(CMDLINE));
  say.line(`${conf}:`);
  say.output(
    text(CMDLINE)
      .split('\n')
      .filter((l) => /^(cpu|cmdline|qmp-allow|amd-sev):/.test(l))
      .join('\n'),
  );
  return { conf, firmware, digest, hostData: hostData.toString('hex'), idKeyDigest, text };
}

function runArgs(ctx: Ctx, hold: boolean): string[] {
  const { paths } = ctx;
  return [
    'run',
    SNP_VM,
    '--vm-dir',
    paths.vmDir,
    '--platform',
    'sim',
    ...(hold ? ['--hold'] : []),
    '--run-dir',
    paths.runDir,
    '--state-dir',
    paths.stateDir,
    '--powerdown-timeout',
    '5',
  ];
}

async function launchAndRecord(ctx: Ctx, owner: OwnerSnp): Promise<void> {
  const { say, paths } = ctx;
  say.step('The SNP guest is launched, held, and its launch record checked');
  say.say(
    'The simulated platform answers as QEMU 10 on an SNP host (sev-snp-guest needs QEMU 9.1 or later; the simulator ' +
      "stands in for it and runs Debian's QEMU underneath). sevsup checks the SNP policy over QMP and writes the launch " +
      'record before the guest runs: the digest the launch will have, computed from the exact files the host passes, ' +
      'the host data and the ID key digest.',
  );
  const supervisor = startRunSupervisor({ node: process.execPath, sevsup: DEMO_PATHS.sevsup, vm: SNP_VM, paths, env: demoEnv() });
  ctx.snpSupervisor = supervisor;
  say.command(['sevsup', ...runArgs(ctx, true)]);
  const held = await waitForState(supervisor, 'held', STATE_TIMEOUT_MS, ctx.signal);
  const record: unknown = await supervisor.measurement();
  const r = isRecord(record) ? record : {};
  const policy = isRecord(r['policy']) ? String(r['policy']['description']) : '?';
  const expected = String(r['expectedLaunchDigest']);
  say.output(
    [
      `record:        ${held.record ?? '(path not reported)'}`,
      `platform:      ${String(r['platform'])}`,
      `SNP policy:    ${policy}`,
      `SEV API:       ${String(r['apiMajor'])}.${String(r['apiMinor'])} build ${String(r['buildId'])}`,
      `launch digest: ${expected}`,
      `host data:     ${String(r['hostData'])}`,
    ].join('\n'),
  );
  if (expected !== owner.digest) {
    throw new SupervisorError('SUP_ERR_VERIFY_MISMATCH', `the record's launch digest ${expected} is not the owner's ${owner.digest}`);
  }
  say.line("the record's launch digest is the owner's own (sevsup measure); the owner approves");
  await sevsupStep(ctx, ['attest', SNP_VM, '--run-dir', paths.runDir, '--approve']);
  const running = await waitForState(supervisor, 'running', STATE_TIMEOUT_MS, ctx.signal);
  say.line(`${SNP_VM}: running (QEMU pid ${running.pid ?? '?'}); the platform measured it and accepted its ID block`);
}

async function reportVerified(ctx: Ctx, owner: OwnerSnp): Promise<void> {
  const { say, paths } = ctx;
  say.step('An attestation report for a fresh nonce, verified offline');
  say.say(
    'On SNP hardware the guest asks its secure processor for a report over data of its choosing, typically a nonce from ' +
      'the verifier, and the chip signs it with its VCEK, certified by AMD (ARK → ASK → VCEK). A guest under TCG cannot ' +
      'ask, so the simulator answers a sim-only request on its behalf, signed by its own chain, every subject labelled ' +
      "SIMULATED. The owner verifies it offline against their own expectations, pinning the simulator's ARK (AMD's " +
      'roots never verify it).',
  );
  const nonce = randomBytes(64).toString('hex');
  const report = join(paths.ownerDir, 'report.bin');
  const certs = join(paths.ownerDir, 'certs');
  await sevsupStep(ctx, [
    'sim',
    'snp-report',
    SNP_VM,
    '--run-dir',
    paths.runDir,
    '--report-data',
    nonce,
    '--out',
    report,
    '--certs-out',
    certs,
  ]);
  const verifyArgs = (file: string): string[] => [
    'verify',
    '--report',
    file,
    '--certs',
    certs,
    '--ark',
    join(certs, 'ark.pem'),
    '--expected-measurement',
    owner.digest,
    '--host-data',
    owner.hostData,
    '--report-data',
    nonce,
    '--id-key-digest',
    owner.idKeyDigest,
  ];
  await sevsupStep(ctx, verifyArgs(report));
  say.say('The same report with one byte of its measurement changed, as a host that lies about the guest would send it:');
  const tampered = join(paths.ownerDir, 'report-tampered.bin');
  const bytes = Buffer.from(await readFile(report));
  bytes[0x90] = (bytes[0x90] as number) ^ 0x01; // MEASUREMENT starts at 0x90
  await writeFile(tampered, bytes);
  const args = verifyArgs(tampered);
  say.command(['sevsup', ...args]);
  const refused = await sevsup(ctx, args);
  const said = `${refused.stdout}${refused.stderr}`;
  say.output(
    said
      .split('\n')
      .filter((l) => l.startsWith('ERROR'))
      .join('\n'),
  );
  if (refused.code !== 1 || !said.includes('ERROR: the measurement')) {
    throw new SupervisorError('SUP_ERR_INTERNAL', `the tampered report was not refused for its measurement (exit ${refused.code ?? '?'})`);
  }
  say.line('→ refused (exit 1): the signature no longer verifies and the measurement is not the expected one');

  const supervisor = ctx.snpSupervisor;
  if (supervisor === undefined) return;
  const serialLog = join(paths.runDir, SNP_VM, 'serial.log');
  const greeting = await pollUntil(
    async () => (await readFile(serialLog, 'utf8').catch(() => '')).split('\n').find((l) => l.startsWith('sevsup-demo: hello')),
    { timeoutMs: GUEST_RUN_TIMEOUT_MS, intervalMs: 250, signal: ctx.signal },
  );
  if (greeting !== undefined) say.line(`${SNP_VM} serial console: ${greeting}`);
  await supervisor.guestStopped(GUEST_RUN_TIMEOUT_MS, ctx.signal);
  ctx.snpSupervisor = undefined;
  say.line(`${SNP_VM}: the guest powered itself off; sevsup run exited (code 0)`);
}

async function changedCmdlineRefused(ctx: Ctx, owner: OwnerSnp): Promise<void> {
  const { say } = ctx;
  say.step('The host changes the command line: the platform refuses the launch');
  say.say(
    `The host now boots the same guest with \`${CHANGED_CMDLINE}\` (a root shell instead of the guest's own init). ` +
      'Its kernel-hashes table, and so the launch digest, differ from what the ID block pins: the platform refuses ' +
      'LAUNCH_FINISH when the guest would first run, and sevsup fails the launch closed in its words. The guest never runs.',
  );
  await writeFile(owner.conf, owner.text(CHANGED_CMDLINE));
  say.line(`${owner.conf}: cmdline: ${CHANGED_CMDLINE}`);
  const args = runArgs(ctx, false);
  say.command(['sevsup', ...args]);
  const result = await sevsup(ctx, args);
  say.output(`${result.stdout}${result.stderr}`);
  if (result.code === 0 || !result.stderr.includes("'Bad measurement'") || result.stdout.includes(': running')) {
    if (result.code === 0) throw new SupervisorError('SUP_ERR_INTERNAL', 'the launch with a changed command line was NOT refused');
    throw commandFailed(args, result);
  }
  say.line(`→ refused by the platform (exit ${result.code ?? '?'}): the ID block's digest is not the launch digest; the guest never ran`);
}
