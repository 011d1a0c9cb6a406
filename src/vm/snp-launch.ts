// The SEV-SNP step of a launch, with QEMU paused after spawn (-S), beside measure.ts's SEV step:
// check what QEMU reports (query-sev: enabled, sev-snp, the exact 64-bit policy, launch-update),
// compute the expected launch digest from the exact inputs the host gave QEMU, and write the SNP
// launch record durably. There is no host-side measurement on SNP: query-sev-launch-measure always
// fails, so it is never sent (snp-facts §1.4); the PSP measures everything at the first run.
// The digest's chain up to the VMSAs (firmware pages, metadata sections, the kernel-hashes table) is
// started at spawn (startSnpDigest), from the image preflight read and the kernel digests taken at
// spawn, so it overlaps QEMU's start-up; only the VMSAs wait for the vCPU signature QEMU reports.
// Owns: that step's order and failures. Must not: resume or stop QEMU or move the VM's state (the
// lifecycle does, and fails closed on whatever this throws, a failed digest included); judge a
// report (the owner does).
import { prepareSnpExpectedDigest, type PreparedSnpDigest, type SnpFirmwareFile } from '../attestation/snp-inputs.js';
import type { SnpSpec, VmSpec } from '../config/vm-spec.js';
import { isSupervisorError, SupervisorError } from '../errors.js';
import { queryCpuSignature, querySev } from '../qmp/commands.js';
import { sha256File } from '../sev/hash-file.js';
import { kernelInputs } from '../sev/kernel-hashes.js';
import { formatSnpPolicy, snpPolicyFromConfig } from '../sev/snp-policy.js';
import { cpuSignature } from '../sev/vmsa.js';
import { checkSnpInfo } from './checks.js';
import type { LaunchFileDigests, MeasureContext } from './measure.js';
import { launchInputs } from './record-builder.js';
import { writeRecordBeforeResume } from './record-store.js';
import type { SnpLaunchFiles } from './snp-preflight.js';
import { buildSnpRecord, SNP_QEMU_GUEST_FEATURES } from './snp-record.js';

export interface SnpLaunchContext extends MeasureContext {
  /** What preflight read for the sev-snp-guest object (the same values the argv carries). */
  readonly snp: SnpLaunchFiles;
  /** The digest up to the VMSAs, started at spawn (startSnpDigest). */
  readonly digest: Promise<PreparedSnpDigest>;
}

/**
 * Start the expected digest's chain up to the VMSAs from the image preflight read (`firmware`) and
 * the kernel and initrd digests taken at spawn (`hashing`): nothing is read again. Its error is
 * reported where recordSnpLaunch awaits it, before anything could resume the guest.
 */
export function startSnpDigest(spec: VmSpec, firmware: SnpFirmwareFile, hashing: Promise<LaunchFileDigests>): Promise<PreparedSnpDigest> {
  const run = async (): Promise<PreparedSnpDigest> => {
    const sev = spec.sev;
    if (sev?.type !== 'snp') throw new SupervisorError('SUP_ERR_INTERNAL', `VM ${spec.name}: SNP digest without an SNP config`);
    // With kernel-hashes off QEMU measures the KERNEL_HASHES section as zero pages: the digest is the
    // no-kernel one (snp-facts §1.3), so the kernel, initrd and cmdline count only with it on.
    let measured: ReturnType<typeof kernelInputs> | null = null;
    if (sev.kernelHashes && spec.kernel !== undefined) {
      const [kernel, initrd] = await hashing;
      if (kernel === null) throw new SupervisorError('SUP_ERR_INTERNAL', `VM ${spec.name}: kernel not hashed`);
      measured = kernelInputs(kernel, initrd, spec.cmdline);
    }
    return prepareSnpExpectedDigest(firmware, measured, { vcpus: spec.cores, guestFeatures: SNP_QEMU_GUEST_FEATURES, vmmType: 'QEMU' });
  };
  const digest = run();
  digest.catch(() => undefined);
  return digest;
}

/**
 * The fail-closed checks and the durable SNP launch record. MUST run with QEMU paused after spawn.
 * @returns the record's path.
 * @throws SUP_ERR_CHECK_* (checks.ts), SUP_ERR_FIRMWARE_HASH_MISMATCH (the firmware changed since
 *   preflight), the digest's errors (attestation/snp-inputs.ts), SUP_ERR_RECORD_WRITE.
 */
