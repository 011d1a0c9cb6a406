// The daemon as a real process on the simulated platform: five guests (held, running, paused),
// `kill -9` of the daemon and a restart that re-attaches every guest to the same simulator pid —
// the held one still paused, still held (same deadline, cont still refused through its proxy,
// never resumed: the simulator counts no cont) — with records intact; a guest that died while the
// daemon was down is reported failed; SIGHUP with an added, a changed and a removed config; and
// SIGTERM with `on-shutdown: shutdown` stopping everything. The guests' firmware halts at its reset
// vector (harness.ts writeHaltingVm): the daemon, not what the guests run, is under test.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { unlink, writeFile } from 'node:fs/promises';
import { isPidAlive, waitForPidExit } from '../../src/process/pid.js';
import { SIM, missingPrerequisite, sevsup, simStatus } from '../run/harness.js';
import { daemonScope, nothingLeft, writeHaltingVm, type GuestStatus } from './harness.js';

const missing = missingPrerequisite(SIM);
const scope = daemonScope();

/** One QMP command through a guest's filtering proxy socket (as any QMP client would). */
async function viaProxy(dir: string, vm: string, command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return sevsup(['qmp', vm, command, '--run-dir', join(dir, 'run'), '--json']);
}

/** The QEMU -m value of a running guest, from its simulator's command line. */
async function memoryArg(pid: number): Promise<string | undefined> {
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  return argv[argv.indexOf('-m') + 1];
}

describe.skipIf(missing !== null)(`daemon restart and reload${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it('re-attaches five guests after kill -9, reloads on SIGHUP, shuts down on SIGTERM', async () => {
    const dir = await scope.dir();
    await writeHaltingVm(dir, 'g1', ['attest: hold', 'autostart: 1']);
    for (const vm of ['g2', 'g3', 'g4', 'g5']) await writeHaltingVm(dir, vm, ['autostart: 1']);
    await writeHaltingVm(dir, 'bad', ['memory: lots']);
    const daemon = scope.daemon(dir);
    await daemon.start();

    await daemon.waitState('g1', ['held']);
    for (const vm of ['g2', 'g3', 'g4', 'g5']) await daemon.waitState(vm, ['running']);
    // Three of them paused through their proxies once they ran (cheap on a 2-core host).
    for (const vm of ['g3', 'g4', 'g5']) {
      expect((await viaProxy(dir, vm, 'stop')).code).toBe(0);
      await daemon.waitState(vm, ['paused']);
    }
    const listed = (await daemon.api('GET', '/v1/vms')) as { vms: GuestStatus[]; configErrors: { file: string; code: string }[] };
    expect(listed.vms.map((s) => [s.vm, s.state])).toEqual([
      ['g1', 'held'],
      ['g2', 'running'],
      ['g3', 'paused'],
      ['g4', 'paused'],
      ['g5', 'paused'],
    ]);
    expect(listed.configErrors).toEqual([
      expect.objectContaining({ file: join(dir, 'vms', 'bad.conf'), code: 'SUP_ERR_CONFIG_BAD_VALUE' }),
    ]);
    const before = new Map(listed.vms.map((s) => [s.vm, s]));
    const g1 = before.get('g1');
    expect(g1).toMatchObject({ state: 'held', secretsInjected: 0, error: null });
    const records = new Map<string, string>();
    for (const s of listed.vms) if (s.record !== null) records.set(s.record, await readFile(s.record, 'utf8'));
    expect(records.size).toBe(5);

    // The daemon dies hard; every guest keeps running. One dies while nobody watches.
    await daemon.crash();
    for (const s of listed.vms) expect(isPidAlive(s.pid ?? 0), s.vm).toBe(true);
    const g4pid = before.get('g4')?.pid ?? 0;
    process.kill(g4pid, 'SIGKILL');
    await waitForPidExit(g4pid, { timeoutMs: 5000 });

    // A halted guest never acts on the ACPI power-off request: 1 s for it (not the default 10 s),
    // then quit, as for any guest that ignores it.
    await daemon.start(['--on-shutdown', 'shutdown', '--powerdown-timeout', '1']);
    const after = new Map((await daemon.list()).map((s) => [s.vm, s]));
    for (const vm of ['g1', 'g2', 'g3', 'g5']) expect(after.get(vm), vm).toEqual(before.get(vm));
    expect(after.get('g4')).toMatchObject({ state: 'failed', pid: null, error: { code: 'SUP_ERR_QEMU_EXITED' } });
    expect(after.get('g4')?.error?.message).toContain(
      `VM g4: QEMU (pid ${g4pid}) ended while sevsup was not running; the guest was paused`,
    );
    for (const [path, text] of records) expect(await readFile(path, 'utf8')).toBe(text);

    // Held means held: paused, cont refused through the proxy, never resumed.
    expect(simStatus(dir, 'g1').contCount).toBe(0);
    const cont = await viaProxy(dir, 'g1', 'cont');
    expect(cont.code).toBe(10);
    expect(cont.stdout).toContain('cont refused by sevsup');
    expect(simStatus(dir, 'g1').contCount).toBe(0);
    expect(await daemon.status('g1')).toEqual(g1);

    // SIGHUP: g6 added, g2 changed (applies at its next start), g5 removed (forgotten once stopped).
    const g2 = after.get('g2');
    await writeHaltingVm(dir, 'g6');
    await writeHaltingVm(dir, 'g2', ['autostart: 1', 'memory: 384']);
    await unlink(join(dir, 'vms', 'g5.conf'));
    await writeFile(join(dir, 'vms', 'bad.conf'), 'memory: 256\ncores: 1\nbios: ovmf\n');
    daemon.signal('SIGHUP');
    const deadline = Date.now() + 10_000;
    while ((await daemon.status('g6').catch(() => null)) === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const reloaded = (await daemon.api('GET', '/v1/vms')) as { vms: GuestStatus[]; configErrors: unknown[] };
    expect(reloaded.vms.map((s) => [s.vm, s.state])).toEqual([
      ['bad', 'defined'],
      ['g1', 'held'],
      ['g2', 'running'],
      ['g3', 'paused'],
      ['g4', 'failed'],
      ['g5', 'paused'],
      ['g6', 'defined'],
    ]);
    expect(reloaded.configErrors).toEqual([]);
    expect(await daemon.status('g2')).toEqual(g2);
    expect(await memoryArg(g2?.pid ?? 0)).toBe('256');
    expect(await daemon.api('POST', '/v1/vms/g5/stop', { force: true })).toMatchObject({ state: 'stopped' });
    await expect(daemon.status('g5')).rejects.toMatchObject({ code: 'SUP_ERR_VM_NOT_FOUND' });
    expect(await daemon.api('POST', '/v1/vms/g2/stop', { force: true })).toMatchObject({ state: 'stopped' });
    const g2again = (await daemon.api('POST', '/v1/vms/g2/start')) as GuestStatus;
    expect(g2again.state).toBe('running');
    expect(await memoryArg(g2again.pid ?? 0)).toBe('384');

    // The owner approves the held guest after all that: it runs, resumed exactly once.
    const approved = await sevsup(['attest', 'g1', '--approve', '--socket', daemon.socket]);
    expect(approved).toMatchObject({ code: 0, stdout: 'g1: approved; state running\n' });
    expect(simStatus(dir, 'g1').contCount).toBe(1);

    // SIGTERM with on-shutdown: shutdown stops every guest; nothing is left.
    daemon.signal('SIGTERM');
    expect(await daemon.exited()).toEqual({ code: 0, signal: null });
    expect(await nothingLeft(dir)).toEqual([]);
  });
});
