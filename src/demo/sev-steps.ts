// The demo SEV guest's own steps, once its supervisor holds it: the measurement record, the owner's
// off-host check with libvirt's virt-qemu-sev-validate, the owner injecting a secret and approving
// by hand (`--via run`), migrate and dump-guest-memory refused by the QMP proxy, and the serial
// console up to the guest's own poweroff. Owns: what these steps do and say. Must not: start or stop
// the supervisor or the owner's service (demo.ts does), or show key or secret bytes (lengths only).
import { request } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeReportedMeasurement } from '../attestation/verify.js';
import { SupervisorError } from '../errors.js';
import { buildLaunchSecret, SECRET_ALIASES } from '../sev/launch-secret.js';
import { isRecord } from '../util/is-record.js';
import type { VmStatus } from '../vm/types.js';
import { command, COMMAND_TIMEOUT_MS, sevsupStep, type Ctx } from './context.js';
import { DEMO_PATHS } from './paths.js';
import { pollUntil, type Completed } from './processes.js';
import { RUNNING_TIMEOUT_MS, simInjected, VM } from './relay-steps.js';
import { waitForState, type DemoSupervisor } from './supervisor.js';

const { sevsup: SEVSUP, python: PYTHON, validator: VALIDATOR } = DEMO_PATHS;

/** The disk passphrase the owner gives the guest (the owner's service holds it too with the relay). */
export const DEMO_SECRET = 'correct horse battery staple (demo disk passphrase)';
/** The guest boots a kernel under TCG (no SEV, no KVM in the simulator): about 10 s here. */
const GUEST_RUN_TIMEOUT_MS = 240_000;
/** After the guest's own poweroff, the supervisor notices within a second or two. */
const STOPPED_TIMEOUT_MS = 60_000;
const GREETING = 'sevsup-demo: hello from the guest';
const POWEROFF = 'sevsup-demo: powering off';

/** Step 3: the record the supervisor wrote while the guest is held, as the control API serves it. */
export async function measurementRecord(ctx: Ctx, supervisor: DemoSupervisor, held: VmStatus): Promise<DemoRecord> {
  const { say } = ctx;
  say.step('The measurement record');
  const record = narrowRecord(await supervisor.measurement());
  say.say(
    'The launch digest is SHA-256 over everything the platform measured: the firmware, then the kernel-hashes table ' +
      'with the hashes of kernel, initrd and command line. The measurement is what the platform reports: an HMAC under ' +
      "the owner's TIK over the SEV API version, firmware build, policy, launch digest and a fresh nonce (mnonce). The " +
      'host can read it but cannot forge it; only the TIK holder can check it.',
  );
  say.output(
    [
      `record:       ${held.record ?? '(path not reported)'}`,
      `platform:     ${record.platform}`,
      `SEV type:     ${record.sevType}, policy 0x${record.policy.toString(16)}, SEV API ${record.apiMajor}.${record.apiMinor} build ${record.buildId}`,
      `measurement:  ${record.measurement}`,
      `mnonce:       ${record.mnonce}`,
      ...(record.launchDigest === null ? [] : [`launch digest (the host's own computation, for reference): ${record.launchDigest}`]),
      ...record.inputs.map((i) => `${`${i.name}:`.padEnd(14)}${i.text}`),
    ].join('\n'),
  );
  return record;
}

