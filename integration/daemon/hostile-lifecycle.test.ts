// The hostile corpus for the daemon's lifecycle (issue 9, items 3, 5, 7, 11), as real processes on
// the simulated platform (real QEMU under TCG beneath it), with side effects checked: process
// lists, simulator cont counts, state files and records byte for byte. The guests' firmware halts at
// its reset vector (harness.ts writeHaltingVm): QEMU runs, pauses and resumes them like any guest,
// without seconds of OVMF boot per running guest.
// - a second daemon (and a `sevsup run`) on the same directories is refused by the directory lock,
//   naming the lock file and the holder's pid, and touches no guest;
// - a guest whose monitor is taken by someone else is `unreachable` after a restart, left alone
//   (same pid, never resumed, state file unchanged), and re-attached by `start` once it is free;
// - a guest paused after approval can be resumed (proxy `cont`, API `start`); a held one cannot;
// - a QEMU ended by someone else's SIGTERM is a failure, not a clean `stopped`;
// - truncated and corrupt state files are said loudly; a provable QEMU is adopted, a guest whose
//   QEMU cannot be proven is `orphaned` and left alone;
// - no daemon log line carries the same key twice.
import { connect, type Socket } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPidAlive, waitForPidExit } from '../../src/process/pid.js';
import { parseStrictJson } from '../../src/util/strict-json.js';
import { SIM, missingPrerequisite, processesMentioning, sevsup, simStatus } from '../run/harness.js';
import { daemonScope, writeHaltingVm, type Daemon, type GuestStatus } from './harness.js';

const missing = missingPrerequisite(SIM);
const scope = daemonScope();

function viaProxy(dir: string, vm: string, command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return sevsup(['qmp', vm, command, '--run-dir', join(dir, 'run'), '--json']);
}

/** Every JSON line the daemon wrote, parsed strictly: a repeated key throws. */
function strictLogLines(daemon: Daemon): Record<string, unknown>[] {
  return daemon.output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => {
      try {
        return parseStrictJson(line) as Record<string, unknown>;
      } catch (error: unknown) {
        throw new Error(`daemon log line is not strict JSON (${error instanceof Error ? error.message : String(error)}): ${line}`);
      }
    });
}

/** Take a guest's private monitor the way a second supervisor would, and keep it. */
function takeMonitor(dir: string, vm: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(join(dir, 'run', vm, 'private', 'monitor.sock'));
    socket.once('data', () => resolve(socket)); // the greeting: the monitor is ours now
    socket.once('error', reject);
  });
}

async function stateFiles(dir: string, vms: readonly string[]): Promise<Map<string, string>> {
  return new Map(await Promise.all(vms.map(async (vm) => [vm, await readFile(join(dir, 'run', vm, 'state.json'), 'utf8')] as const)));
}

