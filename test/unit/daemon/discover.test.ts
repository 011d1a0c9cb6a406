// Finding a previous daemon's guests in the run dir, and cleaning a gone guest's leftovers
// (sockets and pid file only: logs and the state file stay).
import { createServer } from 'node:net';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverGuests, readPidFile, removeStaleRunFiles } from '../../../src/daemon/discover.js';
import { resolveGroup } from '../../../src/daemon/group.js';
import { vmRunPaths } from '../../../src/process/run-dir.js';
import { writeVmState, type PersistedVmState } from '../../../src/vm/state-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sdi-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function state(runDir: string, vm: string, over: Partial<PersistedVmState> = {}): PersistedVmState {
  return {
    schema: 'sevsup.vm-state/v1',
    vm,
    state: 'held',
    platform: 'simulated',
    sev: true,
    pid: 4242,
    startTime: 99,
    monitorSocket: vmRunPaths(runDir, vm).monitorSocket,
    stderrFile: null,
    record: null,
    holdDeadline: '2026-11-26T10:00:00.000Z',
    secretsInjected: 0,
    ran: false,
    config: 'name: x\n',
    configSource: '/etc/sevsup/vms/x.conf',
    error: null,
    updatedAt: '2026-11-26T09:50:00.000Z',
    ...over,
  };
}

/** A unix socket file nobody listens on (as a dead daemon leaves it). */
async function staleSocket(path: string): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  // Closing a listening server unlinks its path; an abandoned one (SIGKILL) does not. Mimic that.
  const handle = (server as unknown as { _handle: { close(): void } | null })._handle;
  handle?.close();
}

describe('discoverGuests', () => {
  it('lists state files that describe their own directory, sorted', async () => {
    const runDir = join(dir, 'run1');
    for (const vm of ['b', 'a', 'copied', 'junk']) await mkdir(join(runDir, vm), { recursive: true });
    await writeVmState(join(runDir, 'b', 'state.json'), state(runDir, 'b'));
    await writeVmState(join(runDir, 'a', 'state.json'), state(runDir, 'a', { state: 'running', ran: true }));
    await writeVmState(join(runDir, 'copied', 'state.json'), state(runDir, 'a'));
    await writeFile(join(runDir, 'junk', 'state.json'), '{"schema":"something else"}');
    await writeFile(join(runDir, 'sevsup.sock.txt'), '');
    await mkdir(join(runDir, 'cut'), { recursive: true });
    await writeFile(join(runDir, 'cut', 'state.json'), '{"schema":"sevsup.vm-state/v1","vm":"cut","state":"runn');
    const { found, unreadable } = await discoverGuests(runDir);
    expect(found.map((s) => [s.vm, s.state])).toEqual([
      ['a', 'running'],
      ['b', 'held'],
    ]);
    // The rest is reported with why (the daemon says so loudly and shows the guest as orphaned).
    expect(unreadable.map((u) => [u.vm, u.file])).toEqual([
      ['copied', join(runDir, 'copied', 'state.json')],
      ['cut', join(runDir, 'cut', 'state.json')],
      ['junk', join(runDir, 'junk', 'state.json')],
    ]);
    expect(unreadable.map((u) => u.reason)).toEqual([
      `it describes VM "a" at ${join(runDir, 'a', 'private', 'monitor.sock')}, not this directory`,
      expect.stringMatching(/^it is not JSON, truncated or corrupt \(/),
      'it is not a sevsup.vm-state/v1 file (a member is missing or of the wrong type)',
    ]);
    expect(await discoverGuests(join(dir, 'none'))).toEqual({ found: [], unreadable: [] });
  });
});

describe('removeStaleRunFiles', () => {
  it('removes sockets, the pid file and the simulator private dirs; keeps logs and the state file', async () => {
    const runDir = join(dir, 'run2');
    const paths = vmRunPaths(runDir, 'g');
    await mkdir(join(paths.privateDir, '.sevsup-sim-123-abc'), { recursive: true });
    await writeFile(join(paths.dir, 'qemu.log'), 'log');
    await writeFile(join(paths.dir, 'state.json'), '{}');
    await writeFile(paths.pidFile, '123\n');
    expect(await readPidFile(runDir, 'g')).toBe(123);
    await staleSocket(paths.proxySocket);
    await staleSocket(paths.monitorSocket);
    await removeStaleRunFiles(runDir, 'g');
    expect((await readdir(paths.dir)).sort()).toEqual(['private', 'qemu.log', 'state.json']);
    expect(await readdir(paths.privateDir)).toEqual([]);
    expect(await readPidFile(runDir, 'g')).toBeNull();
  });
});

describe('resolveGroup', () => {
  it('takes a gid as is and looks a name up in the group file', async () => {
    const file = join(dir, 'group');
    await writeFile(file, 'root:x:0:\nsevsup:x:990:alice,bob\n');
    expect(await resolveGroup('1234', file)).toBe(1234);
    expect(await resolveGroup('sevsup', file)).toBe(990);
    await expect(resolveGroup('nobody-here', file)).rejects.toMatchObject({
      code: 'SUP_ERR_CONFIG_BAD_VALUE',
      message: `socket-group: no group named 'nobody-here' in ${file}; create it (groupadd nobody-here) or give a numeric gid`,
    });
  });
});