/** Step 4: the owner checks the measurement with an independent tool, libvirt's validator. */
export async function verifiedOffHost(ctx: Ctx, record: DemoRecord): Promise<void> {
  const { say, paths } = ctx;
  say.step('The owner verifies the measurement off-host');
  say.say(
    'The owner recomputes the launch digest from their own copies of the firmware, kernel, initrd and command line, ' +
      "and checks the HMAC with their TIK. Here an independent tool does it: libvirt's virt-qemu-sev-validate, " +
      "offline, with the record's validateArgs (the host-reported values and the launch inputs; a real owner passes " +
      'their own files) plus the TIK and TEK the owner made in step 1.',
  );
  const validatorArgs = [...record.validateArgs, '--tik', paths.tik, '--tek', paths.tek];
  say.command(['virt-qemu-sev-validate', ...validatorArgs]);
  const validated = await command(ctx, PYTHON, [VALIDATOR, ...validatorArgs]);
  say.output(`${validated.stdout}${validated.stderr}`);
  const verdict = VALIDATOR_VERDICTS[validated.code ?? -1] ?? `error (exit ${validated.code ?? validated.signal ?? '?'})`;
  say.line(`verdict: ${verdict}`);
  if (validated.code !== 0) {
    throw new SupervisorError('SUP_ERR_VERIFY_MISMATCH', `virt-qemu-sev-validate did not accept the measurement: ${verdict}`);
  }
}

/** Steps 5 and 6 when the owner types: build the secret packet, inject it, approve. */
export async function ownerByHand(ctx: Ctx, supervisor: DemoSupervisor, record: DemoRecord): Promise<void> {
  const { say, paths } = ctx;
  say.step('The owner injects a launch secret');
  say.say(
    'Having verified the launch, the owner can give the guest a secret, here a disk passphrase, that only this ' +
      'launch can receive. The secret table is encrypted under the TEK, and the packet header carries an HMAC under the ' +
      "TIK bound to this launch's measurement: the platform accepts it for this exact launch only, and the host only " +
      "ever handles ciphertext. The firmware puts it in the guest's secret area, where Linux's efi_secret driver reads it.",
  );
  const { mac } = decodeReportedMeasurement(record.measurement);
  const [tik, tek] = await Promise.all([readFile(paths.tik), readFile(paths.tek)]);
  const packet = buildLaunchSecret({
    tik,
    tek,
    measurementMac: mac,
    secrets: [{ guid: SECRET_ALIASES['luks-key'], data: Buffer.from(DEMO_SECRET) }],
  });
  const headerFile = join(paths.ownerDir, 'secret-header.b64');
  const payloadFile = join(paths.ownerDir, 'secret-payload.b64');
  await writeFile(headerFile, packet.header.toString('base64'), { mode: 0o600 });
  await writeFile(payloadFile, packet.payload.toString('base64'), { mode: 0o600 });
  say.line(
    `built with src/sev/launch-secret.ts: one secret (GUID ${SECRET_ALIASES['luks-key']}, "luks-key", ${DEMO_SECRET.length} bytes), ` +
      `header ${packet.header.length} bytes, encrypted table ${packet.payload.length} bytes`,
  );
  await sevsupStep(ctx, ['attest', VM, ...supervisor.attestTarget, '--inject-secret', headerFile, payloadFile]);
  const accepted = await simInjected(paths);
  if (accepted !== null) say.line(`the simulated secure processor verified the packet against this launch and holds ${accepted}`);

  say.step('The owner approves; the guest runs');
  say.say('Only now does sevsup send `cont`: the guest executes its first instruction, with its secret already in place.');
  await sevsupStep(ctx, ['attest', VM, ...supervisor.attestTarget, '--approve']);
  const running = await waitForState(supervisor, 'running', RUNNING_TIMEOUT_MS, ctx.signal);
  say.line(`${VM}: running (QEMU pid ${running.pid ?? '?'})`);
  if (supervisor.daemonTarget !== null) await sevsupStep(ctx, ['status', VM, ...supervisor.daemonTarget]);
}

