// The real QEMU against sevsup's tables: every command `query-commands` lists must be classified
// (so a new QEMU cannot slip a command through unnoticed), the HMP tables must match `help` and
// `info`, and the HMP reading of odd command lines must agree with what QEMU itself runs.
// Runs QEMU paused with no machine (-machine none -S): nothing executes; quit and kill in afterAll.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QMP_COMMANDS } from '../../src/policy/qmp-policy.js';
import { HMP_COMMANDS_7_2, HMP_INFO_COMMANDS_7_2, parseHmpCommandLine } from '../../src/qemu/hmp.js';

const QEMU = process.env['QEMU_BIN'] ?? '/usr/bin/qemu-system-x86_64';
/** Commands the table knows from QEMU 10.x (qemu-sev-facts §8), absent from a 7.2 binary. */
const ADDITIONS_10 = ['blockdev-set-active', 'query-migrationthreads'];
/** Spawn to listening socket takes ~50 ms here; allow for a loaded 2-core machine. */
const CONNECT_TIMEOUT_MS = 15_000;
const EXIT_TIMEOUT_MS = 5_000;

/** Just enough QMP for this test: one JSON object per line, events skipped. */
class MiniQmp {
  private buffer = '';
  private readonly lines: string[] = [];
  private waiter: (() => void) | null = null;

  constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        this.lines.push(this.buffer.slice(0, nl));
        this.buffer = this.buffer.slice(nl + 1);
      }
      this.waiter?.();
    });
  }

  async next(): Promise<Record<string, unknown>> {
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) {
        const value = JSON.parse(line) as Record<string, unknown>;
        if (!('event' in value)) return value;
        continue;
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = null;
    }
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    this.socket.write(`${JSON.stringify(args === undefined ? { execute: command } : { execute: command, arguments: args })}\n`);
    const reply = await this.next();
    if (!('return' in reply)) throw new Error(`${command} failed: ${JSON.stringify(reply)}`);
    return reply['return'];
  }

  async hmp(line: string): Promise<string> {
    return (await this.execute('human-monitor-command', { 'command-line': line })) as string;
  }
}

async function connectWithRetry(path: string, qemu: ChildProcess): Promise<Socket> {
  const deadline = Date.now() + CONNECT_TIMEOUT_MS;
  for (;;) {
    if (qemu.exitCode !== null || qemu.signalCode !== null) throw new Error(`QEMU exited early (${qemu.exitCode ?? qemu.signalCode})`);
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connect(path);
        socket.once('connect', () => resolve(socket));
        socket.once('error', reject);
      });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Command names of `help` (`a|b` kept whole) and sub-commands of `info`, as QEMU prints them. */
function helpNames(text: string, prefix: string): string[] {
  return (
    text
      .split('\n')
      // Continuation lines of a long help start with whitespace or '[' (drive_add's options).
      .filter((l) => l.startsWith(prefix) && !/^[\s[]/.test(l))
      .map((l) => l.slice(prefix.length).split(' ')[0] as string)
      .filter((n) => n !== '' && !n.startsWith('['))
  );
}

describe.runIf(existsSync(QEMU))('QEMU command classification (real binary)', () => {
  let dir = '';
  let qemu: ChildProcess | undefined;
  let qmp: MiniQmp;
  let socket: Socket | undefined;
  let version = { major: 0, minor: 0 };
  let stderr = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sevsup-classify-'));
    const path = join(dir, 'qmp.sock');
    // TCG: the command tables do not depend on the accelerator, and every machine has TCG.
    const args = ['-machine', 'none', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-S', '-qmp', `unix:${path},server=on,wait=off`];
    qemu = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    qemu.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    socket = await connectWithRetry(path, qemu).catch((error: unknown) => {
      throw new Error(`cannot reach QEMU's QMP socket: ${String(error)}; stderr: ${stderr}`);
    });
    qmp = new MiniQmp(socket);
    const greeting = (await qmp.next()) as { QMP: { version: { qemu: { major: number; minor: number } } } };
    version = greeting.QMP.version.qemu;
    await qmp.execute('qmp_capabilities');
  });

  afterAll(async () => {
    if (qemu !== undefined) {
      if (socket !== undefined && !socket.destroyed) socket.write('{"execute":"quit"}\n');
      if (!(await waitForExit(qemu, EXIT_TIMEOUT_MS))) {
        qemu.kill('SIGKILL');
        await waitForExit(qemu, EXIT_TIMEOUT_MS);
      }
    }
    socket?.destroy();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('classifies every command query-commands lists', async () => {
    const names = ((await qmp.execute('query-commands')) as { name: string }[]).map((c) => c.name);
    expect(names.length).toBeGreaterThan(100);
    const unclassified = names.filter((n) => !QMP_COMMANDS.has(n));
    expect(unclassified, 'commands in neither the allowed nor the refused table').toEqual([]);
    if (version.major === 7 && version.minor === 2) {
      const missing = [...QMP_COMMANDS.keys()].filter((n) => !names.includes(n)).sort();
      expect(missing, '7.2 names the table has but the binary lacks').toEqual(ADDITIONS_10);
      expect(names).toHaveLength(216);
    }
  });

  it('has the HMP tables of this QEMU 7.2 (help and info)', async (context) => {
    if (version.major !== 7 || version.minor !== 2) context.skip();
    expect(helpNames(await qmp.hmp('help'), '').sort()).toEqual([...HMP_COMMANDS_7_2].sort());
    expect(helpNames(await qmp.hmp('info'), 'info ').sort()).toEqual([...HMP_INFO_COMMANDS_7_2].sort());
  });

  it.each([
    'info status',
    '  info status',
    '\tinfo\tstatus',
    '\v\finfo\r\nstatus',
    'info\vversion',
    'INFO status',
    'Info status',
    'info STATUS',
    '\u00a0info status',
    'info \u00a0status',
    '\u0085info status',
    '\u3000info status',
    '\u2028info status',
    'info/status',
    'info status\u0000x',
    'info migrate_capabilities',
    'info migrate-capabilities',
    'info memory_size_summary',
    'info memory-size-summary',
    'info memory-devices',
    'info memory_devices',
    'info',
    'info   ',
    '?',
    '? info',
    'help info',
    'HELP',
    'help_',
    `info ${'v'.repeat(300)}`,
  ])('reads %j as QEMU does (known command or not)', async (line) => {
    const output = await qmp.hmp(line);
    const qemuKnows = !output.includes('unknown command');
    expect(parseHmpCommandLine(line).known, output.slice(0, 200)).toBe(qemuKnows);
  });
});
