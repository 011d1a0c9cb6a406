// The seed's snapshot and migration rules (exact texts), the snapshot transaction on `disk<N>`
// nodes, and the offline export of a stopped guest on real files.
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

/** Runs inside exportGuest's first stat (if any): simulates another user racing the export. */
const race = vi.hoisted(() => ({ hook: undefined as undefined | (() => Promise<void>) }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...real,
    stat: async (...args: Parameters<typeof real.stat>) => {
      const hook = race.hook;
      race.hook = undefined;
      if (hook) await hook();
      return real.stat(...args);
    },
  };
});
import { parseVmConfig } from '../../../src/config/vm-config.js';
import type { VmSpec } from '../../../src/config/vm-spec.js';
import { exportGuest, refuseMigrate, refuseSnapshot, snapshotOnline } from '../../../src/daemon/guest-ops.js';
import { catchSupervisorError as errorOf, catchSupervisorErrorAsync as asyncErrorOf } from '../../support/catch-error.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sgo-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function spec(): VmSpec {
  return parseVmConfig(
    [
      'name: web',
      'memory: 256',
      'cores: 1',
      'bios: ovmf',
      'amd_sev: type=std',
      'disk0: file=/srv/web.qcow2,format=qcow2',
      'disk1: file=/srv/data.raw,format=raw',
      'disk2: file=/srv/ro.qcow2,format=qcow2,readonly=1',
    ].join('\n'),
    '/etc/sevsup/vms/web.conf',
  );
}

describe('refuseSnapshot', () => {
  it("refuses memory state of an SEV guest with the seed's words", () => {
    expect(errorOf(() => refuseSnapshot(spec(), true))).toMatchObject({
      code: 'SUP_ERR_SNAPSHOT_VMSTATE',
      message: 'Snapshots that include memory are not supported while memory is encrypted by AMD SEV.',
    });
  });

  it('refuses memory state of any guest, and a guest without qcow2 disks', () => {
    const { sev: _sev, ...noSev } = spec();
    expect(errorOf(() => refuseSnapshot(noSev, true))).toMatchObject({
      code: 'SUP_ERR_SNAPSHOT_UNSUPPORTED',
      message: 'VM web: sevsup takes disk-only snapshots; memory state is never saved',
    });
    expect(errorOf(() => refuseSnapshot({ ...spec(), disks: [] }, false))).toMatchObject({
      code: 'SUP_ERR_SNAPSHOT_UNSUPPORTED',
      message: 'VM web has no writable qcow2 disk: raw disks cannot hold internal snapshots',
    });
  });

  it('picks the writable qcow2 disks, and snapshots them in one transaction on their nodes', async () => {
    const disks = refuseSnapshot(spec(), false);
    expect(disks.map((d) => d.file)).toEqual(['/srv/web.qcow2']);
    const sent: [string, Record<string, unknown> | undefined][] = [];
    const monitorExecute = async (command: string, args?: Record<string, unknown>): Promise<unknown> => {
      sent.push([command, args]);
      return {};
    };
    await snapshotOnline({ monitorExecute }, disks, 'before-upgrade');
    expect(sent).toEqual([
      ['transaction', { actions: [{ type: 'blockdev-snapshot-internal-sync', data: { device: 'disk0', name: 'before-upgrade' } }] }],
    ]);
  });
});

describe('refuseMigrate', () => {
  it("refuses a running SEV guest with the seed's words, whatever the target", () => {
    for (const target of ['/srv/export', 'tcp:10.0.0.2:4444']) {
      expect(errorOf(() => refuseMigrate(spec(), true, target))).toMatchObject({
        code: 'SUP_ERR_MIGRATE_SEV',
        message: 'VMs with AMD SEV are not live migratable!',
      });
    }
  });

  it('refuses a running plain guest, and a URI for a stopped one (with the instructions)', () => {
    const { sev: _sev, ...noSev } = spec();
    expect(errorOf(() => refuseMigrate(noSev, true, '/srv'))).toMatchObject({ code: 'SUP_ERR_MIGRATE_RUNNING' });
    const uri = errorOf(() => refuseMigrate(spec(), false, 'ssh://other/'));
    expect(uri.code).toBe('SUP_ERR_MIGRATE_TARGET');
    expect(uri.message).toContain(
      "cannot migrate VM web to 'ssh://other/': sevsup moves a stopped guest offline: 'sevsup migrate web /ABSOLUTE/DIR'",
    );
    expect(() => refuseMigrate(spec(), false, '/srv/export')).not.toThrow();
  });
});

