// The daemon's command line as a real process: config errors and a second daemon refused with
// their exit codes (the first one unaffected), and the client commands' human and --json output
// with their documented exit codes.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEBIAN_OVMF, SIM, missingPrerequisite, sevsup } from '../run/harness.js';
import { daemonScope, nothingLeft, writeVm } from './harness.js';

const missing = missingPrerequisite(SIM, DEBIAN_OVMF);
const scope = daemonScope();

describe.skipIf(missing !== null)(`sevsup daemon and its client commands${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it('refuses a missing explicit config, and a bad value, before touching anything', async () => {
    const dir = await scope.dir();
    const absent = join(dir, 'absent.conf');
    expect(await sevsup(['daemon', '--config', absent])).toEqual({
      code: 3,
      stdout: '',
      stderr: `sevsup: cannot read config file ${absent}: no such file [SUP_ERR_CONFIG_READ]\n`,
    });
    expect(await sevsup(['daemon', '--platform', 'kvm', '--socket', join(dir, 's.sock')])).toMatchObject({
      code: 3,
      stderr: "sevsup: --platform: 'kvm' must be one of hardware, sim [SUP_ERR_CONFIG_BAD_VALUE]\n",
    });
  });

  it('serves list, status, start, stop and measurement; a second daemon is refused', async () => {
    const dir = await scope.dir();
    await writeVm(dir, 'web', ['attest: hold']);
    const daemon = scope.daemon(dir);
    await daemon.start();
    const cli = (...args: string[]): ReturnType<typeof sevsup> => sevsup([...args, '--socket', daemon.socket]);

    const second = await sevsup([
      'daemon',
      '--platform',
      'sim',
      '--vm-dir',
      join(dir, 'vms'),
      '--run-dir',
      join(dir, 'run2'),
      '--socket',
      daemon.socket,
    ]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('[SUP_ERR_DAEMON_RUNNING]');

    expect(await cli('list')).toEqual({ code: 0, stdout: 'VM   STATE    SEV  PID  NOTE\nweb  defined  yes  -\n', stderr: '' });
    expect(await cli('status', 'nope')).toEqual({
      code: 9,
      stdout: '',
      stderr: 'sevsup: no VM named "nope" is served on this socket [SUP_ERR_VM_NOT_FOUND]\n',
    });
    expect(await sevsup(['status', 'web', '--socket', join(dir, 'none.sock')])).toMatchObject({ code: 8 });
    expect((await cli('measurement', 'web')).code).toBe(1);

    const started = await cli('start', 'web');
    expect(started.code).toBe(0);
    expect(started.stdout).toMatch(
      /^web: held \(pid \d+\)\n {2}platform simulated, SEV guest\n {2}held for attestation until .+; secrets injected: 0\n {2}measurement record .+\.json\n$/,
    );
    const status = JSON.parse((await cli('status', 'web', '--json')).stdout) as { state: string; record: string };
    expect(status.state).toBe('held');
    const record = JSON.parse((await cli('measurement', 'web')).stdout) as { vm: string; schema: string };
    expect(record).toMatchObject({ vm: 'web', schema: 'sevsup.measurement/v1' });
    const all = await cli('measurement', 'web', '--all');
    expect(all.stdout).toContain(status.record);
    expect(await cli('start', 'web')).toMatchObject({ code: 1, stderr: 'sevsup: VM web is already held [SUP_ERR_VM_STATE]\n' });
    expect(await cli('stop', 'web')).toMatchObject({ code: 0, stdout: expect.stringMatching(/^web: stopped\n/) });

    daemon.signal('SIGTERM');
    expect(await daemon.exited()).toEqual({ code: 0, signal: null });
    expect(await nothingLeft(dir)).toEqual([]);
  });
});
