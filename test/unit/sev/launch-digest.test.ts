import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { buildKernelHashesTable, cmdlineDigest, EMPTY_SHA256 } from '../../../src/sev/kernel-hashes.js';
import { computeLaunchDigestFromFiles, launchDigest } from '../../../src/sev/launch-digest.js';
import { buildVmsas } from '../../../src/sev/vmsa.js';

const sha = (...parts: Buffer[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const dir = mkdtempSync(join(tmpdir(), 'sevsup-ld-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const firmware = randomBytes(2 * 1024 * 1024 + 100);
const kernel = randomBytes(1500 * 1024);
const initrd = randomBytes(70 * 1024);
const paths = { firmware: join(dir, 'fw.fd'), kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd') };
writeFileSync(paths.firmware, firmware);
writeFileSync(paths.kernel, kernel);
writeFileSync(paths.initrd, initrd);

describe('launchDigest', () => {
  it('is sha256 of the firmware, then the table, then the VMSAs', () => {
    const table = buildKernelHashesTable({ cmdline: cmdlineDigest('x'), initrd: EMPTY_SHA256, kernel: sha(kernel) });
    const vmsas = buildVmsas({ vcpus: 3, family: 25, model: 1, stepping: 1, resetAddress: 0x80b004, vmsaInit: 'legacy' });
    expect(launchDigest({ firmware }).equals(sha(firmware))).toBe(true);
    expect(launchDigest({ firmware, kernelHashesTable: table }).equals(sha(firmware, table))).toBe(true);
    expect(launchDigest({ firmware, kernelHashesTable: table, vmsas }).equals(sha(firmware, table, ...vmsas))).toBe(true);
    expect(launchDigest({ firmware, vmsas }).equals(sha(firmware, ...vmsas))).toBe(true);
  });

  it('refuses a table that is not the padded 176 bytes or a VMSA that is not a page', () => {
    expect(() => launchDigest({ firmware, kernelHashesTable: Buffer.alloc(168) })).toThrow(/176/);
    expect(() => launchDigest({ firmware, vmsas: [Buffer.alloc(4095)] })).toThrow(/4096/);
  });
});

describe('computeLaunchDigestFromFiles', () => {
  it('streams the files and measures the table only with kernel-hashes on and a kernel', async () => {
    const table = buildKernelHashesTable({ cmdline: cmdlineDigest('console=ttyS0'), initrd: sha(initrd), kernel: sha(kernel) });
    const withTable = await computeLaunchDigestFromFiles({ ...paths, cmdline: 'console=ttyS0', kernelHashes: true });
    expect(withTable.digest.equals(sha(firmware, table))).toBe(true);
    expect(withTable.table?.equals(table)).toBe(true);
    expect(withTable.firmware).toEqual({ path: paths.firmware, sha256: sha(firmware).toString('hex') });
    expect(withTable.kernel).toEqual({ path: paths.kernel, sha256: sha(kernel).toString('hex') });
    expect(withTable.initrd).toEqual({ path: paths.initrd, sha256: sha(initrd).toString('hex') });

    const off = await computeLaunchDigestFromFiles({ ...paths, kernelHashes: false });
    expect(off.digest.equals(sha(firmware))).toBe(true);
    expect(off.table).toBeNull();
    const noKernel = await computeLaunchDigestFromFiles({ firmware: paths.firmware, kernelHashes: true });
    expect(noKernel.digest.equals(sha(firmware))).toBe(true);
    expect(noKernel.kernel).toBeNull();
  });

  it('appends the SEV-ES VMSAs', async () => {
    const sevEs = { vcpus: 2, family: 25, model: 1, stepping: 1, resetAddress: 0x80b004, vmsaInit: 'legacy' as const };
    const got = await computeLaunchDigestFromFiles({ firmware: paths.firmware, kernelHashes: false, sevEs });
    expect(got.digest.equals(sha(firmware, ...buildVmsas(sevEs)))).toBe(true);
  });

  it('refuses initrd or cmdline without a kernel and reports unreadable files', async () => {
    const e1 = await computeLaunchDigestFromFiles({ firmware: paths.firmware, cmdline: '', kernelHashes: true }).catch((e: unknown) => e);
    expect(hasCode(e1, 'SUP_ERR_VERIFY_UNSUPPORTED')).toBe(true);
    const e2 = await computeLaunchDigestFromFiles({ firmware: join(dir, 'nofw'), kernelHashes: false }).catch((e: unknown) => e);
    expect(hasCode(e2, 'SUP_ERR_FIRMWARE_READ')).toBe(true);
    const e3 = await computeLaunchDigestFromFiles({ ...paths, kernel: join(dir, 'nokernel'), kernelHashes: true }).catch((e: unknown) => e);
    expect(hasCode(e3, 'SUP_ERR_KERNEL_READ')).toBe(true);
  });
});
