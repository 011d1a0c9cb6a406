// Helpers for the guest owner's toolkit tests: run bin/sevsup as a user would (built dist/), build
// a measurement the way the secure processor does, and prepare firmware images.
import { execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseOvmfTable, SEV_HASH_TABLE_RV_GUID, SEV_SECRET_GUID } from '../../src/sev/ovmf-table.js';
import { buildRecord, type CpuSignature, type LaunchInputs, type MeasurementRecord } from '../../src/vm/record.js';
import { KERNEL, SEVSUP as BIN } from '../../test/support/it-env.js';

export const DEBIAN_OVMF_4M = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export {
  DEBIAN_OVMF,
  HAVE_VALIDATOR,
  mapLimit,
  PYTHON,
  runValidator,
  runValidatorBatch,
  VALIDATOR,
  validatorArgv,
  type ValidatorArgs,
} from '../../test/support/validator.js';

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run bin/sevsup; resolves with its exit code and output, never rejects for a non-zero exit. */
export function sevsup(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(BIN, [...args], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

export interface HostValues {
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
  readonly policy: number;
}

/** LAUNCH_MEASURE as the SEV firmware computes it (SEV API 6.5), written out independently. */
export function measurementFor(tik: Buffer, host: HostValues, digestHex: string, mnonce = randomBytes(16)): string {
  const head = Buffer.from([0x04, host.apiMajor, host.apiMinor, host.buildId, 0, 0, 0, 0]);
  head.writeUInt32LE(host.policy, 4);
  const mac = createHmac('sha256', tik).update(head).update(Buffer.from(digestHex, 'hex')).update(mnonce).digest();
  return Buffer.concat([mac, mnonce]).toString('base64');
}

/**
 * A copy of an OVMF image whose footer table declares a kernel-hashes and a launch-secret area
 * (the layout scripts/make-test-firmware.mjs uses), written to `dst`.
 */
export function patchFirmware(src: string, dst: string, areas = { hashes: [0x80fc00, 0x400], secret: [0x80f000, 0xc00] }): string {
  const image = readFileSync(src);
  const table = parseOvmfTable(image);
  for (const [guid, [base, size]] of [
    [SEV_HASH_TABLE_RV_GUID, areas.hashes],
    [SEV_SECRET_GUID, areas.secret],
  ] as const) {
    const entry = table.entries.find((e) => e.guid === guid);
    if (entry === undefined || base === undefined || size === undefined) throw new Error(`${src} has no ${guid} entry`);
    image.writeUInt32LE(base, entry.offset);
    image.writeUInt32LE(size, entry.offset + 4);
  }
  writeFileSync(dst, image);
  return dst;
}

/** The real kernel from scripts/setup-test-assets.sh when present. */
export function realKernel(): string | null {
  return existsSync(KERNEL) ? KERNEL : null;
}

/**
 * Write a measurement record as the host would (buildRecord) for `measurement` and `host`, and
 * return it. Launch inputs default to "nothing measured but the firmware-less launch".
 */
export function writeRecord(
  path: string,
  o: {
    host: HostValues;
    measurement: string;
    state?: string;
    platform?: 'hardware' | 'simulated';
    launch?: Partial<LaunchInputs>;
    cpuSignature?: CpuSignature;
  },
): MeasurementRecord {
  const record = buildRecord({
    vm: 'vm1',
    capturedAt: new Date(),
    platform: o.platform ?? 'simulated',
    sevType: (o.host.policy & 0x4) !== 0 ? 'sev-es' : 'sev',
    reported: { ...o.host, state: o.state ?? 'launch-secret' },
    expectedPolicy: o.host.policy,
    expectedLaunchDigest: 'ab'.repeat(32),
    measurement: o.measurement,
    mnonce: Buffer.from(o.measurement, 'base64').subarray(32),
    launch: {
      firmware: null,
      kernel: null,
      initrd: null,
      cmdline: null,
      kernelHashes: false,
      vcpus: 1,
      cpuModel: 'EPYC',
      qemuVersion: '7.2.22',
      ...o.launch,
    },
    ...(o.cpuSignature === undefined ? {} : { cpuSignature: o.cpuSignature }),
  });
  writeFileSync(path, JSON.stringify(record));
  return record;
}
