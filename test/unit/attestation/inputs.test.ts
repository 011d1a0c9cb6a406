import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync as readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  computeExpectedDigest,
  loadRecord,
  loadTransportKeys,
  MAX_SECRET_FILE_BYTES,
  readSecretFile,
  type ExpectedDigestInputs,
} from '../../../src/attestation/inputs.js';
import { hasCode, type ErrorCode } from '../../../src/errors.js';
import { buildVmsas } from '../../../src/sev/vmsa.js';
import { buildRecord } from '../../../src/vm/record.js';
import { buildImage, debianLikeEntries, guidLe, SEV_INFO, u32s } from '../../support/ovmf-images.js';

const dir = mkdtempSync(join(tmpdir(), 'sevsup-owner-inputs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, data: Buffer | string): string => {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
};
const sha = (...parts: (Buffer | string)[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (error) {
    return error;
  }
  return undefined;
}
async function expectCode(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  const e = await rejection(p);
  expect(hasCode(e, code), `expected ${code}, got ${String(e)}`).toBe(true);
  if (message) expect(e instanceof Error ? e.message : '').toMatch(message);
}

/** QEMU's padded kernel-hashes table, built here from the layout in qemu-sev-facts §4. */
function table(cmdline: Buffer, initrd: Buffer, kernel: Buffer): Buffer {
  const entry = (guid: string, digest: Buffer): Buffer => Buffer.concat([guidLe(guid), Buffer.from([50, 0]), digest]);
  const body = Buffer.concat([
    entry('97d02dd8-bd20-4c94-aa78-e7714d36ab2a', cmdline),
    entry('44baf731-3a2f-4bd7-9af1-41e29169781d', initrd),
    entry('4de79437-abd2-427f-b835-d5b172d2045b', kernel),
  ]);
  return Buffer.concat([guidLe('9438d606-4f22-4cc9-b479-a793d411fd21'), Buffer.from([168, 0]), body, Buffer.alloc(8)]);
}

const usable = buildImage(debianLikeEntries({ hashes: [0x80fc00, 0x400], secret: [0x80f000, 0xc00] }), { size: 256 * 1024 });
const debian = buildImage(debianLikeEntries(), { size: 256 * 1024 });
const paths = {
  usable: file('usable.fd', usable),
  debian: file('debian.fd', debian),
  bare: file('bare.fd', randomBytes(128 * 1024)),
  zeroReset: file('zero-reset.fd', buildImage([{ guid: SEV_INFO, data: u32s(0) }])),
  badTable: file('bad-table.fd', buildImage(debianLikeEntries(), { totalLen: 0xfff0 })),
  kernel: file('vmlinuz', randomBytes(300 * 1024)),
  initrd: file('initrd', randomBytes(70 * 1024)),
};
const kernelBytes = (): Buffer => readSync(paths.kernel);
const initrdBytes = (): Buffer => readSync(paths.initrd);

describe('computeExpectedDigest', () => {
  it('is sha256 of the firmware alone for SEV without a kernel, whatever its table says', async () => {
    for (const fw of [paths.debian, paths.bare]) {
      const d = await computeExpectedDigest({ firmware: fw });
      expect(d.digest.equals(sha(readSync(fw)))).toBe(true);
      expect(d.firmware.sha256).toBe(sha(readSync(fw)).toString('hex'));
      expect(d).toMatchObject({ kernel: null, initrd: null, cmdline: null, kernelHashesTable: null, vmsa: null });
    }
  });

  it('appends the kernel-hashes table QEMU builds (cmdline + NUL, initrd, kernel)', async () => {
    const d = await computeExpectedDigest({
      firmware: paths.usable,
      kernel: paths.kernel,
      initrd: paths.initrd,
      cmdline: 'console=ttyS0 motd="héllo", ✓',
    });
    const t = table(sha('console=ttyS0 motd="héllo", ✓', Buffer.of(0)), sha(initrdBytes()), sha(kernelBytes()));
    expect(d.kernelHashesTable?.equals(t)).toBe(true);
    expect(d.digest.equals(sha(usable, t))).toBe(true);
    expect(d.kernel).toEqual({ path: paths.kernel, sha256: sha(kernelBytes()).toString('hex') });
    expect(d.initrd?.sha256).toBe(sha(initrdBytes()).toString('hex'));
    expect(d.cmdlineSha256).toBe(sha('console=ttyS0 motd="héllo", ✓\0').toString('hex'));
  });

  it('measures a missing initrd as empty input and a missing cmdline like an empty one', async () => {
    const d = await computeExpectedDigest({ firmware: paths.usable, kernel: paths.kernel });
    const t = table(sha(Buffer.of(0)), sha(''), sha(kernelBytes()));
    expect(d.digest.equals(sha(usable, t))).toBe(true);
    const empty = await computeExpectedDigest({ firmware: paths.usable, kernel: paths.kernel, cmdline: '' });
    expect(empty.digest.equals(d.digest)).toBe(true);
  });

  it('appends one VMSA per vCPU for SEV-ES, with the reset address from the firmware', async () => {
    const es = { vcpus: 3, cpu: { family: 25, model: 1, stepping: 1 }, vmsaInit: 'legacy' as const, sevFeatures: 0n };
    const d = await computeExpectedDigest({ firmware: paths.usable, kernel: paths.kernel, sevEs: es });
    const pages = buildVmsas({ vcpus: 3, family: 25, model: 1, stepping: 1, resetAddress: 0x80b004, vmsaInit: 'legacy' });
    const t = table(sha(Buffer.of(0)), sha(''), sha(kernelBytes()));
    expect(d.digest.equals(sha(usable, t, ...pages))).toBe(true);
    expect(d.vmsa).toMatchObject({ variant: 'legacy', vcpus: 3, resetAddress: 0x80b004, cpu: { signature: 0xa00f11 } });
    expect(d.vmsa?.bspSha256).toBe(sha(pages[0] ?? Buffer.alloc(0)).toString('hex'));
    expect(d.vmsa?.apSha256).toBe(sha(pages[1] ?? Buffer.alloc(0)).toString('hex'));
    const one = await computeExpectedDigest({ firmware: paths.debian, sevEs: { ...es, vcpus: 1, vmsaInit: 'init2', sevFeatures: 0x20n } });
    expect(one.vmsa).toMatchObject({ apSha256: null, variant: 'init2', sevFeatures: 0x20n });
    const init2 = buildVmsas({
      vcpus: 1,
      family: 25,
      model: 1,
      stepping: 1,
      resetAddress: 0x80b004,
      vmsaInit: 'init2',
      sevFeatures: 0x20n,
    });
    expect(one.digest.equals(sha(debian, ...init2))).toBe(true);
  });

  it("refuses what QEMU would refuse to launch, in QEMU's words", async () => {
    const cases: [ExpectedDigestInputs, ErrorCode, RegExp][] = [
      [
        { firmware: paths.debian, kernel: paths.kernel },
        'SUP_ERR_FIRMWARE_NO_HASHES_AREA',
        /hashes table area is invalid \(base=0x0 size=0x0\).*AmdSev/,
      ],
      [{ firmware: paths.bare, kernel: paths.kernel }, 'SUP_ERR_FIRMWARE_NO_HASHES_AREA', /no hashes table GUID/],
      [
        { firmware: paths.bare, sevEs: { vcpus: 1, cpu: { family: 25, model: 1, stepping: 1 }, vmsaInit: 'legacy', sevFeatures: 0n } },
        'SUP_ERR_FIRMWARE_NO_SEV_INFO',
        /not found in pflash rom.*no OVMF footer table/,
      ],
      [
        { firmware: paths.zeroReset, sevEs: { vcpus: 2, cpu: { family: 25, model: 1, stepping: 1 }, vmsaInit: 'legacy', sevFeatures: 0n } },
        'SUP_ERR_FIRMWARE_NO_SEV_INFO',
        /reset address is zero/,
      ],
      [{ firmware: paths.badTable }, 'SUP_ERR_FIRMWARE_TABLE_INVALID', /OVMF table has invalid size/],
      [{ firmware: join(dir, 'missing.fd') }, 'SUP_ERR_FIRMWARE_READ', /no such file/],
      [{ firmware: paths.usable, kernel: join(dir, 'missing') }, 'SUP_ERR_KERNEL_READ', /no such file/],
      [{ firmware: paths.usable, kernel: paths.kernel, cmdline: 'a\0b' }, 'SUP_ERR_CONFIG_BAD_VALUE', /NUL/],
      [{ firmware: paths.usable, initrd: paths.initrd }, 'SUP_ERR_VERIFY_UNSUPPORTED', /require --kernel/],
      [{ firmware: paths.usable, cmdline: '' }, 'SUP_ERR_VERIFY_UNSUPPORTED', /require --kernel/],
      [
        { firmware: paths.usable, sevEs: { vcpus: 0, cpu: { family: 25, model: 1, stepping: 1 }, vmsaInit: 'legacy', sevFeatures: 0n } },
        'SUP_ERR_VERIFY_UNSUPPORTED',
        /vcpus/,
      ],
    ];
    for (const [input, code, message] of cases) await expectCode(computeExpectedDigest(input), code, message);
  });
});

describe('loadTransportKeys', () => {
  const tik = randomBytes(16);
  const tek = randomBytes(16);
  const f = {
    tik: file('tik.bin', tik),
    tek: file('tek.bin', tek),
    tk: file('tk.bin', Buffer.concat([tek, tik])),
    short: file('short.bin', randomBytes(15)),
  };

  it('reads --tik/--tek, and --tk as TEK then TIK', async () => {
    expect(await loadTransportKeys({ tik: f.tik, tek: f.tek }, { needTek: true })).toEqual({ tik, tek });
    expect(await loadTransportKeys({ tk: f.tk }, { needTek: true })).toEqual({ tik, tek });
    expect(await loadTransportKeys({ tik: f.tik }, { needTek: false })).toEqual({ tik, tek: null });
  });

  it('refuses wrong lengths, mixtures and missing keys without showing key bytes', async () => {
    await expectCode(
      loadTransportKeys({ tik: f.short }, { needTek: false }),
      'SUP_ERR_VERIFY_UNSUPPORTED',
      /expected 16 bytes in TIK file .*got 15/,
    );
    await expectCode(
      loadTransportKeys({ tk: f.tik }, { needTek: false }),
      'SUP_ERR_VERIFY_UNSUPPORTED',
      /expected 32 bytes in TEK\/TIK file/,
    );
    await expectCode(loadTransportKeys({ tk: f.tk, tik: f.tik }, { needTek: false }), 'SUP_ERR_VERIFY_UNSUPPORTED', /mutually exclusive/);
    await expectCode(loadTransportKeys({ tik: f.tik }, { needTek: true }), 'SUP_ERR_VERIFY_UNSUPPORTED', /needs the TEK/);
    await expectCode(loadTransportKeys({}, { needTek: false }), 'SUP_ERR_VERIFY_UNSUPPORTED', /give --tik/);
    await expectCode(loadTransportKeys({ tik: join(dir, 'nope') }, { needTek: false }), 'SUP_ERR_VERIFY_UNSUPPORTED', /no such file/);
    const e = await rejection(loadTransportKeys({ tk: f.tik }, { needTek: false }));
    expect(JSON.stringify(e) + String(e)).not.toContain(tik.toString('hex'));
  });
});

describe('loadRecord and readSecretFile', () => {
  it('reads a sevsup record and refuses anything else as bad configuration', async () => {
    const rec = buildRecord({
      vm: 'vm1',
      capturedAt: new Date(0),
      platform: 'simulated',
      sevType: 'sev',
      reported: { policy: 3, apiMajor: 1, apiMinor: 2, buildId: 3, state: 'launch-secret' },
      expectedPolicy: 3,
      expectedLaunchDigest: 'ab'.repeat(32),
      measurement: Buffer.alloc(48).toString('base64'),
      mnonce: Buffer.alloc(16),
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
    expect(await loadRecord(file('rec.json', JSON.stringify(rec)))).toEqual(rec);
    await expectCode(loadRecord(file('not.json', '{"schema":')), 'SUP_ERR_VERIFY_CONFIG', /is not JSON/);
    await expectCode(loadRecord(file('other.json', '{"schema":"x"}')), 'SUP_ERR_VERIFY_CONFIG', /not a sevsup measurement record/);
    await expectCode(loadRecord(file('huge.json', ' '.repeat(1024 * 1024 + 1))), 'SUP_ERR_VERIFY_CONFIG', /larger than/);
  });

  it('bounds secret files', async () => {
    expect((await readSecretFile(file('s', 'k'.repeat(MAX_SECRET_FILE_BYTES)))).length).toBe(MAX_SECRET_FILE_BYTES);
    await expectCode(readSecretFile(file('big', 'k'.repeat(MAX_SECRET_FILE_BYTES + 1))), 'SUP_ERR_USAGE', /larger than 65536 bytes/);
    await expectCode(readSecretFile(dir), 'SUP_ERR_USAGE', /not a regular file/);
  });
});
