// The seed's rules through the daemon, as a real process: a running (here: held) SEV guest is not
// migratable and gets no memory snapshot, each refused with the seed's own words; a disk-only
// snapshot really lands in the qcow2 image (QMP while QEMU runs, qemu-img once stopped); a stopped
// guest moves offline to a directory, and a URI gets the instructions instead.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseVmConfig } from '../../src/config/vm-config.js';
import { DEBIAN_OVMF, SIM, missingPrerequisite, runProcess, sevsup } from '../run/harness.js';
import { daemonScope, nothingLeft, writeVm } from './harness.js';

const QEMU_IMG = '/usr/bin/qemu-img';
const missing = missingPrerequisite(SIM, DEBIAN_OVMF, QEMU_IMG);
const scope = daemonScope();

/** Snapshot tags in a qcow2 image (-U: QEMU holds the image's write lock while it runs). */
async function snapshotTags(image: string): Promise<string[]> {
  const r = await runProcess(QEMU_IMG, ['snapshot', '-U', '-l', image]);
  expect(r.code).toBe(0);
  return r.stdout
    .split('\n')
    .slice(2)
    .map((line) => line.trim().split(/\s+/)[1])
    .filter((tag): tag is string => tag !== undefined && tag !== '');
}

describe.skipIf(missing !== null)(`snapshot and migration rules${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it('refuses what the seed refuses, with its words, and does the rest', async () => {
    const dir = await scope.dir();
    const disk = join(dir, 'web.qcow2');
    expect((await runProcess(QEMU_IMG, ['create', '-q', '-f', 'qcow2', disk, '16M'])).code).toBe(0);
    await writeVm(dir, 'web', ['attest: hold', `disk0: file=${disk},format=qcow2`]);
    const daemon = scope.daemon(dir);
    await daemon.start();
    const cli = (...args: string[]): ReturnType<typeof sevsup> => sevsup([...args, '--socket', daemon.socket]);
    expect((await cli('start', 'web')).code).toBe(0);

    const vmstate = await cli('snapshot', 'web', 'with-ram', '--vmstate');
    expect(vmstate).toMatchObject({
      code: 10,
      stderr: 'sevsup: Snapshots that include memory are not supported while memory is encrypted by AMD SEV. [SUP_ERR_SNAPSHOT_VMSTATE]\n',
    });
    for (const target of [join(dir, 'export'), 'tcp:192.0.2.1:4444']) {
      expect(await cli('migrate', 'web', target)).toMatchObject({
        code: 10,
        stderr: 'sevsup: VMs with AMD SEV are not live migratable! [SUP_ERR_MIGRATE_SEV]\n',
      });
    }
    expect(await snapshotTags(disk)).toEqual([]);

    const online = await cli('snapshot', 'web', 'before-upgrade', '--json');
    expect(online.code).toBe(0);
    expect(JSON.parse(online.stdout)).toEqual({ vm: 'web', name: 'before-upgrade', via: 'qmp', disks: [disk] });
    expect(await snapshotTags(disk)).toEqual(['before-upgrade']);
    const twice = await cli('snapshot', 'web', 'before-upgrade');
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('[SUP_ERR_SNAPSHOT_FAILED]');

    expect((await cli('stop', 'web')).code).toBe(0);
    const offline = await cli('snapshot', 'web', 'stopped-one');
    expect(offline).toMatchObject({ code: 0, stdout: `web: disk snapshot 'stopped-one' taken (qemu-img) on ${disk}\n` });
    expect(await snapshotTags(disk)).toEqual(['before-upgrade', 'stopped-one']);
    expect(await cli('snapshot', 'web', 'x', '--vmstate')).toMatchObject({ code: 10 });

    const uri = await cli('migrate', 'web', 'ssh://newhost/');
    expect(uri.code).toBe(2);
    expect(uri.stderr).toContain("sevsup moves a stopped guest offline: 'sevsup migrate web /ABSOLUTE/DIR'");
    const moved = await cli('migrate', 'web', join(dir, 'export'), '--json');
    expect(moved.code).toBe(0);
    const result = JSON.parse(moved.stdout) as { config: string; disks: { to: string }[] };
    expect((await readdir(join(dir, 'export', 'web'))).sort()).toEqual(['disk0-web.qcow2', 'web.conf']);
    const exported = parseVmConfig(await readFile(result.config, 'utf8'), result.config);
    expect(exported.disks.map((d) => d.file)).toEqual([join(dir, 'export', 'web', 'disk0-web.qcow2')]);
    expect(await snapshotTags(join(dir, 'export', 'web', 'disk0-web.qcow2'))).toEqual(['before-upgrade', 'stopped-one']);

    daemon.signal('SIGTERM');
    expect(await daemon.exited()).toEqual({ code: 0, signal: null });
    expect(await nothingLeft(dir)).toEqual([]);
  });
});
