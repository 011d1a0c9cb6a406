// The measurement record of one launch, assembled from what the lifecycle gathered: what was
// hashed by preflight and at spawn (the firmware's running sha256, kernel and initrd digests), what QEMU reported
// (query-sev, the launch measurement, the vCPU signature for SEV-ES) and when it was captured.
// Owns: the launch inputs (the record's `launch` member) and the host's expected GCTX.LD (the
// kernel-hashes table, the SEV-ES VMSAs, the launch digest). Pure: no I/O; the lifecycle does the
// reading and the writing. Must not: judge the measurement (only the owner can) or check QEMU's
// answers (checks.ts does, before this runs). An SNP launch builds its own record (snp-record.ts).
import type { Hash } from 'node:crypto';
import type { VmSpec } from '../config/vm-spec.js';
import { SupervisorError } from '../errors.js';
import type { QemuVersion, SevInfoLegacy, SevInfoSev } from '../qmp/commands.js';
import type { FirmwareInfo } from '../sev/firmware-file.js';
import { buildKernelHashesTable, cmdlineDigest, EMPTY_SHA256 } from '../sev/kernel-hashes.js';
import { launchDigest } from '../sev/launch-digest.js';
import { buildVmsas } from '../sev/vmsa.js';
import {
  buildRecord,
  RECORD_VMSA_INIT,
  type CpuSignature,
  type FileDigest,
  type LaunchInputs,
  type MeasurementRecord,
  type RecordPlatform,
  type RecordSevType,
} from './record.js';

/** What the lifecycle knows about the launch once QEMU is spawned and its files are hashed. */
export interface SpawnedLaunch {
  readonly vm: string;
  readonly platform: RecordPlatform;
  readonly spec: VmSpec;
  /** The firmware as preflight inspected it (path, sha256, footer table). */
  readonly firmware: FirmwareInfo;
  /**
   * sha256 that has taken in exactly the firmware image preflight hashed (the bytes the PSP
   * measures first), unfinished: the digest continues from a copy (sev/launch-digest.ts).
   */
  readonly firmwareHash: Hash;
  /** Hashed at spawn (null when the config names none). */
  readonly kernel: FileDigest | null;
  readonly initrd: FileDigest | null;
  /** From the QMP greeting. */
  readonly qemuVersion: QemuVersion;
}

/** What QEMU reported while the guest was paused, after checks.ts accepted it. */
export interface ReportedLaunch {
  readonly sev: SevInfoLegacy | SevInfoSev;
  readonly expectedPolicy: number;
  /** base64, exactly as QEMU returned it. */
  readonly measurement: string;
  /** The decoded measurement's last 16 bytes. */
  readonly mnonce: Uint8Array;
  readonly capturedAt: Date;
}

/** The record's SEV flavour for a config. */
export function recordSevType(spec: VmSpec): RecordSevType {
  return spec.sev?.type === 'es' ? 'sev-es' : 'sev';
}

/**
 * The record of an SEV / SEV-ES launch. `cpuSignature` is required for SEV-ES (the VMSAs carry it).
 * @throws SUP_ERR_INTERNAL when the kernel was not hashed though kernel-hashes is on;
 *   SUP_ERR_FIRMWARE_NO_SEV_INFO when an SEV-ES firmware has no reset address.
 */
export function buildLaunchRecord(spawned: SpawnedLaunch, reported: ReportedLaunch, cpuSignature?: CpuSignature): MeasurementRecord {
  const { sev } = reported;
  return buildRecord({
    vm: spawned.vm,
    capturedAt: reported.capturedAt,
    platform: spawned.platform,
    sevType: recordSevType(spawned.spec),
    reported: { policy: sev.policy, apiMajor: sev.apiMajor, apiMinor: sev.apiMinor, buildId: sev.buildId, state: sev.state },
    expectedPolicy: reported.expectedPolicy,
    measurement: reported.measurement,
    mnonce: reported.mnonce,
    launch: launchInputs(spawned),
    expectedLaunchDigest: expectedLaunchDigest(spawned, cpuSignature),
    ...(cpuSignature === undefined ? {} : { cpuSignature }),
  });
}

/** The record's `launch` member: what the host gave QEMU. */
export function launchInputs(spawned: Pick<SpawnedLaunch, 'spec' | 'firmware' | 'kernel' | 'initrd' | 'qemuVersion'>): LaunchInputs {
  const { spec, firmware } = spawned;
  const { qemu, package: pkg } = spawned.qemuVersion;
  return {
    firmware: { path: firmware.path, sha256: firmware.sha256 },
    kernel: spawned.kernel,
    initrd: spawned.initrd,
    cmdline: spec.cmdline ?? null,
    kernelHashes: spec.sev?.kernelHashes ?? false,
    vcpus: spec.cores,
    cpuModel: spec.cpu,
    qemuVersion: `${qemu.major}.${qemu.minor}.${qemu.micro}${pkg.trim() === '' ? '' : ` (${pkg.trim()})`}`,
  };
}

/**
 * GCTX.LD as the host computes it from the inputs it gave QEMU: a diagnostic for owners whose
 * check fails, never a substitute for their own computation (the owner must not trust the host).
 * SEV-ES VMSAs are built as QEMU with KVM_SEV_ES_INIT builds them (the `legacy` variant).
 */
export function expectedLaunchDigest(spawned: SpawnedLaunch, cpu: CpuSignature | undefined): string {
  const { spec, firmware: fw, vm } = spawned;
  let kernelHashesTable: Buffer | undefined;
  if ((spec.sev?.kernelHashes ?? false) && spec.kernel !== undefined) {
    // The table holds only digests: reuse the kernel/initrd hashes taken at spawn.
    if (spawned.kernel === null) throw new SupervisorError('SUP_ERR_INTERNAL', `VM ${vm}: kernel not hashed`);
    kernelHashesTable = buildKernelHashesTable({
      cmdline: cmdlineDigest(spec.cmdline),
      initrd: spawned.initrd === null ? EMPTY_SHA256 : Buffer.from(spawned.initrd.sha256, 'hex'),
      kernel: Buffer.from(spawned.kernel.sha256, 'hex'),
    });
  }
  let vmsas: Buffer[] | undefined;
  if (cpu !== undefined) {
    const resetAddress = fw.table.sevResetAddress;
    if (resetAddress === null)
      throw new SupervisorError('SUP_ERR_FIRMWARE_NO_SEV_INFO', `VM ${vm}: firmware ${fw.path} has no SEV-ES reset address`);
    vmsas = buildVmsas({ vcpus: spec.cores, ...cpu, resetAddress, vmsaInit: RECORD_VMSA_INIT });
  }
  const digest = launchDigest({
    firmware: spawned.firmwareHash,
    ...(kernelHashesTable === undefined ? {} : { kernelHashesTable }),
    ...(vmsas === undefined ? {} : { vmsas }),
  });
  return digest.toString('hex');
}
