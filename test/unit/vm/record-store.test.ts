// The record store on real directories, including faults that bind root (tests run as root, so
// mode bits prove nothing): a parent that is a file, an immutable directory (chattr +i), a full
// and a read-only tmpfs. The last three need privileges; they skip visibly where missing.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCode, type SupervisorError } from '../../../src/errors.js';
import { buildRecord, type MeasurementRecord } from '../../../src/vm/record.js';
import { listRecords, readRecordFile, recordsDir, writeRecord } from '../../../src/vm/record-store.js';
import { readLatestRecord } from '../../support/records.js';

const M = Buffer.alloc(48, 1);

function record(at: string, vm = 'demo'): MeasurementRecord {
  return buildRecord({
    vm,
    capturedAt: new Date(at),
    platform: 'simulated',
    sevType: 'sev',
    reported: { policy: 8, apiMajor: 1, apiMinor: 55, buildId: 21, state: 'launch-secret' },
    expectedPolicy: 8,
    expectedLaunchDigest: 'ab'.repeat(32),
    measurement: M.toString('base64'),
    mnonce: M.subarray(32),
    launch: {
      firmware: null,
      kernel: null,
      initrd: null,
      cmdline: null,
      kernelHashes: false,
      vcpus: 1,
      cpuModel: 'EPYC',
      qemuVersion: '7.2.22',
    },
  });
}

