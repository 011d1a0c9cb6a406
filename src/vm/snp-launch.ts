// The SEV-SNP step of a launch, with QEMU paused after spawn (-S), beside measure.ts's SEV step:
// check what QEMU reports (query-sev: enabled, sev-snp, the exact 64-bit policy, launch-update),
// compute the expected launch digest from the exact inputs the host gave QEMU, and write the SNP
// launch record durably. There is no host-side measurement on SNP: query-sev-launch-measure always
// fails, so it is never sent (snp-facts §1.4); the PSP measures everything at the first run.
// Owns: that step's order and failures. Must not: resume or stop QEMU or move the VM's state (the
// lifecycle does, and fails closed on whatever this throws); judge a report (the owner does).
import { computeSnpExpectedDigest } from '../attestation/snp-inputs.js';
import type { SnpSpec } from '../config/vm-spec.js';
import { isSupervisorError, SupervisorError } from '../errors.js';
import { queryCpuSignature, querySev } from '../qmp/commands.js';
import { formatSnpPolicy, snpPolicyFromConfig } from '../sev/snp-policy.js';
import { cpuSignature } from '../sev/vmsa.js';
import { checkSnpInfo } from './checks.js';
import type { MeasureContext } from './measure.js';
import { launchInputs } from './record-builder.js';
import { writeRecordBeforeResume } from './record-store.js';
import type { SnpLaunchFiles } from './snp-preflight.js';
import { buildSnpRecord, SNP_QEMU_GUEST_FEATURES } from './snp-record.js';

export interface SnpLaunchContext extends MeasureContext {
  /** What preflight read for the sev-snp-guest object (the same values the argv carries). */
  readonly snp: SnpLaunchFiles;
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

  const fw = c.firmware;
  if (fw === null) throw new SupervisorError('SUP_ERR_INTERNAL', `VM ${vm}: no firmware after preflight`);
  // With kernel-hashes off QEMU measures the KERNEL_HASHES section as zero pages: the digest is the
  // no-kernel one (snp-facts §1.3), so the kernel, initrd and cmdline count only with it on.
  const measuredKernel = sev.kernelHashes && spec.kernel !== undefined;
  const digest = await computeSnpExpectedDigest({
    firmware: fw.path,
    ...(measuredKernel ? { kernel: spec.kernel } : {}),
    ...(measuredKernel && spec.initrd !== undefined ? { initrd: spec.initrd } : {}),
    ...(measuredKernel && spec.cmdline !== undefined ? { cmdline: spec.cmdline } : {}),
    vcpus: spec.cores,
    vcpuSignature,
    guestFeatures: SNP_QEMU_GUEST_FEATURES,
    vmmType: 'QEMU',
  }).catch((error: unknown) => {
    throw isSupervisorError(error)
      ? new SupervisorError(
          error.code,
          `VM ${vm}: cannot compute the expected SNP launch digest: ${error.message}; the guest was not resumed`,
          {
            details: { ...error.details, vm },
            cause: error,
          },
        )
      : error;
  });
  // The digest must be of the image QEMU loaded: refuse one that changed since preflight hashed it.
  if (digest.firmware.sha256 !== fw.sha256) {
    throw new SupervisorError(
      'SUP_ERR_FIRMWARE_HASH_MISMATCH',
      `VM ${vm}: the firmware ${fw.path} changed while the guest was starting (sha256 ${fw.sha256} at preflight, ` +
        `${digest.firmware.sha256} now); its launch digest cannot be known, so the guest was not resumed`,
      { details: { vm, path: fw.path, expected: fw.sha256, actual: digest.firmware.sha256 } },
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