describe.skipIf(missing !== null)(`hostile lifecycle corpus${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it('a second daemon and a sevsup run are refused by the lock; the first daemon’s guests are untouched', async () => {
    const dir = await scope.dir();
    await writeHaltingVm(dir, 'held', ['attest: hold', 'autostart: 1']);
    await writeHaltingVm(dir, 'run1', ['autostart: 1']);
    const first = scope.daemon(dir);
    await first.start();
    const held = await first.waitState('held', ['held']);
    const run1 = await first.waitState('run1', ['running']);
    const before = await stateFiles(dir, ['held', 'run1']);
    const processes = processesMentioning(join(dir, 'run'))
      .map((p) => p.pid)
      .sort();

    // Another socket: the socket alone would not have stopped it (the issue's case).
    const second = scope.daemon(dir, [], join(dir, 'other.sock'));
    await expect(second.start()).rejects.toThrow(/exited with 1/);
    const lockFile = join(dir, 'run', '.sevsup.lock');
    expect(second.output).toContain('SUP_ERR_DIR_LOCKED');
    expect(second.output).toContain(`${lockFile} is locked by pid ${first.pid}`);
    expect(second.output).not.toContain('re-attached');

    const run = await sevsup([
      'run',
      'run1',
      '--platform',
      'sim',
      '--vm-dir',
      join(dir, 'vms'),
      '--run-dir',
      join(dir, 'run'),
      '--state-dir',
      join(dir, 'state'),
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `sevsup run: a sevsup daemon is supervising the same directories: ${lockFile} is locked by pid ${first.pid}`,
    );
    expect(run.stderr).toContain('[SUP_ERR_DIR_LOCKED]');

    // Nothing happened to the first daemon's guests: same pids, same states, files unchanged.
    expect(await first.status('held')).toEqual(held);
    expect(await first.status('run1')).toEqual(run1);
    for (const s of [held, run1]) expect(isPidAlive(s.pid ?? 0), s.vm).toBe(true);
    expect(simStatus(dir, 'held').contCount).toBe(0);
    expect(await stateFiles(dir, ['held', 'run1'])).toEqual(before);
    // No process came or went (the refused daemon and run left nothing either).
    expect(
      processesMentioning(join(dir, 'run'))
        .map((p) => p.pid)
        .sort(),
    ).toEqual(processes);

    // kill -9 frees the lock at once (the kernel drops it): a new daemon takes over and re-attaches.
    await first.crash();
    await second.start();
    expect(await second.status('held')).toEqual(held);
    expect(await second.status('run1')).toEqual(run1);
    expect(strictLogLines(first).length).toBeGreaterThan(0);
    expect(strictLogLines(second).length).toBeGreaterThan(0);
    expect(await second.api('POST', '/v1/vms/held/stop', { force: true })).toMatchObject({ state: 'stopped' });
    expect(await second.api('POST', '/v1/vms/run1/stop', { force: true })).toMatchObject({ state: 'stopped' });
  });

  it('a busy monitor makes a guest unreachable, never destroyed; start re-attaches it once free', async () => {
    const dir = await scope.dir();
    await writeHaltingVm(dir, 'held', ['attest: hold', 'autostart: 1']);
    await writeHaltingVm(dir, 'run1', ['autostart: 1']);
    const daemon = scope.daemon(dir);
    await daemon.start();
    const held = await daemon.waitState('held', ['held']);
    const run1 = await daemon.waitState('run1', ['running']);
    await daemon.crash();
    const before = await stateFiles(dir, ['held', 'run1']);

    // Someone else holds both monitors while the daemon restarts.
    const taken = [await takeMonitor(dir, 'held'), await takeMonitor(dir, 'run1')];
    await daemon.start();
    for (const [vm, was] of [
      ['held', held],
      ['run1', run1],
    ] as const) {
      const s = await daemon.status(vm);
      expect(s).toMatchObject({ state: 'unreachable', pid: was.pid, error: { code: 'SUP_ERR_VM_UNREACHABLE' } });
      expect(s.error?.message).toContain(
        `VM ${vm}: its QEMU (pid ${was.pid}) is running, but its monitor could not be reached on re-attach`,
      );
      expect(isPidAlive(was.pid ?? 0)).toBe(true);
    }
    expect(simStatus(dir, 'held').contCount).toBe(0);
    expect(await stateFiles(dir, ['held', 'run1'])).toEqual(before);
    // Left alone means left alone: neither a stop nor an approve reaches it.
    await expect(daemon.api('POST', '/v1/vms/run1/stop', { force: true })).rejects.toMatchObject({ code: 'SUP_ERR_VM_UNREACHABLE' });
    await expect(daemon.api('POST', '/v1/vms/held/attest', { action: 'approve' })).rejects.toMatchObject({
      code: 'SUP_ERR_VM_UNREACHABLE',
    });
    expect(simStatus(dir, 'held').contCount).toBe(0);
    expect(isPidAlive(run1.pid ?? 0)).toBe(true);

    for (const socket of taken) socket.destroy();
    expect(await daemon.api('POST', '/v1/vms/held/start')).toEqual(held);
    expect(await daemon.api('POST', '/v1/vms/run1/start')).toEqual(run1);
    expect(simStatus(dir, 'held').contCount).toBe(0);
    strictLogLines(daemon);
    expect(await daemon.api('POST', '/v1/vms/held/stop', {})).toMatchObject({ state: 'stopped' });
    expect(await daemon.api('POST', '/v1/vms/run1/stop', { force: true })).toMatchObject({ state: 'stopped' });
  });

  it('pause after approval can be resumed; a held guest cannot; an external SIGTERM is no clean stop', async () => {
    const dir = await scope.dir();
    await writeHaltingVm(dir, 'g', ['attest: hold', 'autostart: 1']);
    const daemon = scope.daemon(dir);
    await daemon.start();
    await daemon.waitState('g', ['held']);
    const refused = await viaProxy(dir, 'g', 'cont');
    expect(refused.code).toBe(10);
    expect(refused.stdout).toContain('cont refused by sevsup');
    expect(simStatus(dir, 'g').contCount).toBe(0);
    await expect(daemon.api('POST', '/v1/vms/g/start')).rejects.toMatchObject({ code: 'SUP_ERR_VM_STATE' });
    expect(simStatus(dir, 'g').contCount).toBe(0);

    expect(await daemon.api('POST', '/v1/vms/g/attest', { action: 'approve' })).toMatchObject({ state: 'running' });
    expect(simStatus(dir, 'g').contCount).toBe(1);
    // An operator's pause and resume through the proxy.
    expect((await viaProxy(dir, 'g', 'stop')).code).toBe(0);
    await daemon.waitState('g', ['paused']);
    const cont = await viaProxy(dir, 'g', 'cont');
    expect(cont.code).toBe(0);
    await daemon.waitState('g', ['running']);
    // And through the API's start.
    expect((await viaProxy(dir, 'g', 'stop')).code).toBe(0);
    await daemon.waitState('g', ['paused']);
    expect(await daemon.api('POST', '/v1/vms/g/start')).toMatchObject({ state: 'running' });
    expect(simStatus(dir, 'g').contCount).toBe(3);

    // Someone else's SIGTERM: QEMU exits 0, but the guest was killed, not stopped.
    const { pid } = await daemon.status('g');
    process.kill(pid ?? 0, 'SIGTERM');
    await waitForPidExit(pid ?? 0, { timeoutMs: 10_000 });
    const ended = await daemon.waitState('g', ['failed', 'stopped']);
    expect(ended).toMatchObject({ state: 'failed', pid: null, error: { code: 'SUP_ERR_QEMU_SIGNALLED' } });
    expect(ended.error?.message).toContain('QEMU was ended by a signal that sevsup did not send while the guest was running');
    strictLogLines(daemon);
  });

  it('truncated and corrupt state files: said loudly; a provable QEMU adopted, an unprovable one orphaned', async () => {
    const dir = await scope.dir();
    for (const vm of ['cut', 'junk', 'stale']) await writeHaltingVm(dir, vm, ['autostart: 1']);
    const daemon = scope.daemon(dir);
    await daemon.start();
    const cut = await daemon.waitState('cut', ['running']);
    const junk = await daemon.waitState('junk', ['running']);
    await daemon.waitState('stale', ['running']);
    await daemon.crash();

    const cutFile = join(dir, 'run', 'cut', 'state.json');
    const text = await readFile(cutFile, 'utf8');
    await writeFile(cutFile, text.slice(0, text.length / 2)); // a torn write
    await writeFile(join(dir, 'run', 'junk', 'state.json'), '{"schema":"sevsup.vm-state/v1"}\n');
    // `stale`: its file is unusable, and the QEMU naming its monitor started after the file was
    // last written (as a process reusing the names would): nothing proves it is the guest's.
    const staleFile = join(dir, 'run', 'stale', 'state.json');
    await writeFile(staleFile, 'not json');
    const { utimes } = await import('node:fs/promises');
    await utimes(staleFile, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));

    await daemon.start();
    const lines = strictLogLines(daemon);
    const loud = lines.filter((l) => l['level'] === 50 && typeof l['msg'] === 'string' && String(l['msg']).includes('state file of VM'));
    expect(loud.map((l) => l['vm']).sort()).toEqual(['cut', 'junk', 'stale']);
    expect(await daemon.status('cut')).toMatchObject({ state: 'running', pid: cut.pid, error: null });
    expect(await daemon.status('junk')).toMatchObject({ state: 'running', pid: junk.pid, error: null });
    const stale = await daemon.status('stale');
    expect(stale).toMatchObject({ state: 'orphaned', error: { code: 'SUP_ERR_VM_ORPHANED' } });
    expect(stale.error?.message).toContain('started after sevsup last wrote the file');
    expect(isPidAlive(stale.pid ?? 0)).toBe(true);
    // Never a second QEMU for an orphan, and no stop through a session it does not have.
    await expect(daemon.api('POST', '/v1/vms/stale/start')).rejects.toMatchObject({ code: 'SUP_ERR_VM_ORPHANED' });
    await expect(daemon.api('POST', '/v1/vms/stale/stop', {})).rejects.toMatchObject({ code: 'SUP_ERR_VM_ORPHANED' });
    expect(isPidAlive(stale.pid ?? 0)).toBe(true);
    expect(processesMentioning(join(dir, 'run', 'stale', 'private', 'monitor.sock')).map((p) => p.pid)).toEqual([stale.pid]);
    // The adopted ones are supervised again: their state files are whole once more.
    expect(JSON.parse(await readFile(cutFile, 'utf8'))).toMatchObject({ vm: 'cut', state: 'running', pid: cut.pid });
    expect(await daemon.api('POST', '/v1/vms/cut/stop', { force: true })).toMatchObject({ state: 'stopped' });
    expect(await daemon.api('POST', '/v1/vms/junk/stop', { force: true })).toMatchObject({ state: 'stopped' });
    const listed = (await daemon.list()).map((s: GuestStatus) => [s.vm, s.state]);
    expect(listed).toEqual([
      ['cut', 'stopped'],
      ['junk', 'stopped'],
      ['stale', 'orphaned'],
    ]);
  });
});
