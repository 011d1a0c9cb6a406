// Drives `bin/sevsup run … --json` as a real process for the integration/run suites: collects its
// JSON event lines, waits for events, and proves afterwards that no QEMU/sim process is left (any
// process whose command line mentions the test's private directory).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { missingBuildOrAssets, SEVSUP } from '../../test/support/it-env.js';
import { terminate } from '../../test/support/terminate.js';

export {
  ASSETS,
  DEBIAN_OVMF,
  KERNEL,
  processesMentioning,
  PYTHON,
  REAL_QEMU,
  REPO,
  SEVSUP,
  SIM,
  TEST_FIRMWARE,
  VALIDATOR,
} from '../../test/support/it-env.js';

/** Why the suite cannot run here, or null. */
export function missingPrerequisite(...paths: string[]): string | null {
  return missingBuildOrAssets('sevsup.mjs', paths);
}

export interface Event {
  readonly event: string;
  readonly [key: string]: unknown;
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly events: Event[];
  readonly stderr: string;
}

/** One `sevsup run` process. */
export class SevsupRun {
  readonly events: Event[] = [];
  stderr = '';
  readonly done: Promise<RunResult>;
  readonly #child: ChildProcess;
  readonly #waiters: { name: string; resolve: (e: Event) => void }[] = [];

  constructor(args: readonly string[], env: Readonly<Record<string, string>> = {}) {
    this.#child = spawn(process.execPath, [SEVSUP, 'run', '--json', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let buffer = '';
    this.#child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const event = JSON.parse(line) as Event;
        this.events.push(event);
        for (const w of this.#waiters.filter((x) => x.name === event.event)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(event);
        }
      }
    });
    this.#child.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString('utf8')));
    this.done = new Promise((resolve) => {
      this.#child.on('close', (code, signal) => resolve({ code, signal, events: this.events, stderr: this.stderr }));
    });
  }

  /** The first event called `name` (already seen or still to come); rejects if the run ends first. */
  waitFor(name: string, timeoutMs = 60_000): Promise<Event> {
    const seen = this.events.find((e) => e.event === name);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${name}" event within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.#waiters.push({
        name,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
      void this.done.then(() => {
        clearTimeout(timer);
        const late = this.events.find((e) => e.event === name);
        if (late !== undefined) resolve(late);
        else reject(new Error(`sevsup run ended without a "${name}" event; events: ${this.names().join(', ')}; stderr: ${this.stderr}`));
      });
    });
  }

  names(): string[] {
    return this.events.map((e) => e.event);
  }

  signal(sig: NodeJS.Signals): void {
    this.#child.kill(sig);
  }

  /** SIGTERM, then SIGKILL after a grace: for afterEach, whatever state it is in. */
  async cleanup(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    await terminate(this.#child, this.done, 15_000);
  }
}

/** Run `sevsup <args>` to completion (attest, …). */
export function sevsup(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runProcess(process.execPath, [SEVSUP, ...args]);
}

export function runProcess(cmd: string, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A private directory for one test (short: unix socket paths are limited to 107 bytes). */
export async function testDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'sr-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface ConfOptions {
  readonly name: string;
  readonly firmware: string;
  readonly kernel?: string;
  readonly cmdline?: string;
  readonly sev?: string;
  readonly extra?: readonly string[];
}

/** Write `<dir>/<name>.conf` and return its path. */
export async function writeConf(dir: string, o: ConfOptions): Promise<string> {
  const lines = [
    `name: ${o.name}`,
    'memory: 256',
    'cores: 1',
    'cpu: EPYC-v3',
    'bios: ovmf',
    `firmware: ${o.firmware}`,
    ...(o.kernel === undefined ? [] : [`kernel: ${o.kernel}`]),
    ...(o.cmdline === undefined ? [] : [`cmdline: ${o.cmdline}`]),
    'serial: file',
    `amd_sev: ${o.sev ?? 'type=std,nodbg=1,noks=1'}`,
    ...(o.extra ?? []),
  ];
  const path = join(dir, `${o.name}.conf`);
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

/** 16 random bytes in a file (a TIK or TEK for the sim and the validator). */
export async function writeKey(path: string): Promise<string> {
  const { randomBytes } = await import('node:crypto');
  await writeFile(path, randomBytes(16), { mode: 0o600 });
  return path;
}

/** `sevsup run --platform sim` with the test's run and state dirs. */
export function simRun(dir: string, conf: string, extra: readonly string[] = []): SevsupRun {
  return new SevsupRun([
    conf,
    '--platform',
    'sim',
    '--run-dir',
    join(dir, 'run'),
    '--state-dir',
    join(dir, 'state'),
    '--powerdown-timeout',
    '1',
    ...extra,
  ]);
}

/** The sim's `sim-status.json` (next to the monitor socket) of VM `vm`. */
export function simStatus(
  dir: string,
  vm: string,
): { contCount: number; state: string; injectedSecrets: { gpa: number; secrets: { guid: string; length: number }[] }[] } {
  return JSON.parse(readFileSync(join(dir, 'run', vm, 'private', 'sim-status.json'), 'utf8')) as ReturnType<typeof simStatus>;
}

/**
 * Per-test cleanup for a suite file: private directories and `sevsup run` processes registered
 * through it are ended/removed after each test, newest first, whatever the test did.
 */
export function cleanupScope(): { dir(): Promise<string>; track<T extends { cleanup(): Promise<void> }>(x: T): T } {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return {
    async dir() {
      const { dir, remove } = await testDir();
      cleanups.push(remove);
      return dir;
    },
    track(x) {
      cleanups.push(() => x.cleanup());
      return x;
    },
  };
}
