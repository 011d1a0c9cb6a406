// Drives `bin/sevsup daemon --platform sim` as a real process for the integration/daemon suites:
// temp dirs, VM configs, the control API, the captured stdout/stderr (for secret checks), and a
// cleanup that leaves no daemon, simulator or QEMU behind (detached guests outlive the daemon on
// purpose, so they are ended through the API or by pid).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach } from 'vitest';
import { callControl } from '../../src/api/client.js';
import { haltingImage, hashes, secret, sevInfo } from '../../test/support/ovmf-images.js';
import { isPidAlive, waitForPidExit } from '../../src/process/pid.js';
import { DEBIAN_OVMF, SEVSUP, processesMentioning, testDir } from '../run/harness.js';

export { DEBIAN_OVMF, SEVSUP, processesMentioning };

export interface GuestStatus {
  readonly vm: string;
  readonly state: string;
  readonly pid: number | null;
  readonly record: string | null;
  readonly holdDeadline: string | null;
  readonly secretsInjected: number;
  readonly error: { readonly code: string; readonly message: string } | null;
}

/** One `sevsup daemon` process over a test directory. */
export class Daemon {
  readonly socket: string;
  output = '';
  readonly #dir: string;
  readonly #args: readonly string[];
  #child: ChildProcess | null = null;
  #exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;

  constructor(dir: string, args: readonly string[] = [], socket = join(dir, 's.sock')) {
    this.#dir = dir;
    this.socket = socket;
    this.#args = args;
  }

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /** Spawn and wait until the API answers with every guest re-attached. */
  async start(extra: readonly string[] = []): Promise<void> {
    const d = this.#dir;
    const from = this.output.length;
    const child = spawn(
      process.execPath,
      [
        SEVSUP,
        'daemon',
        // The simulated platform unless the test names one (`--platform hardware` in args).
        ...(this.#args.includes('--platform') ? [] : ['--platform', 'sim']),
        '--vm-dir',
        join(d, 'vms'),
        '--run-dir',
        join(d, 'run'),
        '--state-dir',
        join(d, 'state'),
        '--socket',
        this.socket,
        ...this.#args,
        ...extra,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    child.stdout?.on('data', (c: Buffer) => (this.output += c.toString('utf8')));
    child.stderr?.on('data', (c: Buffer) => (this.output += c.toString('utf8')));
    this.#exit = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the daemon exited with ${child.exitCode}: ${this.output}`);
      // The daemon opens operations only after re-attaching: a start is refused until then.
      const ready = await this.api('GET', '/v1/vms').then(
        () => this.output.slice(from).includes('sevsup daemon ready'),
        () => false,
      );
      if (ready) return;
      if (Date.now() > deadline) throw new Error(`the daemon did not become ready: ${this.output}`);
      await delay(50);
    }
  }

  api(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 60_000): Promise<unknown> {
    return callControl({ socketPath: this.socket, method, path, ...(body === undefined ? {} : { body }), timeoutMs });
  }

  status(vm: string): Promise<GuestStatus> {
    return this.api('GET', `/v1/vms/${vm}`) as Promise<GuestStatus>;
  }

  async list(): Promise<GuestStatus[]> {
    return ((await this.api('GET', '/v1/vms')) as { vms: GuestStatus[] }).vms;
  }

  /** Wait until `vm` is in one of `states`. */
  async waitState(vm: string, states: readonly string[], timeoutMs = 60_000): Promise<GuestStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.status(vm).catch(() => null);
      if (s !== null && states.includes(s.state)) return s;
      if (Date.now() > deadline) throw new Error(`${vm} did not reach ${states.join('|')} (last: ${JSON.stringify(s)})`);
      await delay(50);
    }
  }

  signal(sig: NodeJS.Signals): void {
    this.#child?.kill(sig);
  }

  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.#exit ?? Promise.resolve({ code: null, signal: null });
  }

  /** SIGKILL the daemon only (guests stay, by design). */
  async crash(): Promise<void> {
    this.signal('SIGKILL');
    await this.exited();
  }

  running(): boolean {
    return this.#child !== null && this.#child.exitCode === null && this.#child.signalCode === null;
  }
}

/** `<dir>/vms/<name>.conf`: a simulated-SEV OVMF guest; `extra` lines add keys or replace them. */
export async function writeVm(dir: string, name: string, extra: readonly string[] = []): Promise<void> {
  await mkdir(join(dir, 'vms'), { recursive: true });
  const base = [
    'memory: 256',
    'cores: 1',
    'cpu: EPYC-v3',
    'bios: ovmf',
    `firmware: ${DEBIAN_OVMF}`,
    'serial: file',
    'amd_sev: type=std,nodbg=1,noks=1',
  ];
  const lines = new Map([...base, ...extra].map((line) => [line.slice(0, line.indexOf(':')), line]));
  await writeFile(join(dir, 'vms', `${name}.conf`), `${[...lines.values()].join('\n')}\n`);
}

/**
 * `firmware: <dir>/halt-<kind>.fd` for writeVm: a guest that halts at its reset vector
 * (haltingImage), for suites about the supervisor's lifecycle (states, re-attach, stop, relay), where
 * what the guest runs is not the subject and booting OVMF under TCG would cost seconds of CPU per
 * running guest. `debian`: Debian OVMF's table (empty secret and hashes areas); `secret-area`: the
 * test firmware's areas (TEST_FIRMWARE), for a launch secret.
 */
export async function haltingFirmware(dir: string, kind: 'debian' | 'secret-area' = 'debian'): Promise<string> {
  const file = join(dir, `halt-${kind}.fd`);
  const entries = kind === 'debian' ? undefined : [hashes(0x80fc00, 0x400), secret(0x80f000, 0xc00), sevInfo(0x80b004)];
  // Written once per directory: a guest may be reading it while the next config is written.
  await writeFile(file, haltingImage(entries), { flag: 'wx' }).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  });
  return `firmware: ${file}`;
}

/** writeVm on haltingFirmware(dir): for a guest whose code is not what the test is about. */
export async function writeHaltingVm(dir: string, name: string, extra: readonly string[] = []): Promise<void> {
  await writeVm(dir, name, [await haltingFirmware(dir), ...extra]);
}

/**
 * Per-test directories and daemons, ended after each test whatever it did: every daemon is
 * SIGKILLed, then every process mentioning the directory (the detached simulators) is killed.
 */
export function daemonScope(): { dir(): Promise<string>; daemon(dir: string, args?: readonly string[], socket?: string): Daemon } {
  const dirs: { dir: string; remove: () => Promise<void> }[] = [];
  const daemons: Daemon[] = [];
  afterEach(async () => {
    for (const d of daemons.splice(0)) if (d.running()) await d.crash();
    for (const { dir, remove } of dirs.splice(0)) {
      for (const p of processesMentioning(dir)) if (isPidAlive(p.pid)) process.kill(p.pid, 'SIGKILL');
      for (const p of processesMentioning(dir)) await waitForPidExit(p.pid, { timeoutMs: 5000 });
      await remove();
    }
  });
  return {
    async dir() {
      const t = await testDir();
      dirs.push(t);
      return t.dir;
    },
    daemon(dir, args = [], socket) {
      const d = new Daemon(dir, args, socket);
      daemons.push(d);
      return d;
    },
  };
}

/** Until no process mentions `dir` (zombies do not count: pid 1 reaps orphans slowly here). */
export async function nothingLeft(dir: string, timeoutMs = 10_000): Promise<{ pid: number; cmdline: string }[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = processesMentioning(dir);
    if (left.length === 0 || Date.now() > deadline) return left;
    await delay(100);
  }
}