/** Step 7: migrate and dump-guest-memory, refused by sevsup's QMP proxy (and counted by the daemon). */
export async function migrateAndDumpRefused(ctx: Ctx, supervisor: DemoSupervisor): Promise<void> {
  const { say, paths } = ctx;
  say.step('What nobody on the host may do: migrate the guest or dump its memory');
  say.say(
    "Clients never get QEMU's own monitor; they get sevsup's QMP proxy, which parses every command and refuses what would " +
      "carry guest memory or state out of the host's control. A migration stream or a memory dump would do just that " +
      "(with plain SEV the vCPU registers are not even encrypted), and the policy's NOSEND bit says this guest is never " +
      'to be sent elsewhere. QEMU blocks migration of an SEV guest only after its first `cont`, and never blocks dumps, so ' +
      'the proxy is the line of defence. A refused command never reaches QEMU.',
  );
  const attempts: [string, string][] = [
    ['migrate', JSON.stringify({ execute: 'migrate', arguments: { uri: 'tcp:192.0.2.1:4444' } })],
    [
      'dump-guest-memory',
      JSON.stringify({ execute: 'dump-guest-memory', arguments: { paging: false, protocol: `file:${join(paths.work, 'guest.dump')}` } }),
    ],
  ];
  // Both at once: the demo guest powers itself off a few seconds after it starts.
  const results = await Promise.all(
    attempts.map(([, json]) => command(ctx, process.execPath, [SEVSUP, 'qmp', VM, ...supervisor.qmpTarget, json])),
  );
  for (const [i, [name, json]] of attempts.entries()) {
    const result = results[i] as Completed;
    say.command(['sevsup', 'qmp', VM, ...supervisor.qmpTarget, json]);
    say.output(`${result.stdout}${result.stderr}`);
    if (result.code === 10 && result.stderr.includes(`${name} refused by sevsup`)) {
      say.line(`→ ${name}: refused (exit 10)`);
    } else if (result.code === 0) {
      throw new SupervisorError('SUP_ERR_INTERNAL', `${name} was NOT refused by the QMP proxy`);
    } else {
      throw new SupervisorError(
        'SUP_ERR_API_UNREACHABLE',
        `sevsup qmp ${name} failed (exit ${result.code ?? result.signal ?? '?'}): ${result.stderr.trim()}`,
      );
    }
  }
  if (supervisor.daemonTarget !== null) {
    const socket = supervisor.daemonTarget[1] ?? '';
    say.say('The daemon counts every refusal in its Prometheus metrics (GET /metrics on its control socket):');
    say.command(['curl', '--unix-socket', socket, 'http://localhost/metrics']);
    const text = await getMetrics(socket);
    say.output(
      text
        .split('\n')
        .filter((l) => l.startsWith('sevsup_qmp_refused_total{') || l.startsWith('sevsup_guests{state="running"}'))
        .join('\n'),
    );
  }
}

/** Step 8: the guest's serial console, until it powers itself off and its supervisor notices. */
export async function serialConsole(ctx: Ctx, supervisor: DemoSupervisor): Promise<void> {
  const { say, paths } = ctx;
  say.step("The guest's serial console");
  const serialLog = join(paths.runDir, VM, 'serial.log');
  say.say(
    `QEMU writes the guest's serial console to ${serialLog}. The demo initrd greets, says what it can see of memory ` +
      'encryption (on this simulated platform: none), and powers the guest off.',
  );
  const serial = await pollUntil(
    async () => {
      const text = await readFile(serialLog, 'utf8').catch(() => '');
      return text.includes(POWEROFF) ? text : undefined;
    },
    { timeoutMs: GUEST_RUN_TIMEOUT_MS, intervalMs: 250, signal: ctx.signal },
  );
  if (serial === undefined) {
    if (ctx.signal.aborted) throw new SupervisorError('SUP_ERR_USAGE', 'interrupted');
    throw new SupervisorError(
      'SUP_ERR_LAUNCH_TIMEOUT',
      `the guest did not print "${POWEROFF}" within ${GUEST_RUN_TIMEOUT_MS / 1000} s (see ${serialLog})`,
    );
  }
  say.output(
    serial
      .split('\n')
      .filter((l) => l.startsWith('sevsup-demo:') || /reboot: Power down/.test(l))
      .join('\n'),
  );
  if (!serial.includes(GREETING)) throw new SupervisorError('SUP_ERR_INTERNAL', `the serial console lacks the greeting "${GREETING}"`);
  await supervisor.guestStopped(STOPPED_TIMEOUT_MS, ctx.signal);
  say.line(`${VM}: the guest powered itself off; QEMU has exited`);
}

