// The directory lock with real processes: a holder in another process (a child node holding the
// lock through lockDirs), exclusive against exclusive and shared, shared beside shared, the error
// naming the lock file and the holder's pid, and the lock freed by the kernel when the holder is
// killed with SIGKILL.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIR_LOCK_FILE, lockDirs } from '../../../src/process/dir-lock.js';

const MODULE = fileURLToPath(new URL('../../../dist/process/dir-lock.js', import.meta.url));
let dir: string;
const children: ChildProcess[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dirlock-'));
});
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** A separate process that takes the lock and prints "locked" (or the error code), then waits. */
function holder(mode: 'exclusive' | 'shared'): Promise<ChildProcess> {
  const script = `import(${JSON.stringify(MODULE)}).then((m) => m.lockDirs([${JSON.stringify(dir)}], { mode: '${mode}', who: 'test' })).then(() => console.log('locked'), (e) => console.log(e.code)); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout?.once('data', (chunk: Buffer) =>
      chunk.toString().trim() === 'locked' ? resolve(child) : reject(new Error(chunk.toString())),
    );
  });
}

describe('lockDirs', () => {
  it('refuses while another process holds it exclusively, naming the file and the pid', async () => {
    const other = await holder('exclusive');
    const lockFile = join(dir, DIR_LOCK_FILE);
    expect((await readFile(lockFile, 'utf8')).trim()).toBe(String(other.pid));
    for (const mode of ['exclusive', 'shared'] as const) {
      const error = await lockDirs([dir], { mode, who: 'sevsup daemon' }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 'SUP_ERR_DIR_LOCKED', details: { lockFile, holders: [other.pid] } });
      expect((error as Error).message).toContain(`${lockFile} is locked by pid ${other.pid} (node)`);
    }
    // kill -9: the kernel closes the holder's descriptor, and the lock is free at once.
    other.kill('SIGKILL');
    await new Promise((resolve) => other.once('exit', resolve));
    const lock = await lockDirs([dir], { mode: 'exclusive', who: 'test' });
    expect(lock.paths).toEqual([lockFile]);
    lock.release();
  });

  it('lets shared holders share, and refuses an exclusive one beside them', async () => {
    const other = await holder('shared');
    const mine = await lockDirs([dir], { mode: 'shared', who: 'test' });
    await expect(lockDirs([dir], { mode: 'exclusive', who: 'sevsup daemon' })).rejects.toMatchObject({
      code: 'SUP_ERR_DIR_LOCKED',
      details: { holders: [other.pid] },
    });
    mine.release();
  });

  it('never follows a symlink planted as the lock file', async () => {
    await symlink('/etc/hostname', join(dir, DIR_LOCK_FILE));
    await expect(lockDirs([dir], { mode: 'exclusive', who: 'test' })).rejects.toMatchObject({ code: 'SUP_ERR_RUN_DIR' });
  });
});
