// Checks on the files a VM will boot from, before any QEMU starts: the firmware image (readable,
// pinned sha256, a kernel-hashes area QEMU will accept, an SEV-ES reset address), the kernel and
// initrd, the owner's launch session files, each disk's backing chain (vm/disk-chain.ts), and for
// SEV-SNP the firmware's SNP metadata and the SNP line's files (vm/snp-preflight.ts).
// Owns: turning "QEMU would refuse this at start-up" into a clear error that names the config file,
// the key, the image and what to use instead. Must not: spawn anything, build argv, or judge the
// host (qemu/argv.ts applies the seed's host checks).
import type { Hash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { VmSpec } from '../config/vm-spec.js';
import { hasCode, SupervisorError, type ErrorCode } from '../errors.js';
import { DEFAULT_OVMF_PATH, firmwarePath } from '../qemu/firmware.js';
import { readSnpFirmware, type SnpFirmwareFile } from '../attestation/snp-inputs.js';
import { inspectLaunchFirmware, type FirmwareInfo } from '../sev/firmware-file.js';
import { describeHashesAreaProblem, describeSevEsProblem, isUsableHashesArea } from '../sev/ovmf-table.js';
import { describeIoError } from '../util/io-error.js';
import { readDiskChains, type DiskChains } from './disk-chain.js';
import { snpPreflight, type SnpLaunchFiles, type SnpPreflight } from './snp-preflight.js';

/** Where the one firmware that can measure a direct kernel boot comes from. */
export const AMDSEV_OVMF_HINT =
  'use an OVMF AmdSev build (OvmfPkg/AmdSev/AmdSevX64.dsc; Debian ships none) and point the firmware key at it';

export interface Preflight {
  /** The inspected firmware, or null for SeaBIOS. */
  readonly firmware: FirmwareInfo | null;
  /**
   * sha256 over the firmware bytes preflight hashed, unfinished: the SEV launch digest continues
   * from a copy, so the image is read once per launch (sev/launch-digest.ts). Null for SeaBIOS, and
   * for SEV-SNP (its digest is computed from the image's bytes, snpFirmware).
   */
  readonly firmwareHash: Hash | null;
  /** Each disk's checked backing chain: what the argv states (QemuArgvInput.backingChains). */
  readonly disks: DiskChains;
  /** For an SNP guest: its ID block, ID auth and host data, read (QemuArgvInput.snp). */
  readonly snp?: SnpLaunchFiles;
  /** For an SNP guest: the firmware image as SNP preflight read it (the expected digest's input). */
  readonly snpFirmware?: SnpPreflight['firmware'];
}

/**
 * Inspect what `spec` boots from and refuse what QEMU would refuse (or what would not be measured
 * as configured).
 * @throws SUP_ERR_FIRMWARE_READ, SUP_ERR_FIRMWARE_TABLE_INVALID, SUP_ERR_FIRMWARE_HASH_MISMATCH,
 *   SUP_ERR_FIRMWARE_NO_HASHES_AREA, SUP_ERR_FIRMWARE_NO_SEV_INFO, SUP_ERR_KERNEL_READ
 *   (kernel/initrd), SUP_ERR_CONFIG_BAD_VALUE (launch session files), SUP_ERR_DISK_READ,
 *   SUP_ERR_DISK_CHAIN_REFUSED (disks and their backing chains), and for SNP SUP_ERR_FIRMWARE_SNP and
 *   SUP_ERR_CONFIG_BAD_VALUE (its files).
 */
export async function preflight(spec: VmSpec): Promise<Preflight> {
  const read = await checkFirmware(spec);
  const firmware = read?.info ?? null;
  if (spec.kernel !== undefined) await checkReadable(spec, 'kernel', spec.kernel, 'SUP_ERR_KERNEL_READ');
  if (spec.initrd !== undefined) await checkReadable(spec, 'initrd', spec.initrd, 'SUP_ERR_KERNEL_READ');
  if (spec.launch !== undefined) {
    // QEMU reads these only at LAUNCH_START, after KVM init: a typo would fail late and obscurely.
    await checkReadable(spec, 'launch dh-cert', spec.launch.dhCert, 'SUP_ERR_CONFIG_BAD_VALUE');
    await checkReadable(spec, 'launch session', spec.launch.session, 'SUP_ERR_CONFIG_BAD_VALUE');
  }
  const snp = spec.sev?.type === 'snp' ? await snpPreflight(spec, spec.sev, read?.snp ?? null) : undefined;
  return {
    firmware,
    firmwareHash: read?.hash ?? null,
    disks: await readDiskChains(spec),
    ...(snp === undefined ? {} : { snp: snp.files, snpFirmware: snp.firmware }),
  };
}

/** The firmware as read: inspected, with the SEV digest's running hash, or (SEV-SNP) read whole for its own checks and digest. */
type FirmwareRead = { readonly info: FirmwareInfo } & (
  | { readonly hash: Hash; readonly snp?: undefined }
  | { readonly hash: null; readonly snp: SnpFirmwareFile }
);

/** One read of the image whatever the SEV type: SNP's checks and digest need its bytes, SEV's a running sha256. */
async function readFirmware(path: string, snp: boolean): Promise<FirmwareRead> {
  if (!snp) return inspectLaunchFirmware(path);
  const fw = await readSnpFirmware(path);
  return { info: { path: fw.path, size: fw.size, sha256: fw.sha256, table: fw.table }, hash: null, snp: fw };
}

async function checkFirmware(spec: VmSpec): Promise<FirmwareRead | null> {
  const path = firmwarePath(spec);
  if (path === null) return null;
  let read: FirmwareRead;
  try {
    read = await readFirmware(path, spec.sev?.type === 'snp');
  } catch (error: unknown) {
    if (hasCode(error, 'SUP_ERR_FIRMWARE_TABLE_INVALID')) {
      throw new SupervisorError(
        'SUP_ERR_FIRMWARE_TABLE_INVALID',
        `${spec.source}: firmware: ${path}: ${error.message} (QEMU would refuse it); use an intact OVMF image`,
        { details: { ...error.details, file: spec.source, key: 'firmware', path }, cause: error },
      );
    }
    if (!hasCode(error, 'SUP_ERR_FIRMWARE_READ')) throw error;
    const fix =
      spec.firmware === undefined
        ? `no firmware key is set, so sevsup uses ${DEFAULT_OVMF_PATH}: install Debian's ovmf package or set 'firmware: PATH'`
        : 'fix the firmware key';
    throw new SupervisorError('SUP_ERR_FIRMWARE_READ', `${spec.source}: firmware: ${error.message}; ${fix}`, {
      details: { ...error.details, file: spec.source, key: 'firmware' },
      cause: error,
    });
  }
  const { info } = read;

  const pinned = spec.firmware?.sha256;
  if (pinned !== undefined && pinned !== info.sha256) {
    throw new SupervisorError(
      'SUP_ERR_FIRMWARE_HASH_MISMATCH',
      `${spec.source}: firmware: ${path} has sha256 ${info.sha256}, but the config pins ${pinned}; ` +
        'the image changed since it was pinned: check where it came from, then update the sha256 or restore the image',
      { details: { file: spec.source, key: 'firmware', path, expected: pinned, actual: info.sha256 } },
    );
  }

  const sev = spec.sev;
  if (sev === undefined) return read;
  // SNP's checks (vm/snp-preflight.ts) name this and what else SNP needs from the firmware at once.
  if (sev.type !== 'snp' && sev.kernelHashes && !isUsableHashesArea(info.table.hashesArea)) {
    const reason = describeHashesAreaProblem(info.table.hashesArea);
    throw new SupervisorError(
      'SUP_ERR_FIRMWARE_NO_HASHES_AREA',
      `${spec.source}: ${sev.key}: kernel-hashes=1, but QEMU would refuse the firmware ${path}: ` + `"${reason}"; ${AMDSEV_OVMF_HINT}`,
      { details: { file: spec.source, key: sev.key, path, reason } },
    );
  }
  if (sev.type === 'es') {
    const reason = describeSevEsProblem(info.table);
    if (reason !== '') {
      throw new SupervisorError(
        'SUP_ERR_FIRMWARE_NO_SEV_INFO',
        `${spec.source}: ${sev.key}: SEV-ES needs the firmware's SEV info block (the AP reset address), but QEMU ` +
          `would refuse ${path}: "${reason}"; use an OVMF build with SEV support (an AmdSev build, or Debian's ${DEFAULT_OVMF_PATH})`,
        { details: { file: spec.source, key: sev.key, path, reason } },
      );
    }
  }
  return read;
}

/**
 * Open (without reading) to prove the file exists, is readable and is a regular file. O_NONBLOCK:
 * opening a FIFO for reading would otherwise wait for a writer.
 */
async function checkReadable(spec: VmSpec, key: string, path: string, code: ErrorCode): Promise<void> {
  let reason: string | null = null;
  try {
    const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      if (!(await handle.stat()).isFile()) reason = 'not a regular file';
    } finally {
      await handle.close();
    }
  } catch (error: unknown) {
    reason = describeIoError(error);
  }
  if (reason !== null) {
    throw new SupervisorError(code, `${spec.source}: ${key}: cannot read ${path}: ${reason}; give an existing, readable file`, {
      details: { file: spec.source, key, path, reason },
    });
  }
}
