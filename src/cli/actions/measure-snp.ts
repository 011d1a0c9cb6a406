// `sevsup measure --mode snp` and `--mode snp:ovmf-hash`: sev-snp-measure's SNP modes.
// Owns: their option rules and output shapes (hex, base64, JSON). Must not: compute digests
// (attestation/snp-inputs.ts and sev/snp-launch-digest.ts do) or load anything heavy.
import { computeSnpExpectedDigest, readSnpFirmware, type SnpExpectedDigest } from '../../attestation/snp-inputs.js';
import { SupervisorError } from '../../errors.js';
import { hex } from '../../sev/ovmf-table.js';
import { snpFirmwareDigest } from '../../sev/snp-launch-digest.js';
import { snpSectionLabel } from '../../sev/snp-metadata.js';
import { cpuSignature } from '../../sev/vmsa.js';
import { snpLaunchReferenceValues, type SnpReferenceValues } from '../../attestation/snp-reference-values.js';
import { formatSnpPolicy, QEMU_DEFAULT_SNP_POLICY, snpPolicyAllowsDebug, snpPolicyProblems } from '../../sev/snp-policy.js';
import type { MeasureCliOptions, SnpDigestCliOptions } from '../commands/measure.js';
import { printJson } from '../output.js';
import type { ResolvedLaunchOptions } from './measure.js';
import { referenceValueOptions } from './measure-rv-options.js';

function usage(message: string): never {
  throw new SupervisorError('SUP_ERR_USAGE', message);
}

/**
 * The expected SNP launch digest from the launch-input options (sev-snp-measure's rules).
 * @throws SUP_ERR_USAGE for missing options; the errors of computeSnpExpectedDigest.
 */
export async function snpDigestFromOptions(
  o: SnpDigestCliOptions,
  r: ResolvedLaunchOptions,
): Promise<SnpExpectedDigest & { vcpuSignature: number }> {
  const { owner } = r;
  if (owner.firmware === undefined) usage('--firmware (or --ovmf) is required');
  if (owner.vcpus === undefined) usage("missing --vcpus N in guest mode 'snp'");
  if (owner.cpu === undefined && o.vmmType === 'QEMU') {
    usage("missing --vcpu-type, --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping in guest mode 'snp' with --vmm-type QEMU");
  }
  let firmwareDigest: Buffer | undefined;
  if (o.snpOvmfHash !== undefined) {
    if (!/^[0-9a-fA-F]{96}$/.test(o.snpOvmfHash)) usage('--snp-ovmf-hash takes the 96 hex digits --mode snp:ovmf-hash prints');
    firmwareDigest = Buffer.from(o.snpOvmfHash, 'hex');
  }
  const vcpuSignature = owner.cpu === undefined ? 0 : cpuSignature(owner.cpu.family, owner.cpu.model, owner.cpu.stepping);
  const d = await computeSnpExpectedDigest({
    firmware: owner.firmware,
    ...(owner.kernel === undefined ? {} : { kernel: owner.kernel }),
    ...(owner.initrd === undefined ? {} : { initrd: owner.initrd }),
    ...(owner.cmdline === undefined ? {} : { cmdline: owner.cmdline }),
    vcpus: owner.vcpus,
    vcpuSignature,
    guestFeatures: o.guestFeatures,
    vmmType: o.vmmType,
    ...(firmwareDigest === undefined ? {} : { firmwareDigest }),
  });
  return { ...d, vcpuSignature };
}

/**
 * @throws SUP_ERR_USAGE for missing or contradictory options; the errors of computeSnpExpectedDigest
 *   (SUP_ERR_VERIFY_UNSUPPORTED lists every reason QEMU would refuse the inputs).
 */