export async function recordSnpLaunch(c: SnpLaunchContext): Promise<string> {
  const { vm, spec, qmp, step } = c;
  const sev = spec.sev;
  if (sev?.type !== 'snp') throw new SupervisorError('SUP_ERR_INTERNAL', `VM ${vm}: SNP launch step without an SNP config`);
  const expectedPolicy = snpPolicyFromConfig(sev);
  const fw = c.firmware;
  if (fw === null) throw new SupervisorError('SUP_ERR_INTERNAL', `VM ${vm}: no firmware after preflight`);
  // The digest must be of the image QEMU loaded, which it has by now (its monitor answers): hash
  // the file again beside the checks, and refuse one that changed since preflight read it.
  const current = sha256File(fw.path, { code: 'SUP_ERR_FIRMWARE_READ', what: 'firmware image' });
  current.catch(() => undefined);
  const seen = await step('query-sev', () => querySev(qmp));
  checkSnpInfo(vm, seen, { policy: expectedPolicy });
  c.emit({
    event: 'checked',
    policy: formatSnpPolicy(expectedPolicy),
    sevType: 'sev-snp',
    apiMajor: seen.apiMajor,
    apiMinor: seen.apiMinor,
    buildId: seen.buildId,
  });
  // The vCPU signature QEMU put in RDX of every VMSA, as QEMU itself reports it.
  const cpu = await step('query-cpus-fast', () => queryCpuSignature(qmp));
  const vcpuSignature = cpuSignature(cpu.family, cpu.model, cpu.stepping);
  c.signal.throwIfAborted();

  const cannotCompute = (error: unknown): unknown =>
    isSupervisorError(error)
      ? new SupervisorError(
          error.code,
          `VM ${vm}: cannot compute the expected SNP launch digest: ${error.message}; the guest was not resumed`,
          {
            details: { ...error.details, vm },
            cause: error,
          },
        )
      : error;
  let digest: ReturnType<PreparedSnpDigest['finish']>;
  let now: string;
  try {
    digest = (await c.digest).finish(vcpuSignature);
    now = (await current).sha256;
  } catch (error: unknown) {
    throw cannotCompute(error);
  }
  if (now !== fw.sha256 || digest.firmware.sha256 !== fw.sha256) {
    const changed = now !== fw.sha256 ? now : digest.firmware.sha256;
    throw new SupervisorError(
      'SUP_ERR_FIRMWARE_HASH_MISMATCH',
      `VM ${vm}: the firmware ${fw.path} changed while the guest was starting (sha256 ${fw.sha256} at preflight, ` +
        `${changed} now); its launch digest cannot be known, so the guest was not resumed`,
      { details: { vm, path: fw.path, expected: fw.sha256, actual: changed } },
    );
  }
  const [kernel, initrd] = await c.hashing;
  const inputs = launchInputs({ spec, firmware: fw, kernel, initrd, qemuVersion: qmp.greeting.QMP.version });
  const record = buildSnpRecord({
    vm,
    capturedAt: new Date(),
    platform: c.platform,
    reported: seen,
    measured: { digest, vcpus: spec.cores, vcpuSignature, guestFeatures: SNP_QEMU_GUEST_FEATURES, vmmType: 'QEMU' },
    kernel,
    initrd,
    cmdline: inputs.cmdline,
    kernelHashes: inputs.kernelHashes,
    cpuModel: inputs.cpuModel,
    qemuVersion: inputs.qemuVersion,
    hostData: c.snp.hostData === undefined ? null : { base64: c.snp.hostData, path: hostDataPath(sev) },
    idBlock:
      c.snp.idBlock === undefined || c.snp.idAuth === undefined || sev.idBlock === undefined || sev.idAuth === undefined
        ? null
        : { block: c.snp.idBlock, auth: c.snp.idAuth, blockPath: sev.idBlock, authPath: sev.idAuth },
  });
  const path = await writeRecordBeforeResume(c.stateDir, record);
  c.emit({
    event: 'snp-recorded',
    record: path,
    expectedLaunchDigest: record.expectedLaunchDigest,
    hostData: record.hostData,
    idKeyDigest: record.idBlock?.idKeyDigest ?? null,
    idBlockMatches: record.idBlock?.matchesExpected ?? null,
  });
  return path;
}

function hostDataPath(sev: SnpSpec): string | null {
  return sev.hostData?.kind === 'file' ? sev.hostData.path : null;
}
