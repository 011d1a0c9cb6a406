// `sevsup measure --mode snp` and `--mode snp:ovmf-hash` through the CLI: sev-snp-measure's option
// names, the output formats, and refusals with exit codes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hashKernelInputs } from '../../../../src/sev/kernel-hashes.js';
import { snpFirmwareDigest, snpLaunchDigest } from '../../../../src/sev/snp-launch-digest.js';
import { buildSnpImage } from '../../../support/ovmf-images.js';
import { runCliCaptured } from '../../../support/run-cli.js';

const dir = mkdtempSync(path.join(tmpdir(), 'measure-snp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SECTIONS = [
  [0x800000, 0x2000, 1],
  [0x802000, 0x1000, 2],
  [0x803000, 0x1000, 3],
  [0x804000, 0x1000, 0x10],
] as const;
const image = buildSnpImage({ sections: SECTIONS, hashes: [0x804c00, 0x400], size: 0x20000 });
const fw = path.join(dir, 'fw.fd');
writeFileSync(fw, image);
const kernel = path.join(dir, 'vmlinuz');
writeFileSync(kernel, Buffer.from('not really a kernel'));
const sections = SECTIONS.map(([gpa, size, type]) => ({ gpa, size, type, name: null }));

describe('sevsup measure --mode snp', () => {
  it("prints the digest in hex, base64 and JSON, with sev-snp-measure's options", async () => {
    const { table } = await hashKernelInputs({ kernel, cmdline: 'console=ttyS0' });
    const expected = snpLaunchDigest({
      firmware: image,
      sections,
      kernelHashesTable: table,
      kernelHashesBase: 0x804c00,
      resetAddress: 0x80b004,
      vcpus: 4,
      vcpuSignature: 0xa00f11,
      guestFeatures: 1n,
    });
    const args = [
      'measure',
      '--mode',
      'snp',
      '--ovmf',
      fw,
      '--kernel',
      kernel,
      '--append',
      'console=ttyS0',
      '--vcpus',
      '4',
      '--vcpu-type',
      'EPYC-Milan',
    ];
    expect(await runCliCaptured(...args)).toEqual({ code: 0, out: `${expected.toString('hex')}\n`, err: '' });
    expect((await runCliCaptured(...args, '--output-format', 'base64')).out).toBe(`${expected.toString('base64')}\n`);
    const json = JSON.parse((await runCliCaptured(...args, '--json')).out) as Record<string, unknown>;
    expect(json).toMatchObject({
      mode: 'snp',
      launchDigest: expected.toString('hex'),
      guestFeatures: '0x1',
      vmmType: 'QEMU',
      vcpuSignature: '0xa00f11',
      vcpus: 4,
      firmwareDigest: snpFirmwareDigest(image).toString('hex'),
    });
  });

  it('--mode snp:ovmf-hash prints the firmware part; --snp-ovmf-hash seeds the chain with it', async () => {
    const part = await runCliCaptured('measure', '--mode', 'snp:ovmf-hash', '--ovmf', fw);
    expect(part).toEqual({ code: 0, out: `${snpFirmwareDigest(image).toString('hex')}\n`, err: '' });
    const whole = await runCliCaptured(
      'measure',
      '--mode',
      'snp',
      '--ovmf',
      fw,
      '--vcpus',
      '2',
      '--vcpu-sig',
      '0xa00f11',
      '--guest-features',
      '0x21',
    );
    const seeded = await runCliCaptured(
      'measure',
      '--mode',
      'snp',
      '--ovmf',
      fw,
      '--vcpus',
      '2',
      '--vcpu-sig',
      '0xa00f11',
      '--guest-features',
      '0x21',
      '--snp-ovmf-hash',
      part.out.trim(),
    );
    expect(seeded.out).toBe(whole.out);
    expect(whole.code).toBe(0);
  });

  it.each([
    [['--vmm-type', 'qemu'], 2, /argument 'qemu' is invalid/],
    [['--guest-features', '0'], 2, /guest features must set bit 0 \(SNPActive\)/],
    [['--snp-ovmf-hash', 'abcd'], 2, /--snp-ovmf-hash takes the 96 hex digits/],
  ])('refuses %j', async (extra, code, message) => {
    const r = await runCliCaptured('measure', '--mode', 'snp', '--ovmf', fw, '--vcpus', '1', '--vcpu-type', 'EPYC', ...extra);
    expect(r.code).toBe(code);
    expect(r.err).toMatch(message);
  });

  it('refuses a kernel with a firmware QEMU would not measure it with, giving every reason', async () => {
    const plain = path.join(dir, 'plain.fd');
    writeFileSync(plain, buildSnpImage({ sections: [[0x800000, 0x1000, 1]], size: 0x18000 }));
    const r = await runCliCaptured('measure', '--mode', 'snp', '--ovmf', plain, '--kernel', kernel, '--vcpus', '1', '--vcpu-type', 'EPYC');
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      'sevsup: cannot compute the SNP launch digest: the firmware is 98304 bytes, not a non-zero multiple of 64 KiB: QEMU refuses it as -bios ("could not load PC BIOS"); ' +
        'a kernel is given, but the firmware has no KERNEL_HASHES section: QEMU would launch without measuring the kernel; ' +
        'the firmware declares no kernel-hashes area (base 0): QEMU refuses -kernel with kernel-hashes ("hashes table area is invalid") [SUP_ERR_VERIFY_UNSUPPORTED]\n',
    );
  });
});