export async function runMeasureSnp(o: MeasureCliOptions, r: ResolvedLaunchOptions): Promise<void> {
  const { owner } = r;
  if (owner.firmware === undefined) usage('--firmware (or --ovmf) is required');
  const rvOptions = referenceValueOptions(o).map(([flag]) => flag);
  if (o.referenceValues !== true && rvOptions.length > 0)
    usage(`${rvOptions.join(', ')} ${rvOptions.length === 1 ? 'goes' : 'go'} with --reference-values`);
  if (o.referenceValues === true && (o.mode === 'snp:ovmf-hash' || o.json === true))
    usage('--reference-values prints JSON of its own: not with --json or --mode snp:ovmf-hash');
  if (o.mode === 'snp:ovmf-hash') {
    const fw = await readSnpFirmware(owner.firmware);
    const digest = snpFirmwareDigest(fw.bytes);
    if (o.json === true)
      printJson({ mode: o.mode, firmwareDigest: digest.toString('hex'), firmware: { path: fw.path, size: fw.size, sha256: fw.sha256 } });
    else process.stdout.write(`${digest.toString(o.outputFormat)}\n`);
    return;
  }
  const d = await snpDigestFromOptions(o, r);
  if (o.referenceValues === true) {
    printJson(referenceValuesOf(o, d, owner.vcpus ?? null));
    return;
  }
  if (o.json !== true) {
    process.stdout.write(`${d.digest.toString(o.outputFormat)}\n`);
    return;
  }
  const { table, metadata } = d.firmware;
  printJson({
    mode: 'snp',
    launchDigest: d.digest.toString('hex'),
    launchDigestBase64: d.digest.toString('base64'),
    firmwareDigest: d.firmwareDigest.toString('hex'),
    firmwareDigestGiven: d.firmwareDigestGiven,
    firmware: {
      path: d.firmware.path,
      size: d.firmware.size,
      sha256: d.firmware.sha256,
      sevResetAddress: table.sevResetAddress === null ? null : hex(table.sevResetAddress),
      kernelHashesArea: table.hashesArea === null ? null : { base: hex(table.hashesArea.base), size: hex(table.hashesArea.size) },
      snpSections:
        metadata.status === 'found'
          ? metadata.sections.map((s) => ({ type: snpSectionLabel(s.type), gpa: hex(s.gpa), size: hex(s.size) }))
          : [],
    },
    kernel: d.kernel,
    initrd: d.initrd,
    cmdline: d.cmdline,
    kernelHashesTable: d.kernelHashesTable?.toString('hex') ?? null,
    vcpus: owner.vcpus ?? null,
    vcpuSignature: hex(d.vcpuSignature),
    vcpuFrom: r.cpuSource,
    guestFeatures: `0x${o.guestFeatures.toString(16)}`,
    vmmType: o.vmmType,
  });
}

/**
 * The reference values for these inputs and the policy, host-data, key-digest and minimum options.
 * @throws SUP_ERR_USAGE for a policy sevsup would refuse to launch (the reasons listed).
 */
function referenceValuesOf(
  o: MeasureCliOptions,
  d: SnpExpectedDigest & { vcpuSignature: number },
  vcpus: number | null,
): SnpReferenceValues {
  const policy = o.policy ?? QEMU_DEFAULT_SNP_POLICY;
  const problems = snpPolicyProblems(policy);
  if (problems.length > 0) usage(`--policy ${formatSnpPolicy(policy)}: ${problems.join('; ')}`);
  if (snpPolicyAllowsDebug(policy))
    process.stderr.write(
      `sevsup: warning: policy ${formatSnpPolicy(policy)} allows debugging: a verifier loading these values accepts a guest the host can read\n`,
    );
  const t = o.minTcb;
  return snpLaunchReferenceValues(
    { digest: d, vcpus, vcpuSignature: d.vcpuSignature, guestFeatures: o.guestFeatures, vmmType: o.vmmType },
    {
      policy,
      ...(o.hostData === undefined ? {} : { hostData: o.hostData }),
      ...(o.idKeyDigest === undefined ? {} : { idKeyDigest: o.idKeyDigest }),
      ...(o.authorKeyDigest === undefined ? {} : { authorKeyDigest: o.authorKeyDigest }),
      ...(t === undefined
        ? {}
        : {
            minTcb: {
              bootloader: t.bootloader ?? 0,
              tee: t.tee ?? 0,
              snp: t.snp ?? 0,
              microcode: t.microcode ?? 0,
              ...(t.fmc === undefined ? {} : { fmc: t.fmc }),
            },
          }),
      ...(o.minGuestSvn === undefined ? {} : { minGuestSvn: o.minGuestSvn }),
      ...(o.vmpl === undefined ? {} : { vmpl: o.vmpl }),
    },
  );
}