async function rejection(p: Promise<unknown>): Promise<SupervisorError> {
  try {
    await p;
  } catch (error) {
    if (hasCode(error, 'SUP_ERR_RECORD_WRITE', 'SUP_ERR_INTERNAL')) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sevsup-store-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('writeRecord', () => {
  it('writes the dated file and latest.json, 0644 in a 0755 dir, and reads them back', async () => {
    const stateDir = join(root, 'ok');
    const old = process.umask(0o077);
    let path: string;
    try {
      path = await writeRecord(stateDir, record('2026-11-26T10:25:20.123Z'));
    } finally {
      process.umask(old);
    }
    expect(path).toBe(join(stateDir, 'demo', 'measurements', '2026-11-26T10-25-20.123Z.json'));
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect((await stat(join(stateDir, 'demo', 'measurements', 'latest.json'))).mode & 0o777).toBe(0o644);
    expect((await stat(recordsDir(stateDir, 'demo'))).mode & 0o777).toBe(0o755);
    expect(await readFile(path, 'utf8')).toBe(`${JSON.stringify(record('2026-11-26T10:25:20.123Z'), null, 2)}\n`);
    expect(await readLatestRecord(stateDir, 'demo')).toEqual(record('2026-11-26T10:25:20.123Z'));
    expect(await readdir(recordsDir(stateDir, 'demo'))).toEqual(['2026-11-26T10-25-20.123Z.json', 'latest.json']);
  });

  it('keeps every launch and points latest.json at the newest', async () => {
    const stateDir = join(root, 'many');
    await writeRecord(stateDir, record('2026-11-26T10:00:00.000Z'));
    await writeRecord(stateDir, record('2026-11-26T11:00:00.000Z'));
    expect(await listRecords(stateDir, 'demo')).toEqual([
      join(recordsDir(stateDir, 'demo'), '2026-11-26T10-00-00.000Z.json'),
      join(recordsDir(stateDir, 'demo'), '2026-11-26T11-00-00.000Z.json'),
    ]);
    expect((await readLatestRecord(stateDir, 'demo'))?.capturedAt).toBe('2026-11-26T11:00:00.000Z');
  });

  it('never rewrites a record', async () => {
    const stateDir = join(root, 'twice');
    const first = record('2026-11-26T10:00:00.000Z');
    const path = await writeRecord(stateDir, first);
    const clash = { ...first, measurement: Buffer.alloc(48, 2).toString('base64') };
    const error = await rejection(writeRecord(stateDir, clash));
    expect(error.code).toBe('SUP_ERR_RECORD_WRITE');
    expect(error.message).toBe(
      `cannot write the measurement record of VM demo at ${path}: a record with that timestamp already exists (records are never rewritten)`,
    );
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(first);
    expect(await readdir(recordsDir(stateDir, 'demo'))).toEqual(['2026-11-26T10-00-00.000Z.json', 'latest.json']);
  });

  it('fails with ENOTDIR when a parent is a file, and leaves nothing', async () => {
    const file = join(root, 'a-file');
    await writeFile(file, 'x');
    const error = await rejection(writeRecord(join(file, 'state'), record('2026-11-26T10:00:00.000Z')));
    expect(error.message).toBe(
      `cannot create the measurement directory ${join(file, 'state', 'demo', 'measurements')} of VM demo: a component of the path is not a directory (ENOTDIR)`,
    );
    expect(error.details).toMatchObject({ vm: 'demo', errno: 'ENOTDIR' });
  });

  it('removes the dated file again when latest.json cannot be written', async () => {
    const stateDir = join(root, 'latest-blocked');
    await mkdir(join(recordsDir(stateDir, 'demo'), 'latest.json'), { recursive: true });
    const error = await rejection(writeRecord(stateDir, record('2026-11-26T10:00:00.000Z')));
    const dated = join(recordsDir(stateDir, 'demo'), '2026-11-26T10-00-00.000Z.json');
    expect(error.message).toBe(
      `cannot update ${join(recordsDir(stateDir, 'demo'), 'latest.json')} for VM demo: illegal operation on a directory (EISDIR); the new record ${dated} was removed again`,
    );
    expect(await readdir(recordsDir(stateDir, 'demo'))).toEqual(['latest.json']);
  });

  it('refuses a VM name that is not a plain directory name', async () => {
    const error = await rejection(writeRecord(join(root, 'bad-name'), record('2026-11-26T10:00:00.000Z', '../escape')));
    expect(error.message).toBe('cannot write the measurement record of VM "../escape": the name is not usable as a directory name');
  });
});

describe('reading', () => {
  it('returns null for a VM without records and throws for a corrupt one', async () => {
    const stateDir = join(root, 'read');
    expect(await readLatestRecord(stateDir, 'none')).toBeNull();
    expect(await listRecords(stateDir, 'none')).toEqual([]);
    await mkdir(recordsDir(stateDir, 'bad'), { recursive: true });
    const latest = join(recordsDir(stateDir, 'bad'), 'latest.json');
    await writeFile(latest, '{"schema":"sevsup.measurement/v1"}');
    const error = await rejection(readRecordFile(latest));
    expect(error.code).toBe('SUP_ERR_INTERNAL');
    expect(error.message).toBe(`cannot read measurement record ${latest}: not a sevsup.measurement/v1 or sevsup.snp-launch/v1 record`);
    await writeFile(latest, '{');
    expect((await rejection(readLatestRecord(stateDir, 'bad'))).message).toBe(`cannot read measurement record ${latest}: not JSON`);
  });
});

function works(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('faults that bind root', () => {
  let mnt = '';
  let canMount = false;
  let canChattr = false;
  beforeAll(async () => {
    mnt = await mkdtemp(join(tmpdir(), 'sevsup-tmpfs-'));
    canMount = works('mount', ['-t', 'tmpfs', '-o', 'size=64k,nr_inodes=64', 'tmpfs', mnt]);
    const probe = join(root, 'chattr-probe');
    await writeFile(probe, '');
    canChattr = works('chattr', ['+i', probe]) && works('chattr', ['-i', probe]);
  });
  afterAll(async () => {
    if (canMount) works('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
  });

  it('an immutable directory (chattr +i) refuses the write and keeps no temp file', async (ctx) => {
    if (!canChattr) ctx.skip();
    const stateDir = join(root, 'immutable');
    const dir = recordsDir(stateDir, 'demo');
    await mkdir(dir, { recursive: true });
    execFileSync('chattr', ['+i', dir]);
    try {
      const error = await rejection(writeRecord(stateDir, record('2026-11-26T10:00:00.000Z')));
      expect(error.message).toBe(
        `cannot write the measurement record of VM demo at ${join(dir, '2026-11-26T10-00-00.000Z.json')}: operation not permitted (EPERM)`,
      );
      expect(await readdir(dir)).toEqual([]);
    } finally {
      execFileSync('chattr', ['-i', dir]);
    }
  });

  it('a full file system fails mid-write with ENOSPC and leaves no partial or temp file', async (ctx) => {
    if (!canMount) ctx.skip();
    const stateDir = join(mnt, 'state');
    const dir = recordsDir(stateDir, 'demo');
    await mkdir(dir, { recursive: true });
    // Fill every block; the record's temp file can still be created (inodes are left) but not written.
    const filler = await open(join(mnt, 'filler'), 'w');
    try {
      for (;;) await filler.write(Buffer.alloc(4096, 1));
    } catch (error) {
      expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      await filler.close();
    }
    const error = await rejection(writeRecord(stateDir, record('2026-11-26T10:00:00.000Z')));
    expect(error.message).toBe(
      `cannot write the measurement record of VM demo at ${join(dir, '2026-11-26T10-00-00.000Z.json')}: no space left on the device (ENOSPC)`,
    );
    expect(await readdir(dir)).toEqual([]);
    await rm(join(mnt, 'filler'));
  });

  it('a read-only file system refuses with EROFS', async (ctx) => {
    if (!canMount) ctx.skip();
    const stateDir = join(mnt, 'ro-state');
    await mkdir(recordsDir(stateDir, 'demo'), { recursive: true });
    execFileSync('mount', ['-o', 'remount,ro', mnt]);
    try {
      const error = await rejection(writeRecord(stateDir, record('2026-11-26T10:00:00.000Z')));
      expect(error.details).toMatchObject({ errno: 'EROFS' });
      expect(error.message).toMatch(/: the file system is read-only \(EROFS\)$/);
      expect(await readdir(recordsDir(stateDir, 'demo'))).toEqual([]);
    } finally {
      execFileSync('mount', ['-o', 'remount,rw', mnt]);
    }
  });
});
