// Runs bin/sevsup-sim-qemu as a real process with buildQemuArgv's argv, talks raw QMP to the socket
// it serves (bytes as they arrive, so replies can be compared with QEMU's exactly), and proves that
// no sim or QEMU process is left (any live process whose command line mentions the test directory).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach } from 'vitest';
import type { VmSpec } from '../../src/config/vm-spec.js';
import { SIMULATED_HOST_CAPS } from '../../src/host/simulated.js';
import { buildQemuArgv } from '../../src/qemu/argv.js';
import { isPidAlive } from '../../src/process/pid.js';
import { KERNEL, missingBuildOrAssets, processesMentioning, REAL_QEMU, SIM, TEST_FIRMWARE } from '../../test/support/it-env.js';
import { terminate } from '../../test/support/terminate.js';

export { ASSETS, DEBIAN_OVMF, KERNEL, processesMentioning, REPO, SIM, TEST_FIRMWARE } from '../../test/support/it-env.js';
export const CMDLINE = 'console=ttyS0 panic=-1';

/** Why the suite cannot run here, or null. */
export function missingPrerequisite(): string | null {
  return missingBuildOrAssets('sevsup-sim-qemu.mjs', [KERNEL, TEST_FIRMWARE, REAL_QEMU]);
}

export function spec(overrides: Partial<VmSpec> = {}): VmSpec {
  return {
    name: 'simvm',
    source: '/test/simvm.conf',
    memory: 256,
    cores: 1,
    cpu: 'EPYC',
    bios: 'ovmf',
    firmware: { path: TEST_FIRMWARE },
    kernel: KERNEL,
    cmdline: CMDLINE,
    disks: [],
    nets: [],
    attest: 'hold',
    autostart: false,
    serial: 'none',
    sev: { type: 'std', nodbg: true, noks: true, kernelHashes: true, key: 'amd_sev' },
    qmpAllow: [],
    qmpDeny: [],
    ...overrides,
  };
}

export async function makeDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'sim-it-'));
}

export interface Paths {
  readonly dir: string;
  readonly monitor: string;
  readonly pidfile: string;
  readonly serial: string;
  readonly status: string;
}

export function paths(dir: string): Paths {
  return {
    dir,
    monitor: join(dir, 'monitor.sock'),
    pidfile: join(dir, 'qemu.pid'),
    serial: join(dir, 'serial.log'),
    status: join(dir, 'sim-status.json'),
  };
}

/** buildQemuArgv's argv for `s` with the test directory's paths. */
export function argvFor(s: VmSpec, p: Paths, o: { serial?: boolean } = {}): string[] {
  return [
    ...buildQemuArgv({
      spec: s,
      caps: SIMULATED_HOST_CAPS,
      paths: { monitorSocket: p.monitor, pidFile: p.pidfile, ...(o.serial === true ? { serialLog: p.serial } : {}) },
    }),
  ];
}

export interface SimExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class SimProcess {
  stderr = '';
  readonly exited: Promise<SimExit>;
  readonly child: ChildProcess;

  constructor(args: readonly string[]) {
    this.child = spawn(process.execPath, [SIM, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString('utf8')));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Stop it as a supervisor would: SIGTERM (the sim cleans up), SIGKILL if it lingers. */
  async kill(graceMs = 5000): Promise<SimExit> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    await terminate(this.child, this.exited, graceMs);
    return this.exited;
  }
}

export function startSim(simArgs: readonly string[], qemuArgv: readonly string[]): SimProcess {
  return new SimProcess([...simArgs, ...qemuArgv]);
}