describe('exportGuest', () => {
  it('copies the disks and writes the config pointing at the copies', async () => {
    const src = join(dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'a.qcow2'), 'disk-a');
    await writeFile(join(src, 'b.raw'), 'disk-b');
    const guest = {
      ...spec(),
      disks: [
        // Raw, so any bytes will do (qcow2 chains are exported in integration/daemon/migrate-export).
        { index: 0, file: join(src, 'a.qcow2'), format: 'raw' as const, readonly: false },
        { index: 3, file: join(src, 'b.raw'), format: 'raw' as const, readonly: false },
      ],
    };
    const result = await exportGuest(guest, join(dir, 'out'));
    const dest = join(dir, 'out', 'web');
    expect(result).toMatchObject({
      vm: 'web',
      target: dest,
      config: join(dest, 'web.conf'),
      disks: [
        { from: join(src, 'a.qcow2'), to: join(dest, 'disk0-a.qcow2') },
        { from: join(src, 'b.raw'), to: join(dest, 'disk3-b.raw') },
      ],
    });
    expect(result.next).toHaveLength(4);
    expect((await readdir(dest)).sort()).toEqual(['disk0-a.qcow2', 'disk3-b.raw', 'web.conf']);
    expect(await readFile(join(dest, 'disk3-b.raw'), 'utf8')).toBe('disk-b');
    const moved = parseVmConfig(await readFile(join(dest, 'web.conf'), 'utf8'), join(dest, 'web.conf'));
    expect(moved.disks.map((d) => d.file)).toEqual([join(dest, 'disk0-a.qcow2'), join(dest, 'disk3-b.raw')]);
    expect(moved.sev).toEqual(guest.sev);

    expect(await asyncErrorOf(() => exportGuest(guest, join(dir, 'out')))).toMatchObject({
      code: 'SUP_ERR_MIGRATE_FAILED',
      message: `cannot move VM web to ${dest}: it already exists; choose another directory or remove it`,
    });
  });

  it('refuses a missing disk before it writes anything', async () => {
    const guest = { ...spec(), disks: [{ index: 0, file: join(dir, 'missing.qcow2'), format: 'qcow2' as const, readonly: false }] };
    expect(await asyncErrorOf(() => exportGuest(guest, join(dir, 'out2')))).toMatchObject({ code: 'SUP_ERR_DISK_READ' });
    expect(await readdir(dir)).not.toContain('out2');
  });

  it('never writes into a directory planted at the destination (symlink race in a shared target dir)', async () => {
    const src = join(dir, 'src3');
    await mkdir(src);
    await writeFile(join(src, 'a.qcow2'), 'disk-a');
    const guest = { ...spec(), disks: [{ index: 0, file: join(src, 'a.qcow2'), format: 'raw' as const, readonly: false }] };
    const shared = join(dir, 'shared');
    const elsewhere = join(dir, 'attacker');
    await mkdir(shared);
    await mkdir(elsewhere);
    // Another user plants <target>/web -> their own directory; the hook makes an existence check
    // miss it, as it would when the link appears just after the check.
    await symlink(elsewhere, join(shared, 'web'));
    race.hook = () => Promise.reject(Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT' }));
    const outcome = await exportGuest(guest, shared).then(
      () => 'exported',
      (error: unknown) => error,
    );
    race.hook = undefined;
    expect(await readdir(elsewhere)).toEqual([]);
    expect(outcome).toMatchObject({
      code: 'SUP_ERR_MIGRATE_FAILED',
      message: `cannot move VM web to ${join(shared, 'web')}: it already exists; choose another directory or remove it`,
    });
  });
});
