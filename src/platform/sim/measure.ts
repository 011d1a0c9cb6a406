// The simulated secure processor's launch measurement: the launch digest from the real firmware
// image, the kernel-hashes table and (SEV-ES) one VMSA per vCPU, then LAUNCH_MEASURE's 48 bytes
// HMAC(TIK, 0x04 ‖ api ‖ build ‖ policy ‖ digest ‖ mnonce) ‖ mnonce with a fresh random mnonce.
// Owns: reading the start-up facts (firmware table, bzImage check, session files) and the CPU
// signatures of QEMU 7.2's models. Must not: decide what QEMU refuses (startup-checks.ts does).
import { randomBytes } from 'node:crypto';
import { access, open, readFile } from 'node:fs/promises';
import { inspectFirmwareFile, type FirmwareInfo } from '../../sev/firmware-file.js';
import { computeLaunchDigestFromFiles } from '../../sev/launch-digest.js';
import { computeMeasurementMac, MNONCE_BYTES } from '../../sev/measurement.js';
import type { SevEsParams } from '../../sev/vmsa.js';
import { isSupervisorError } from '../../errors.js';
import type { QemuArgvModel } from './argv-model.js';
import { glibReadError, readSevObject, type StartupFacts } from './startup-checks.js';
import { linkedSevObject } from './argv-model.js';
import type { SevPlatformVersion } from './sev-state.js';
import { errnoOf } from '../../util/io-error.js';

/** CPUID 1 signatures (family, model, stepping) of QEMU 7.2's x86 models (target/i386/cpu.c). */
const CPU_SIGNATURES: Readonly<Record<string, readonly [number, number, number]>> = {
  EPYC: [23, 1, 2],
  'EPYC-IBPB': [23, 1, 2],
  'EPYC-Rome': [23, 49, 0],
  'EPYC-Milan': [25, 1, 1],
  Opteron_G1: [15, 6, 1],
  Opteron_G2: [15, 6, 1],
  Opteron_G3: [16, 2, 3],
  Opteron_G4: [21, 1, 2],
  Opteron_G5: [21, 2, 0],
  qemu64: [15, 107, 1],
  kvm64: [15, 6, 1],
};

/** The simulated host's own CPU (what `-cpu host` sees): an EPYC Milan. */
export const SIM_HOST_CPU = 'EPYC-Milan';

/** Family/model/stepping KVM puts in each VMSA's RDX for `-cpu MODEL[,features]`; null if unknown. */
export function cpuSignature(cpuOption: string | null): { family: number; model: number; stepping: number } | null {
  const name = (cpuOption ?? 'qemu64').split(',')[0] as string;
  const base = name === 'host' || name === 'max' ? SIM_HOST_CPU : name.replace(/-v\d+$/, '');
  const sig = CPU_SIGNATURES[base];
  return sig === undefined ? null : { family: sig[0], model: sig[1], stepping: sig[2] };
}

/** Linux's bzImage magic "HdrS" at 0x202: only that path adds SEV kernel hashes (x86_load_linux). */
export async function isBzImage(path: string): Promise<boolean | null> {
  try {
    const handle = await open(path, 'r');
    try {
      const buf = Buffer.alloc(4);
      const { bytesRead } = await handle.read(buf, 0, 4, 0x202);
      return bytesRead === 4 && buf.toString('latin1') === 'HdrS';
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
}

export interface FirmwareRead {
  readonly info: FirmwareInfo | null;
  readonly tableError: string | null;
}

/** The firmware and its footer table; a corrupt table is QEMU's non-fatal "invalid size" line. */
export async function readFirmware(path: string): Promise<FirmwareRead> {
  try {
    return { info: await inspectFirmwareFile(path), tableError: null };
  } catch (error: unknown) {
    if (isSupervisorError(error) && error.code === 'SUP_ERR_FIRMWARE_TABLE_INVALID') {
      return { info: null, tableError: `qemu-system-x86_64: ${error.message}` };
    }
    return { info: null, tableError: null };
  }
}

/** Everything planStartup looks at on disk. */
export async function gatherStartupFacts(model: QemuArgvModel, firmware: FirmwareRead): Promise<StartupFacts> {
  const unreadableFiles = new Map<string, string>();
  const existingDevices = new Set<string>();
  const object = linkedSevObject(model);
  const params = object === null ? null : readSevObject(object);
  if (params !== null && !('unreadable' in params)) {
    for (const file of [params.sessionFile, params.dhCertFile]) {
      if (file === null) continue;
      try {
        await readFile(file);
      } catch (error: unknown) {
        unreadableFiles.set(file, glibReadError(file, errnoOf(error) ?? 'EIO'));
      }
    }
    if (params.sevDevice !== '/dev/sev') {
      try {
        await access(params.sevDevice);
        existingDevices.add(params.sevDevice);
      } catch {
        // Absent: sev_kvm_init's "Failed to open" (startup-checks.ts).
      }
    }
  }
  return {
    unreadableFiles,
    existingDevices,
    firmwareTable: firmware.info?.table ?? null,
    firmwareTableError: firmware.tableError,
    kernelIsBzImage: model.kernel === null ? null : await isBzImage(model.kernel),
  };
}

export interface LaunchMeasurement {
  readonly digest: Buffer;
  readonly mac: Buffer;
  readonly mnonce: Buffer;
}

/**
 * GCTX.LD and LAUNCH_MEASURE's blob for this launch.
 * @throws SUP_ERR_FIRMWARE_READ, SUP_ERR_KERNEL_READ (unreadable inputs), SUP_ERR_VERIFY_UNSUPPORTED.
 */
export async function measureLaunch(o: {
  firmware: string;
  model: QemuArgvModel;
  measureKernelHashes: boolean;
  sevEs: SevEsParams | null;
  tik: Buffer;
  policy: number;
  platform: SevPlatformVersion;
}): Promise<LaunchMeasurement> {
  const { model } = o;
  const digest = await computeLaunchDigestFromFiles({
    firmware: o.firmware,
    kernelHashes: o.measureKernelHashes,
    ...(o.measureKernelHashes && model.kernel !== null ? { kernel: model.kernel } : {}),
    ...(o.measureKernelHashes && model.initrd !== null ? { initrd: model.initrd } : {}),
    ...(o.measureKernelHashes && model.append !== null ? { cmdline: model.append } : {}),
    ...(o.sevEs === null ? {} : { sevEs: o.sevEs }),
  });
  const mnonce = randomBytes(MNONCE_BYTES);
  const { apiMajor, apiMinor, buildId } = o.platform;
  const mac = computeMeasurementMac({ tik: o.tik, apiMajor, apiMinor, buildId, policy: o.policy, digest: digest.digest, mnonce });
  return { digest: digest.digest, mac, mnonce };
}
