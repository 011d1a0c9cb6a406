import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { HASH_READ_BYTES, readFileChunks, sha256File, TailKeeper } from '../../../src/sev/hash-file.js';

const dir = mkdtempSync(join(tmpdir(), 'sevsup-hash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sha256File', () => {
  it('streams files larger than one read in big chunks and matches a one-shot hash', async () => {
    const data = randomBytes(3 * HASH_READ_BYTES + 12345);
    const path = join(dir, 'big');
    writeFileSync(path, data);
    expect(await sha256File(path)).toEqual({ sha256: createHash('sha256').update(data).digest('hex'), size: data.length });
    const sizes: number[] = [];
    await readFileChunks(path, (c) => sizes.push(c.length));
    expect(sizes.length).toBe(4);
    expect(Math.min(...sizes.slice(0, -1))).toBeGreaterThanOrEqual(64 * 1024);
  });

  it('hands out each chunk intact while the next one is read ahead, in file order', async () => {
    const data = randomBytes(5 * HASH_READ_BYTES + 777);
    const path = join(dir, 'ahead');
    writeFileSync(path, data);
    const copies: Buffer[] = [];
    const size = await readFileChunks(path, (c) => copies.push(Buffer.from(c)));
    expect(size).toBe(data.length);
    expect(Buffer.concat(copies).equals(data)).toBe(true);
  });

  it('stops at an error thrown by the consumer and reports that error (the read in flight is drained)', async () => {
    const path = join(dir, 'stop');
    writeFileSync(path, randomBytes(4 * HASH_READ_BYTES));
    let calls = 0;
    const error = await readFileChunks(path, () => {
      calls++;
      throw new Error('consumer says no');
    }).catch((e: unknown) => e);
    expect((error as Error).message).toBe('consumer says no');
    expect(calls).toBe(1);
  });

  it('hashes an empty file as empty input', async () => {
    const path = join(dir, 'empty');
    writeFileSync(path, '');
    expect(await sha256File(path)).toEqual({ sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', size: 0 });
  });

  it('maps missing files, directories and devices to the given code with a clear message', async () => {
    const cases: [string, RegExp][] = [
      [join(dir, 'nope'), /^cannot read kernel image .*nope: no such file$/],
      [dir, /^cannot read kernel image .*: not a regular file$/],
      ['/dev/null', /^cannot read kernel image \/dev\/null: not a regular file$/],
    ];
    for (const [path, message] of cases) {
      const error = await sha256File(path, { what: 'kernel image' }).catch((e: unknown) => e);
      expect(hasCode(error, 'SUP_ERR_KERNEL_READ')).toBe(true);
      expect((error as Error).message).toMatch(message);
    }
    const fw = await sha256File(join(dir, 'nope'), { code: 'SUP_ERR_FIRMWARE_READ' }).catch((e: unknown) => e);
    expect(hasCode(fw, 'SUP_ERR_FIRMWARE_READ')).toBe(true);
  });
});

describe('TailKeeper', () => {
  it('keeps exactly the last N bytes whatever the chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 20 }), fc.integer({ min: 1, max: 64 }), (chunks, limit) => {
        const keeper = new TailKeeper(limit);
        const reused = Buffer.alloc(64);
        for (const c of chunks) {
          // Callers reuse their read buffer: the keeper must copy.
          Buffer.from(c).copy(reused);
          keeper.push(reused.subarray(0, c.length));
          reused.fill(0xee);
        }
        const all = Buffer.concat(chunks.map((c) => Buffer.from(c)));
        expect(keeper.bytes.equals(all.subarray(Math.max(0, all.length - limit)))).toBe(true);
      }),
    );
  });
});
