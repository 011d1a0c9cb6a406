// scripts/make-test-firmware.mjs as a process: what it rewrites, what it refuses, and that a
// patched Debian OVMF still boots under plain QEMU TCG into OVMF and a -kernel bzImage.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { parseOvmfTable, SEV_HASH_TABLE_RV_GUID, SEV_SECRET_GUID } from '../../src/sev/ovmf-table.js';
import { parseSnpMetadata, snpSectionLabel } from '../../src/sev/snp-metadata.js';
import { buildImage, SEV_INFO, u32s } from '../../test/support/ovmf-images.js';
import { DEBIAN_OVMF } from '../../test/support/validator.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = join(ROOT, 'scripts/make-test-firmware.mjs');
const BUILT = existsSync(join(ROOT, 'dist/sev/ovmf-table.js')) && existsSync(join(ROOT, 'dist/util/atomic-write.js'));
const QEMU = '/usr/bin/qemu-system-x86_64';
const KERNEL = join(ROOT, '.cache/test-assets/vmlinuz');

const dir = mkdtempSync(join(tmpdir(), 'sevsup-mkfw-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (...args: string[]) => execa(process.execPath, [SCRIPT, ...args], { reject: false });

/** Offsets of the two rewritten entries' data in `image`. */
function areaOffsets(image: Buffer): number[] {
  const t = parseOvmfTable(image);
  return [SEV_HASH_TABLE_RV_GUID, SEV_SECRET_GUID].map((g) => t.entries.find((e) => e.guid === g)?.offset ?? -1);
}

describe.runIf(BUILT && existsSync(DEBIAN_OVMF))('make-test-firmware.mjs', () => {
  it("rewrites only the two areas' eight data bytes each, with the documented defaults", async () => {
    const dst = join(dir, 'default.fd');
    const r = await run(DEBIAN_OVMF, dst);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const src = readFileSync(DEBIAN_OVMF);
    const out = readFileSync(dst);
    expect(out.length).toBe(src.length);
    const t = parseOvmfTable(out);
    expect(t.hashesArea).toEqual({ base: 0x80fc00, size: 0x400 });
    expect(t.secretArea).toEqual({ base: 0x80f000, size: 0xc00 });
    const masked = [Buffer.from(src), Buffer.from(out)];
    for (const offset of areaOffsets(src)) for (const b of masked) b.fill(0, offset, offset + 8);
    expect(masked[0]?.equals(masked[1] ?? Buffer.alloc(0))).toBe(true);
  });

  it('takes --hashes and --secret, replaces an existing file and leaves no temp file', async () => {
    const dst = join(dir, 'custom.fd');
    writeFileSync(dst, 'old');
    const r = await run(DEBIAN_OVMF, dst, '--secret', '0x80F000:0xC00', '--hashes', '8453120:1024');
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const t = parseOvmfTable(readFileSync(dst));
    expect(t.hashesArea).toEqual({ base: 0x80fc00, size: 0x400 });
    expect(t.secretArea).toEqual({ base: 0x80f000, size: 0xc00 });
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses images without both entries, and bad usage', async () => {
    const src = join(dir, 'no-areas.fd');
    writeFileSync(src, buildImage([{ guid: SEV_INFO, data: u32s(0x80b004) }]));
    const dst = join(dir, 'never.fd');
    const r = await run(src, dst);
    expect(r.exitCode).toBe(1);
    expect(String(r.stderr)).toMatch(/has no hashes area entry \(7255371f-3a3b-4b04-927b-1da6efa8d454\) to rewrite/);
    expect(existsSync(dst)).toBe(false);
    const plain = join(dir, 'plain.bin');
    writeFileSync(plain, Buffer.alloc(8192));
    // Side by side: none of them may write anything.
    const [footer, noDst, badArea, bogus] = await Promise.all([
      run(plain, dst),
      run(DEBIAN_OVMF),
      run(DEBIAN_OVMF, dst, '--hashes', '0x80A000'),
      run(DEBIAN_OVMF, dst, '--bogus'),
    ]);
    expect(footer.stderr).toMatch(/has no OVMF footer table/);
    expect(noDst.exitCode).toBe(2);
    expect(badArea.exitCode).toBe(2);
    expect(bogus.exitCode).toBe(2);
    expect(existsSync(dst)).toBe(false);
  });

  it('--snp writes SNP metadata (a preset with every section type, or a list, any version)', async () => {
    const dst = join(dir, 'snp.fd');
    const r = await run(DEBIAN_OVMF, dst, '--snp', 'all', '--snp-version', '1');
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stdout)).toMatch(/SNP metadata v1 with 8 sections/);
    const out = readFileSync(dst);
    const md = parseSnpMetadata(out, parseOvmfTable(out));
    expect(md.status === 'found' && md.sections.map((s) => snpSectionLabel(s.type))).toEqual([
      'SEC_MEM',
      'SEC_MEM',
      'SECRETS',
      'CPUID',
      'KERNEL_HASHES',
      'SVSM_CAA',
      'type 0x20',
      'SEC_MEM',
    ]);
    const custom = join(dir, 'snp-custom.fd');
    expect((await run(DEBIAN_OVMF, custom, '--snp', 'SEC_MEM:0x800000:0x1000,16:0x801000:0x1000', '--snp-version', '2')).exitCode).toBe(0);
    const c = readFileSync(custom);
    expect(parseSnpMetadata(c, parseOvmfTable(c))).toMatchObject({
      status: 'found',
      version: 2,
      sections: [{ name: 'SEC_MEM' }, { name: 'KERNEL_HASHES' }],
    });
    expect((await run(DEBIAN_OVMF, custom, '--snp', 'BOGUS:1:2')).exitCode).toBe(2);
  });

  // The two boots run side by side (each its own image and serial log).
  it.runIf(existsSync(QEMU) && existsSync(KERNEL)).concurrent.each([[[]], [['--snp', 'all']]])(
    'a patched image (%j) boots OVMF and a -kernel bzImage under plain QEMU TCG',
    async (extra: string[]) => {
      const fw = join(dir, `boot${extra.length}.fd`);
      expect((await run(DEBIAN_OVMF, fw, ...extra)).exitCode).toBe(0);
      const serial = join(dir, `serial${extra.length}.log`);
      const q = await execa(
        QEMU,
        [
          '-accel',
          'tcg',
          '-machine',
          'q35',
          '-m',
          '256',
          '-nodefaults',
          '-display',
          'none',
          '-no-reboot',
          '-drive',
          `if=pflash,format=raw,unit=0,readonly=on,file=${fw}`,
          '-kernel',
          KERNEL,
          '-append',
          'console=ttyS0 panic=-1',
          '-serial',
          `file:${serial}`,
        ],
        { reject: false, timeout: 110_000 },
      );
      expect(q.exitCode, String(q.stderr)).toBe(0);
      const log = readFileSync(serial, 'utf8');
      expect(log).toMatch(/Linux version/);
      expect(log).toMatch(/Kernel panic - not syncing: VFS: Unable to mount root fs/);
    },
  );
});