/** A QMP client that keeps raw reply lines, for byte-exact comparisons. */
export class RawQmp {
  readonly events: Record<string, unknown>[] = [];
  greeting = '';
  private buffer = '';
  private readonly lines: string[] = [];
  private wake: (() => void) | null = null;
  private closedFlag = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('utf8');
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        this.lines.push(this.buffer.slice(0, nl).replace(/\r$/, ''));
        this.buffer = this.buffer.slice(nl + 1);
      }
      this.wake?.();
    });
    socket.on('close', () => {
      this.closedFlag = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  /** Connect (retrying while the socket appears) and read the greeting. */
  static async connect(path: string, timeoutMs = 20_000): Promise<RawQmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const socket = await new Promise<Socket | null>((resolve) => {
        const s = createConnection(path);
        s.once('connect', () => resolve(s));
        s.once('error', () => resolve(null));
      });
      if (socket !== null) {
        const client = new RawQmp(socket);
        client.greeting = await client.nextLine(timeoutMs);
        return client;
      }
      if (Date.now() > deadline) throw new Error(`cannot connect to ${path}`);
      await delay(50);
    }
  }

  /** Connect and negotiate capabilities. */
  static async ready(path: string): Promise<RawQmp> {
    const client = await RawQmp.connect(path);
    await client.raw('{"execute":"qmp_capabilities"}');
    return client;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  async nextLine(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.closedFlag) throw new Error('QMP connection closed');
      if (Date.now() > deadline) throw new Error('no QMP line in time');
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100);
      });
      this.wake = null;
    }
    return this.lines.shift() as string;
  }

  /** Send `text` and return the raw text of the next non-event line (events are kept). */
  async raw(text: string, timeoutMs = 20_000): Promise<string> {
    this.socket.write(`${text}\n`);
    for (;;) {
      const line = await this.nextLine(timeoutMs);
      const value = JSON.parse(line) as Record<string, unknown>;
      if (typeof value['event'] === 'string') this.events.push(value);
      else return line;
    }
  }

  /** Send a command and return the parsed reply. */
  async cmd(execute: string, args?: Record<string, unknown>, id?: unknown): Promise<Record<string, unknown>> {
    const msg: Record<string, unknown> = { execute };
    if (args !== undefined) msg['arguments'] = args;
    if (id !== undefined) msg['id'] = id;
    return JSON.parse(await this.raw(JSON.stringify(msg))) as Record<string, unknown>;
  }

  /** The `return` of a command; throws on a QMP error. */
  async ret(execute: string, args?: Record<string, unknown>): Promise<unknown> {
    const reply = await this.cmd(execute, args);
    if (!('return' in reply)) throw new Error(`${execute}: ${JSON.stringify(reply)}`);
    return reply['return'];
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The QEMU pid the sim recorded in `dir`'s status file (QEMU's argv names only the sim's private dir). */
function recordedQemuPid(dir: string): number | null {
  try {
    const status = JSON.parse(readFileSync(join(dir, 'sim-status.json'), 'utf8')) as { qemuPid?: unknown };
    return typeof status.qemuPid === 'number' ? status.qemuPid : null;
  } catch {
    return null;
  }
}

/**
 * Wait until no live process mentions `dir` and the QEMU the sim started is gone (pid 1 here reaps
 * slowly, testing-notes).
 */
export async function expectNoProcessesLeft(dir: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const qemuPid = recordedQemuPid(dir);
  for (;;) {
    const left = processesMentioning(dir);
    if (qemuPid !== null && isPidAlive(qemuPid)) left.push({ pid: qemuPid, cmdline: 'the QEMU the sim started' });
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`processes left behind: ${JSON.stringify(left)}`);
    await delay(50);
  }
}

/** Kill whatever is left (test cleanup after a failure), then remove the directory. */
export async function cleanupDir(dir: string, sims: readonly SimProcess[]): Promise<void> {
  await Promise.all(sims.map((s) => s.kill()));
  const qemuPid = recordedQemuPid(dir);
  if (qemuPid !== null && isPidAlive(qemuPid)) process.kill(qemuPid, 'SIGKILL');
  for (const p of processesMentioning(dir)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await rm(dir, { recursive: true, force: true });
}

export function readStatus(p: Paths): {
  state: string;
  policy: number;
  contCount: number;
  qemuPid: number | null;
  measurement: string | null;
  injectedSecrets: { gpa: number; secrets: { guid: string; length: number }[] }[];
} {
  return JSON.parse(readFileSync(p.status, 'utf8')) as ReturnType<typeof readStatus>;
}

/** Per-test directory, sims and clients, torn down after each test with the no-leftovers check. */
export interface SimFixture {
  readonly dir: string;
  readonly p: Paths;
  /** Paths in a new subdirectory of the test's (for sims launched side by side, each with its own monitor). */
  sub(name: string): Paths;
  launch(qemuArgv: readonly string[], simArgs?: readonly string[]): SimProcess;
  /** Connect to the monitor (`p`'s, else the test's) and negotiate (closed after the test). */
  connect(o?: { negotiate?: boolean; p?: Paths }): Promise<RawQmp>;
}

/** Register beforeEach/afterEach for a suite that starts its own sims per test. */
export function useSimFixture(): SimFixture {
  const sims: SimProcess[] = [];
  const clients: RawQmp[] = [];
  const subs: string[] = [];
  let dir = '';
  beforeEach(async () => {
    dir = await makeDir();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    const mine = sims.splice(0);
    await Promise.all(mine.map((s) => s.kill()));
    for (const sub of subs.splice(0)) {
      await expectNoProcessesLeft(sub);
      await cleanupDir(sub, []);
    }
    await expectNoProcessesLeft(dir);
    await cleanupDir(dir, mine);
  });
  return {
    get dir() {
      return dir;
    },
    get p() {
      return paths(dir);
    },
    sub(name) {
      mkdirSync(join(dir, name));
      subs.push(join(dir, name));
      return paths(join(dir, name));
    },
    launch(qemuArgv, simArgs = []) {
      const sim = startSim(simArgs, qemuArgv);
      sims.push(sim);
      return sim;
    },
    async connect(o = {}) {
      const path = (o.p ?? paths(dir)).monitor;
      const qmp = o.negotiate === false ? await RawQmp.connect(path) : await RawQmp.ready(path);
      clients.push(qmp);
      return qmp;
    },
  };
}
