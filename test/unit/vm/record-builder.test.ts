import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VmSpec } from '../../../src/config/vm-spec.js';
import type { SevInfo } from '../../../src/qmp/commands.js';
import type { FirmwareInfo } from '../../../src/sev/firmware-file.js';
import { sha256File } from '../../../src/sev/hash-file.js';
import { computeLaunchDigestFromFiles } from '../../../src/sev/launch-digest.js';
import type { OvmfTable } from '../../../src/sev/ovmf-table.js';
import { buildLaunchRecord, type SpawnedLaunch } from '../../../src/vm/record-builder.js';
import { catchSupervisorError } from '../../support/catch-error.js';

const FIRMWARE = Buffer.alloc(8192, 0x5a);
const KERNEL = Buffer.from('a kernel image');
const INITRD = Buffer.from('an initrd');
const RESET = 0xffc0_0000;
const SEV: SevInfo = { enabled: true, apiMajor: 1, apiMinor: 55, buildId: 21, state: 'launch-secret', policy: 7, handle: 1, sevType: null };
const MEASUREMENT = Buffer.alloc(48, 3);

let dir = '';
const file = (name: string): string => join(dir, name);
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-record-builder-'));
  await writeFile(file('OVMF.fd'), FIRMWARE);
  await writeFile(file('vmlinuz'), KERNEL);
  await writeFile(file('initrd'), INITRD);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function spawned(sev: NonNullable<VmSpec['sev']>, over: Partial<SpawnedLaunch> = {}): Promise<SpawnedLaunch> {
  const spec = {
    name: 'demo',
    source: '/etc/sevsup/vms/demo.conf',
    cores: 2,
    cpu: 'EPYC',
    kernel: file('vmlinuz'),
    initrd: file('initrd'),
    cmdline: 'console=ttyS0',
    sev,
  } as unknown as VmSpec;
  const table = { sevResetAddress: RESET } as unknown as OvmfTable;
  const firmware: FirmwareInfo = {
    path: file('OVMF.fd'),
    size: FIRMWARE.length,
    sha256: (await sha256File(file('OVMF.fd'))).sha256,
    table,
  };
  return {
    vm: 'demo',
    platform: 'simulated',
    spec,
    firmware,
    // As preflight leaves it: a running sha256 over the image, unfinished.
    firmwareHash: createHash('sha256').update(FIRMWARE),
    kernel: { path: file('vmlinuz'), sha256: (await sha256File(file('vmlinuz'))).sha256 },
    initrd: { path: file('initrd'), sha256: (await sha256File(file('initrd'))).sha256 },
    qemuVersion: { qemu: { major: 7, minor: 2, micro: 22 }, package: ' Debian 1:7.2+dfsg-7 ' },
    ...over,
  };
}

const reported = {
  sev: SEV,
  expectedPolicy: 7,
  measurement: MEASUREMENT.toString('base64'),
  mnonce: MEASUREMENT.subarray(32),
  capturedAt: new Date('2026-12-02T00:00:00Z'),
};
const sevSpec = (type: 'std' | 'es', kernelHashes: boolean): NonNullable<VmSpec['sev']> => ({
  type,
  nodbg: true,
  noks: true,
  kernelHashes,
  key: 'amd_sev',
});

describe('buildLaunchRecord', () => {
  it('an SEV record with kernel hashes: the launch inputs and the digest the owner computes from the same files', async () => {
    const record = buildLaunchRecord(await spawned(sevSpec('std', true)), reported);
    const owner = await computeLaunchDigestFromFiles({
      firmware: file('OVMF.fd'),
      kernel: file('vmlinuz'),
      initrd: file('initrd'),
      cmdline: 'console=ttyS0',
      kernelHashes: true,
    });
    expect(record.expectedLaunchDigest).toBe(owner.digest.toString('hex'));
    expect(record.sevType).toBe('sev');
    expect(record.vmsaInit).toBeNull();
    expect(record.launch).toEqual({
      firmware: { path: file('OVMF.fd'), sha256: owner.firmware.sha256 },
      kernel: { path: file('vmlinuz'), sha256: owner.kernel?.sha256 },
      initrd: { path: file('initrd'), sha256: owner.initrd?.sha256 },
      cmdline: 'console=ttyS0',
      kernelHashes: true,
      vcpus: 2,
      cpuModel: 'EPYC',
      qemuVersion: '7.2.22 (Debian 1:7.2+dfsg-7)',
    });
    expect([record.policy, record.apiMinor, record.state, record.capturedAt]).toEqual([7, 55, 'launch-secret', '2026-12-02T00:00:00.000Z']);
  });

  it('without kernel hashes only the firmware is measured', async () => {
    const record = buildLaunchRecord(await spawned(sevSpec('std', false)), reported);
    const owner = await computeLaunchDigestFromFiles({ firmware: file('OVMF.fd'), kernelHashes: false });
    expect(record.expectedLaunchDigest).toBe(owner.digest.toString('hex'));
  });

  it('an SEV-ES record measures the VMSAs built from the CPU signature QEMU reported', async () => {
    const cpu = { family: 23, model: 1, stepping: 2 };
    const record = buildLaunchRecord(await spawned(sevSpec('es', false)), reported, cpu);
    const owner = await computeLaunchDigestFromFiles({
      firmware: file('OVMF.fd'),
      kernelHashes: false,
      sevEs: { vcpus: 2, ...cpu, resetAddress: RESET, vmsaInit: 'legacy' },
    });
    expect(record.expectedLaunchDigest).toBe(owner.digest.toString('hex'));
    expect([record.sevType, record.vmsaInit]).toEqual(['sev-es', 'legacy']);
    expect(record.validateArgs).toContain('--cpu-family');
  });

  it('refuses what no record may be built from: an unhashed kernel with kernel hashes, an SEV-ES firmware without reset address', async () => {
    const unhashed = await spawned(sevSpec('std', true), { kernel: null });
    expect(catchSupervisorError(() => buildLaunchRecord(unhashed, reported)).code).toBe('SUP_ERR_INTERNAL');
    const noReset = await spawned(sevSpec('es', false));
    const firmware = { ...noReset.firmware, table: { sevResetAddress: null } as unknown as OvmfTable };
    const error = catchSupervisorError(() => buildLaunchRecord({ ...noReset, firmware }, reported, { family: 23, model: 1, stepping: 2 }));
    expect(error.code).toBe('SUP_ERR_FIRMWARE_NO_SEV_INFO');
  });
});
