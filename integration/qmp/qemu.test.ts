// The QMP client against the real QEMU (7.2 on Debian 12): connect to the monitor socket QEMU
// serves (`server=on,wait=off`), negotiate with oob, typed commands, QEMU's own error texts, quit.
// Skipped, visibly, where the binary is missing. Uses KVM when /dev/kvm exists (paused guests
// are fine under this host's nested KVM), else TCG. Never leaves a QEMU behind: every spawned
// process is killed and awaited in afterEach.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isSupervisorError } from '../../src/errors.js';
import { QmpClient, type Runstate } from '../../src/qmp/client.js';
import * as cmd from '../../src/qmp/commands.js';
import { ACCEL_KVM_IF_PRESENT } from '../kvm.js';

const QEMU = process.env['QEMU_BIN'] ?? '/usr/bin/qemu-system-x86_64';
const SKIP = existsSync(QEMU) ? '' : `needs ${QEMU}`;
const ACCEL = ACCEL_KVM_IF_PRESENT;

interface Qemu {
  child: ChildProcess;
  socket: string;
  exited: Promise<number | null>;
  stderr: () => string;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startQemu(machine: readonly string[]): Promise<Qemu> {
  const dir = await mkdtemp(join(tmpdir(), 'sevsup-qmp-it-'));
  const socket = join(dir, 'monitor.sock');
  const child = spawn(
    QEMU,
    [
      ...machine,
      '-accel',
      ACCEL,
      '-nodefaults',
      '-display',
      'none',
      '-S',
      '-chardev',
      `socket,id=m,path=${socket},server=on,wait=off`,
      '-mon',
      'chardev=m,mode=control',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  });
  return { child, socket, exited, stderr: () => stderr };
}

async function connect(qemu: Qemu, states?: Runstate[]): Promise<QmpClient> {
  const client = await QmpClient.connect({
    path: qemu.socket,
    oob: true,
    isAlive: () => qemu.child.exitCode === null && qemu.child.signalCode === null,
    exited: qemu.exited,
    ...(states ? { onStateChange: (s: Runstate) => states.push(s) } : {}),
  });
  cleanups.push(() => client.close());
  return client;
}

describe.skipIf(SKIP !== '')(`QmpClient against real QEMU (${ACCEL})${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  it.each([
    ['-machine none', ['-machine', 'none']],
    ['q35', ['-machine', 'q35', '-m', '64']],
  ])('%s: negotiate with oob, query, QEMU error texts, quit', async (_name, machine) => {
    const qemu = await startQemu(machine);
    const states: Runstate[] = [];
    const client = await connect(qemu, states);

    expect(client.greeting.QMP.capabilities).toEqual(['oob']);
    expect(client.oob).toBe(true);
    const version = await cmd.queryVersion(client);
    expect(version.qemu).toEqual(client.greeting.QMP.version.qemu);
    expect(version.qemu.major).toBeGreaterThanOrEqual(7);
    expect(await cmd.queryStatus(client)).toEqual({ status: 'prelaunch', running: false });
    const commands = await cmd.queryCommands(client);
    expect(commands).toEqual(expect.arrayContaining(['query-sev', 'query-sev-launch-measure', 'sev-inject-launch-secret', 'cont', 'quit']));

    // SEV off is a successful reply, normalised (7.2: flat, sevType null).
    expect(await cmd.querySev(client)).toMatchObject({
      enabled: false,
      apiMajor: 0,
      apiMinor: 0,
      buildId: 0,
      state: 'uninit',
      policy: 0,
      handle: 0,
    });

    let caught: unknown;
    try {
      await cmd.querySevLaunchMeasure(client);
    } catch (error) {
      caught = error;
    }
    expect(isSupervisorError(caught) && [caught.code, caught.message, caught.details]).toEqual([
      'SUP_ERR_QMP_EXECUTE',
      "QMP command 'query-sev-launch-measure' failed (GenericError): SEV launch measurement is not available",
      { command: 'query-sev-launch-measure', class: 'GenericError', desc: 'SEV launch measurement is not available' },
    ]);

    // Exact names only: QEMU does no dash/underscore folding.
    expect(await client.request({ execute: 'query_sev' })).toEqual({
      error: { class: 'CommandNotFound', desc: 'The command query_sev has not been found' },
    });
    // exec-oob with a non-OOB command is refused by QEMU, with our id echoed (the session goes on).
    expect(await client.request({ 'exec-oob': 'query-version' })).toEqual({
      error: { class: 'GenericError', desc: 'The command query-version does not support OOB' },
    });

    const events = client.events({ names: ['SHUTDOWN'] });
    await cmd.quit(client);
    expect(await client.closed).toBeUndefined();
    const shutdown = await events.next();
    expect(shutdown.value?.data).toEqual({ guest: false, reason: 'host-qmp-quit' });
    expect(await events.next()).toEqual({ value: undefined, done: true });
    expect(await qemu.exited).toBe(0);
    expect(states).toEqual(['connecting', 'running', 'disconnecting', 'idle']);
  });

  it('connects while QEMU is still creating its socket (connect started before spawn)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sevsup-qmp-it-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const socket = join(dir, 'monitor.sock');
    const connecting = QmpClient.connect({ path: socket, connectTimeoutMs: 30_000 });
    const child = spawn(
      QEMU,
      [
        '-machine',
        'none',
        '-accel',
        ACCEL,
        '-nodefaults',
        '-display',
        'none',
        '-S',
        '-chardev',
        `socket,id=m,path=${socket},server=on,wait=off`,
        '-mon',
        'chardev=m,mode=control',
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    const client = await connecting;
    cleanups.push(() => client.close());
    expect(await cmd.queryStatus(client)).toEqual({ status: 'prelaunch', running: false });
    await cmd.quit(client);
    await exited;
  });

  it('QEMU killed with a command pending: the session ends with a cause and is sticky', async () => {
    const qemu = await startQemu(['-machine', 'none']);
    const client = await connect(qemu);
    const pending = client.execute('query-status');
    qemu.child.kill('SIGKILL');
    // The reply may or may not have been written before the kill; either outcome is legitimate,
    // but the session must end with a cause and reject later calls as sticky.
    await pending.catch(() => undefined);
    // EOF (SUP_ERR_QMP_INTERRUPTED) or, when QEMU died with our bytes unread, the kernel's
    // reset (ECONNRESET, kept raw as the root cause).
    const cause = await client.closed;
    expect(cause).toBeInstanceOf(Error);
    expect(['SUP_ERR_QMP_INTERRUPTED', 'ECONNRESET']).toContain((cause as Error & { code?: unknown }).code);
    let caught: unknown;
    try {
      await client.execute('query-status');
    } catch (error) {
      caught = error;
    }
    expect(isSupervisorError(caught) && [caught.code, caught.details]).toEqual([
      'SUP_ERR_QMP_STATE',
      { state: 'idle', required: 'running', action: 'send a QMP command' },
    ]);
  });

  it('a QEMU that fails to start: connect gives up with SUP_ERR_QMP_CONNECT', async () => {
    // An unknown machine type makes QEMU exit at once, before creating the socket.
    const qemu = await startQemu(['-machine', 'no-such-machine']);
    let caught: unknown;
    try {
      await connect(qemu);
    } catch (error) {
      caught = error;
    }
    expect(isSupervisorError(caught) && [caught.code, caught.message]).toEqual([
      'SUP_ERR_QMP_CONNECT',
      `QEMU exited before its QMP socket ${qemu.socket} accepted a connection`,
    ]);
    expect(await qemu.exited).toBe(1);
    expect(qemu.stderr()).toContain('unsupported machine type');
  });
});