/** Exit codes of virt-qemu-sev-validate (libvirt's tools/virt-qemu-sev-validate). */
const VALIDATOR_VERDICTS: Readonly<Record<number, string>> = {
  0: "valid (exit 0): the measurement matches the owner's inputs and TIK",
  1: 'INVALID (exit 1): the measurement does not match; the guest is not trustworthy',
  2: 'unsupported usage (exit 2)',
  3: 'insecure usage (exit 3)',
  4: 'bad configuration (exit 4)',
  5: 'bad guest state (exit 5)',
  6: 'internal error of the validator (exit 6)',
};

export interface DemoRecord {
  readonly platform: string;
  readonly sevType: string;
  readonly policy: number;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
  readonly measurement: string;
  readonly mnonce: string;
  readonly launchDigest: string | null;
  readonly inputs: readonly { name: string; text: string }[];
  readonly validateArgs: readonly string[];
}

/**
 * The fields the demo shows and uses, read defensively (the API's body is `unknown`).
 * @throws SUP_ERR_INTERNAL when a field the demo needs is missing.
 */
function narrowRecord(value: unknown): DemoRecord {
  const r = isRecord(value) ? value : {};
  const str = (o: Record<string, unknown>, k: string): string | null => (typeof o[k] === 'string' ? (o[k] as string) : null);
  const num = (k: string): number | null => (typeof r[k] === 'number' ? (r[k] as number) : null);
  const measurement = str(r, 'measurement');
  const validateArgs = r['validateArgs'];
  const policy = num('policy');
  const apiMajor = num('apiMajor');
  const apiMinor = num('apiMinor');
  const buildId = num('buildId');
  if (
    measurement === null ||
    policy === null ||
    apiMajor === null ||
    apiMinor === null ||
    buildId === null ||
    !Array.isArray(validateArgs) ||
    !validateArgs.every((a) => typeof a === 'string')
  ) {
    throw new SupervisorError('SUP_ERR_INTERNAL', 'the control API returned something that is not a measurement record');
  }
  const launch = isRecord(r['launch']) ? r['launch'] : {};
  const inputs: { name: string; text: string }[] = [];
  for (const name of ['firmware', 'kernel', 'initrd'] as const) {
    const file = isRecord(launch[name]) ? launch[name] : null;
    if (file !== null) inputs.push({ name, text: `sha256 ${str(file, 'sha256') ?? '?'}  ${str(file, 'path') ?? ''}` });
  }
  const cmdline = str(launch, 'cmdline');
  if (cmdline !== null) inputs.push({ name: 'cmdline', text: JSON.stringify(cmdline) });
  return {
    platform: str(r, 'platform') ?? '?',
    sevType: str(r, 'sevType') ?? '?',
    policy,
    apiMajor,
    apiMinor,
    buildId,
    measurement,
    mnonce: str(r, 'mnonce') ?? '?',
    launchDigest: str(r, 'expectedLaunchDigest'),
    inputs,
    validateArgs: validateArgs as string[],
  };
}

/** The daemon's Prometheus text, from GET /metrics on its control socket. */
function getMetrics(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/metrics', method: 'GET', timeout: COMMAND_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(body)
          : reject(new SupervisorError('SUP_ERR_API_UNREACHABLE', `GET /metrics answered HTTP ${res.statusCode ?? '?'}`)),
      );
    });
    req.on('timeout', () => req.destroy(new SupervisorError('SUP_ERR_API_UNREACHABLE', 'GET /metrics timed out')));
    req.on('error', reject);
    req.end();
  });
}
