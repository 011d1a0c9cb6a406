import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { snpFirmwareDigest } from '../../../../src/sev/snp-launch-digest.js';
import { buildImage, buildSnpImage, debianLikeEntries } from '../../../support/ovmf-images.js';
import { runCliCaptured } from '../../../support/run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'sevsup-inspect-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cli = runCliCaptured;

describe('sevsup inspect-firmware', () => {
  it('prints the same facts as JSON with --json', async () => {
    const path = join(dir, 'patched.fd');
    writeFileSync(path, buildImage(debianLikeEntries({ hashes: [0x80a000, 0x400], secret: [0x80b000, 0x1000] })));
    const { code, out } = await cli('inspect-firmware', path, '--json');
    expect(code).toBe(0);
    const report = JSON.parse(out) as Record<string, unknown>;
    expect(report).toMatchObject({
      path,
      size: 64 * 1024,
      table: {
        found: true,
        hashesArea: { base: 0x80a000, size: 0x400 },
        secretArea: { base: 0x80b000, size: 0x1000 },
        sevResetAddress: 0x80b004,
      },
      verdicts: {
        kernelHashes: { usable: true, message: 'usable for kernel-hashes' },
        secret: { usable: true },
        sevEs: { usable: true },
      },
    });
  });

  it('says plainly when there is no footer table', async () => {
    const path = join(dir, 'plain.bin');
    writeFileSync(path, Buffer.alloc(8192));
    const { code, out } = await cli('inspect-firmware', path);
    expect(code).toBe(0);
    expect(out).toContain('footer table: not found');
    expect(out).toContain('SEV: kernel specified but guest firmware has no hashes table GUID');
  });

  it('fails with a clear message and exit 3 for unreadable files and invalid tables', async () => {
    const missing = await cli('inspect-firmware', join(dir, 'missing.fd'));
    expect(missing.code).toBe(3);
    expect(missing.err).toBe(`sevsup: cannot read firmware image ${join(dir, 'missing.fd')}: no such file [SUP_ERR_FIRMWARE_READ]\n`);
    const bad = join(dir, 'bad.fd');
    writeFileSync(bad, buildImage([], { totalLen: 1 }));
    const invalid = await cli('inspect-firmware', bad);
    expect(invalid.code).toBe(3);
    expect(invalid.err).toBe('sevsup: OVMF table has invalid size -17 [SUP_ERR_FIRMWARE_TABLE_INVALID]\n');
  });

  it('shows the SNP sections, the firmware digest part and the SNP verdicts (text and --json)', async () => {
    const path = join(dir, 'snp.fd');
    const image = buildSnpImage({
      sections: [
        [0x800000, 0x2000, 1],
        [0x802000, 0x1000, 2],
        [0x803000, 0x1000, 3],
        [0x804000, 0x1000, 0x10],
        [0x805000, 0x1000, 4],
      ],
      hashes: [0x804c00, 0x400],
    });
    writeFileSync(path, image);
    const text = await cli('inspect-firmware', path);
    expect(text.code).toBe(0);
    expect(text.out).toContain('  version 1, 5 sections (in measuring order):\n    SEC_MEM        gpa=0x800000 size=0x2000\n');
    expect(text.out).toContain('    KERNEL_HASHES  gpa=0x804000 size=0x1000\n    SVSM_CAA       gpa=0x805000 size=0x1000\n');
    expect(text.out).toContain(`SNP firmware digest:  ${snpFirmwareDigest(image).toString('hex')} (measure --snp-ovmf-hash)`);
    expect(text.out).toContain('SEV-SNP, no kernel:   usable\nSEV-SNP, kernel-hashes=1 with a kernel: usable\n');
    const json = JSON.parse((await cli('inspect-firmware', path, '--json')).out) as { snp: Record<string, unknown> };
    expect(json.snp).toMatchObject({
      metadata: { status: 'found', version: 1 },
      firmwareDigest: snpFirmwareDigest(image).toString('hex'),
      problems: { withoutKernel: [], withKernelHashes: [] },
    });
  });
});
