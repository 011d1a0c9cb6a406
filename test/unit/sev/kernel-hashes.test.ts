import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { buildKernelHashesTable, cmdlineDigest, EMPTY_SHA256, hashKernelInputs } from '../../../src/sev/kernel-hashes.js';
import { errorOf } from '../../support/sev-helpers.js';
import { guidLe } from '../../support/ovmf-images.js';

const sha = (data: Buffer | string): Buffer => createHash('sha256').update(data).digest();
const dir = mkdtempSync(join(tmpdir(), 'sevsup-kh-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** QEMU's PaddedSevHashTable, laid out here independently of the module under test. */
function expectedTable(cmdline: Buffer, initrd: Buffer, kernel: Buffer): Buffer {
  const entry = (guid: string, digest: Buffer): Buffer => Buffer.concat([guidLe(guid), Buffer.from([50, 0]), digest]);
  return Buffer.concat([
    guidLe('9438d606-4f22-4cc9-b479-a793d411fd21'),
    Buffer.from([168, 0]),
    entry('97d02dd8-bd20-4c94-aa78-e7714d36ab2a', cmdline),
    entry('44baf731-3a2f-4bd7-9af1-41e29169781d', initrd),
    entry('4de79437-abd2-427f-b835-d5b172d2045b', kernel),
    Buffer.alloc(8),
  ]);
}

describe('kernel-hashes table', () => {
  it('lays out header, cmdline/initrd/kernel entries and 8 zero bytes: 176 bytes', () => {
    const h = { cmdline: sha('a\0'), initrd: sha('b'), kernel: sha('c') };
    const table = buildKernelHashesTable(h);
    expect(table.length).toBe(176);
    expect(table.equals(expectedTable(h.cmdline, h.initrd, h.kernel))).toBe(true);
  });

  it("equals the bytes libvirt's validator builds (vector from virt-qemu-sev-validate KernelTable)", () => {
    const table = buildKernelHashesTable({
      cmdline: cmdlineDigest('console=ttyS0 root="/dev/vda1",ro \u00e9\u6f22'),
      initrd: sha('initrd-bytes'),
      kernel: sha('kernel-bytes'),
    });
    expect(table.toString('hex')).toBe(
      '06d63894224fc94cb479a793d411fd21a800d82dd09720bd944caa78e7714d36ab2a32000ce51d039725f66d94e8899381bab2363db756e8b082022c11f17237e19fb09a31f7ba442f3ad74b9af141e29169781d3200ca17bed8bc4079637fa3d2a691a5174d7a4f6b9787b196222b7b18062755c99a3794e74dd2ab7f42b835d5b172d2045b32004e72696f3eefb3b2375c36063864c2635cf3b8c85a83296a9cc30b0534c16f4d0000000000000000',
    );
  });

  it('measures cmdline + NUL, a lone NUL without -append, and empty input without initrd', () => {
    expect(cmdlineDigest(undefined).equals(sha(Buffer.of(0)))).toBe(true);
    expect(cmdlineDigest('').equals(sha(Buffer.of(0)))).toBe(true);
    expect(cmdlineDigest('é,"x"').equals(sha(Buffer.concat([Buffer.from('é,"x"', 'utf8'), Buffer.of(0)])))).toBe(true);
    expect(EMPTY_SHA256.toString('hex')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(
      hasCode(
        errorOf(() => cmdlineDigest('a\0b')),
        'SUP_ERR_CONFIG_BAD_VALUE',
      ),
    ).toBe(true);
  });

  it('refuses digests that are not 32 bytes', () => {
    expect(() => buildKernelHashesTable({ cmdline: Buffer.alloc(31), initrd: sha(''), kernel: sha('') })).toThrow(/32-byte/);
  });

  it('hashes kernel and initrd files and builds the table from them', async () => {
    const kernel = join(dir, 'vmlinuz');
    const initrd = join(dir, 'initrd');
    writeFileSync(kernel, Buffer.alloc(2 * 1024 * 1024 + 3, 7));
    writeFileSync(initrd, 'initrd');
    const got = await hashKernelInputs({ kernel, initrd, cmdline: 'quiet' });
    expect(got.kernel).toEqual({ path: kernel, sha256: sha(Buffer.alloc(2 * 1024 * 1024 + 3, 7)).toString('hex') });
    expect(got.initrd).toEqual({ path: initrd, sha256: sha('initrd').toString('hex') });
    expect(got.cmdline).toBe('quiet');
    expect(got.cmdlineSha256).toBe(sha('quiet\0').toString('hex'));
    expect(got.table.equals(expectedTable(sha('quiet\0'), sha('initrd'), sha(Buffer.alloc(2 * 1024 * 1024 + 3, 7))))).toBe(true);

    const bare = await hashKernelInputs({ kernel });
    expect(bare.initrd).toBeNull();
    expect(bare.cmdline).toBe('');
    expect(bare.table.subarray(18 + 50 + 18, 18 + 50 + 50).equals(EMPTY_SHA256)).toBe(true);

    const missing = await hashKernelInputs({ kernel, initrd: join(dir, 'none') }).catch((e: unknown) => e);
    expect(hasCode(missing, 'SUP_ERR_KERNEL_READ')).toBe(true);
    expect((missing as Error).message).toMatch(/^cannot read initrd image .*none: no such file$/);
  });
});
