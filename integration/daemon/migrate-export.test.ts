// The offline move (exportGuest) against real files and the real qemu-img: the whole backing chain
// is exported and each copy names its copied base inside the target (qemu-img info); a symlink
// anywhere in the target path is refused; a target directory swapped for a symlink while the copy
// runs never redirects a write outside; a failure half-way leaves nothing behind; a chain that
// leaves the disk's directory is refused before anything is written (and before an offline
// snapshot lets qemu-img open it).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVmConfig } from '../../src/config/vm-config.js';
import type { VmSpec } from '../../src/config/vm-spec.js';
import { exportGuest, snapshotOffline } from '../../src/daemon/guest-ops.js';
import { isSupervisorError } from '../../src/errors.js';

const CAN_RUN = existsSync('/usr/bin/qemu-img');
let dir: string;
let images: string;
let outside: string;

function spec(name: string, disks: readonly string[]): VmSpec {
  return parseVmConfig(
    [`name: ${name}`, 'memory: 128', ...disks.map((d, i) => `disk${i}: ${d}`), ''].join('\n'),
    join(dir, `${name}.conf`),
  );
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  const error: unknown = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!isSupervisorError(error)) throw new Error('expected a SupervisorError');
  return error;
}

/** Every file below `root`, relative. */
async function tree(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true })).map(String).sort();
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-export-'));
  images = join(dir, 'images');
  outside = join(dir, 'outside');
  await mkdir(join(images, 'base'), { recursive: true });
  await mkdir(outside);
  await execa('qemu-img', ['create', '-q', '-f', 'raw', join(images, 'base', 'base.raw'), '4M']);
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base/base.raw', '-F', 'raw', join(images, 'mid.qcow2')]);
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', join(images, 'top.qcow2')]);
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', join(images, 'other.qcow2')]);
  await writeFile(join(outside, 'secret.raw'), Buffer.alloc(65536, 1));
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', join(outside, 'secret.raw'), '-F', 'raw', join(images, 'leaks.qcow2')]);
  await writeFile(join(images, 'big.raw'), Buffer.alloc(96 * 1024 * 1024, 7));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.runIf(CAN_RUN)('offline migrate: exportGuest with the real qemu-img', () => {
  it('exports each chain once (a shared base once) and points every copy at its copy inside the target', async () => {
    const s = spec('chain', [`file=${join(images, 'top.qcow2')}`, `file=${join(images, 'other.qcow2')}`]);
    const result = await exportGuest(s, join(dir, 'target1'));
    const dest = join(dir, 'target1', 'chain');
    expect(await tree(dest)).toEqual([
      'chain.conf',
      'disk0-backing1-mid.qcow2',
      'disk0-backing2-base.raw',
      'disk0-top.qcow2',
      'disk1-other.qcow2',
    ]);
    expect(result.disks.map((d) => d.to).sort()).toEqual((await tree(dest)).filter((f) => f !== 'chain.conf').map((f) => join(dest, f)));
    for (const top of ['disk0-top.qcow2', 'disk1-other.qcow2']) {
      const { stdout } = await execa('qemu-img', ['info', '--backing-chain', '--output=json', '-U', join(dest, top)]);
      const chain = JSON.parse(stdout) as {
        filename: string;
        'full-backing-filename'?: string;
        'backing-filename'?: string;
        'backing-filename-format'?: string;
      }[];
      expect(chain.map((c) => c.filename)).toEqual([
        join(dest, top),
        join(dest, 'disk0-backing1-mid.qcow2'),
        join(dest, 'disk0-backing2-base.raw'),
      ]);
      expect(chain[0]?.['backing-filename']).toBe('disk0-backing1-mid.qcow2'); // relative: the directory can move
      expect(chain[1]?.['backing-filename-format']).toBe('raw');
    }
    // The source is untouched.
    const { stdout } = await execa('qemu-img', ['info', '--output=json', '-U', join(images, 'top.qcow2')]);
    expect((JSON.parse(stdout) as { 'backing-filename': string })['backing-filename']).toBe('mid.qcow2');
    const moved = parseVmConfig(await readFile(join(dest, 'chain.conf'), 'utf8'), join(dest, 'chain.conf'));
    expect(moved.disks.map((d) => d.file)).toEqual([join(dest, 'disk0-top.qcow2'), join(dest, 'disk1-other.qcow2')]);
  });

  it("refuses a chain that leaves the disk's directory, before writing anything", async () => {
    const error = await failure(exportGuest(spec('leaks', [`file=${join(images, 'leaks.qcow2')}`]), join(dir, 'target2')));
    expect(error.code).toBe('SUP_ERR_DISK_CHAIN_REFUSED');
    expect(existsSync(join(dir, 'target2'))).toBe(false);
  });

  it('refuses an offline snapshot of a disk whose chain leaves its directory, before qemu-img opens it', async () => {
    const s = spec('snap', [`file=${join(images, 'leaks.qcow2')}`]);
    const error = await failure(snapshotOffline(s, s.disks, 'before'));
    expect(error.code).toBe('SUP_ERR_DISK_CHAIN_REFUSED');
    const { stdout } = await execa('qemu-img', ['snapshot', '-l', '-U', join(images, 'leaks.qcow2')]);
    expect(stdout).not.toContain('before');
  });

  it('refuses a target with a symlink in its path and writes nothing through it', async () => {
    await symlink(outside, join(dir, 'link'));
    const before = await tree(outside);
    for (const target of [join(dir, 'link'), join(dir, 'link', 'deeper')]) {
      const error = await failure(exportGuest(spec('sym', [`file=${join(images, 'top.qcow2')}`]), target));
      expect(error.code).toBe('SUP_ERR_MIGRATE_FAILED');
      expect(error.message).toContain(`${join(dir, 'link')} is a symlink`);
    }
    expect(await tree(outside)).toEqual(before);
  });

  it('never writes outside when the target directory is swapped for a symlink during the copy', async () => {
    const target = join(dir, 'target3');
    await mkdir(target);
    const before = await tree(outside);
    const s = spec('race', [`file=${join(images, 'big.raw')},format=raw`, `file=${join(images, 'top.qcow2')}`]);
    const exporting = exportGuest(s, target).then(
      (r) => r,
      (e: unknown) => e,
    );
    // Once the private temporary directory exists, swap the target for a symlink to `outside`.
    const inProgress = async (): Promise<boolean> => (await readdir(target)).some((n) => n.startsWith('.race.sevsup-export-'));
    for (let i = 0; i < 2000 && !(await inProgress()); i++) await delay(1);
    expect(await inProgress()).toBe(true); // the swap happens while the copy runs
    await rename(target, `${target}.moved`);
    await symlink(outside, target);
    const outcome = await exporting;
    expect(await tree(outside)).toEqual(before);
    // The copy finished where it began: in the directory that was moved away.
    expect(outcome).toMatchObject({ vm: 'race' });
    expect(await tree(join(`${target}.moved`, 'race'))).toContain('disk0-big.raw');
  });

  it('leaves nothing behind when qemu-img fails half-way', async () => {
    const error = await failure(exportGuest(spec('half', [`file=${join(images, 'top.qcow2')}`]), join(dir, 'target4'), '/bin/false'));
    expect(error.code).toBe('SUP_ERR_MIGRATE_FAILED');
    expect(await readdir(join(dir, 'target4'))).toEqual([]);
  });
});
