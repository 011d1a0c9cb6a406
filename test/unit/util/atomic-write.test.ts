import { mkdtemp, readdir, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../../src/util/atomic-write.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-aw-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('creates the file with the exact mode whatever the umask', async () => {
    const path = join(dir, 'a.json');
    const old = process.umask(0o077);
    try {
      await writeFileAtomic(path, 'one', { mode: 0o644 });
    } finally {
      process.umask(old);
    }
    expect(await readFile(path, 'utf8')).toBe('one');
    expect((await stat(path)).mode & 0o777).toBe(0o644);
  });

  it('refuses to replace unless asked, and leaves no temp file either way', async () => {
    const path = join(dir, 'b.json');
    await writeFileAtomic(path, 'first');
    await expect(writeFileAtomic(path, 'second')).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(path, 'utf8')).toBe('first');
    await writeFileAtomic(path, 'third', { overwrite: true });
    expect(await readFile(path, 'utf8')).toBe('third');
    expect((await readdir(dir)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('cleans up its temp file when the final step fails', async () => {
    const sub = join(dir, 'sub');
    await mkdir(join(sub, 'target-is-a-dir'), { recursive: true });
    await expect(writeFileAtomic(join(sub, 'target-is-a-dir'), 'x', { overwrite: true })).rejects.toMatchObject({ code: 'EISDIR' });
    expect(await readdir(sub)).toEqual(['target-is-a-dir']);
  });

  it('fails without a directory', async () => {
    const file = join(dir, 'plain');
    await writeFile(file, '');
    await expect(writeFileAtomic(join(file, 'x.json'), 'x')).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});
