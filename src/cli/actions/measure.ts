// Implementation of `sevsup measure`, and the turning of launch-input options (with their aliases
// and the three ways to give a vCPU signature) into the owner's typed inputs, shared with verify.
// Owns: the output shapes of the digest (hex, base64, JSON). Must not: compute digests
// (attestation/inputs.ts does) or load anything heavy (no logger, no execa).
import { computeExpectedDigest, type ExpectedDigest } from '../../attestation/inputs.js';
import type { OwnerLaunchInputs } from '../../attestation/verify.js';
import { SupervisorError } from '../../errors.js';
import { decodeCpuSignature, requireCpuModel, type CpuSignatureParts } from '../../sev/cpu-models.js';
import { hex } from '../../sev/ovmf-table.js';
import type { LaunchInputCliOptions, MeasureCliOptions } from '../commands/measure.js';
import { referenceValueOptions } from './measure-rv-options.js';
import { printJson } from '../output.js';

export interface ResolvedLaunchOptions {
  readonly owner: OwnerLaunchInputs;
  /** How the vCPU signature was given ("EPYC-Milan", "--vcpu-sig 0xa00f11", …), or null. */
  readonly cpuSource: string | null;
  readonly vmsaInit: 'legacy' | 'init2';
  readonly sevFeatures: bigint;
}

/**
 * Merge aliases (`--ovmf`, `--append`, `--num-cpus`, `--cpu-*`) and resolve the vCPU signature.
 * @throws SUP_ERR_USAGE for an alias given with a different value than its option, a partial
 * family/model/stepping, more than one way of giving the signature, or an unknown --vcpu-type.
 */
export function resolveLaunchOptions(o: LaunchInputCliOptions): ResolvedLaunchOptions {
  const firmware = merge('--firmware', o.firmware, '--ovmf', o.ovmf);
  const cmdline = merge('--cmdline', o.cmdline, '--append', o.append);
  const vcpus = merge('--vcpus', o.vcpus, '--num-cpus', o.numCpus);
  const family = merge('--vcpu-family', o.vcpuFamily, '--cpu-family', o.cpuFamily);
  const model = merge('--vcpu-model', o.vcpuModel, '--cpu-model', o.cpuModel);
  const stepping = merge('--vcpu-stepping', o.vcpuStepping, '--cpu-stepping', o.cpuStepping);
  const partsGiven = [family, model, stepping].filter((v) => v !== undefined).length;
  if (partsGiven !== 0 && partsGiven !== 3) usage('--vcpu-family, --vcpu-model and --vcpu-stepping go together');
  const ways = [o.vcpuType !== undefined, o.vcpuSig !== undefined, partsGiven === 3].filter(Boolean).length;
  if (ways > 1) usage('give the vCPU signature one way: --vcpu-type, --vcpu-sig, or --vcpu-family/--vcpu-model/--vcpu-stepping');
  let cpu: CpuSignatureParts | undefined;
  let cpuSource: string | null = null;
  if (o.vcpuType !== undefined) {
    cpu = requireCpuModel(o.vcpuType);
    cpuSource = o.vcpuType;
  } else if (o.vcpuSig !== undefined) {
    cpu = decodeCpuSignature(o.vcpuSig);
    cpuSource = `--vcpu-sig ${hex(o.vcpuSig)}`;
  } else if (family !== undefined && model !== undefined && stepping !== undefined) {
    cpu = { family, model, stepping };
    cpuSource = 'family/model/stepping';
  }
  return {
    owner: {
      ...(firmware === undefined ? {} : { firmware }),
      ...(o.kernel === undefined ? {} : { kernel: o.kernel }),
      ...(o.initrd === undefined ? {} : { initrd: o.initrd }),
      ...(cmdline === undefined ? {} : { cmdline }),
      ...(vcpus === undefined ? {} : { vcpus }),
      ...(cpu === undefined ? {} : { cpu }),
    },
    cpuSource,
    vmsaInit: o.vmsaInit,
    sevFeatures: o.sevFeatures,
  };
}

function merge<T>(name: string, value: T | undefined, aliasName: string, alias: T | undefined): T | undefined {
  if (value !== undefined && alias !== undefined && value !== alias)
    usage(`${name} and its alias ${aliasName} were given different values`);
  return value ?? alias;
}

function usage(message: string): never {
  throw new SupervisorError('SUP_ERR_USAGE', message);
}

/** The JSON shape of a computed digest and everything that went into it (no secrets in it). */
export function digestReport(d: ExpectedDigest, cpuSource: string | null): Record<string, unknown> {
  const { table } = d.firmware;
  return {
    launchDigest: d.digest.toString('hex'),
    launchDigestBase64: d.digest.toString('base64'),
    firmware: {
      path: d.firmware.path,
      size: d.firmware.size,
      sha256: d.firmware.sha256,
      footerTable: table.found,
      sevResetAddress: table.sevResetAddress === null ? null : hex(table.sevResetAddress),
      kernelHashesArea: table.hashesArea === null ? null : { base: hex(table.hashesArea.base), size: hex(table.hashesArea.size) },
    },
    kernel: d.kernel,
    initrd: d.initrd,
    cmdline: d.cmdline,
    cmdlineSha256: d.cmdlineSha256,
    kernelHashesTable: d.kernelHashesTable?.toString('hex') ?? null,
    vmsa:
      d.vmsa === null
        ? null
        : {
            variant: d.vmsa.variant,
            vcpus: d.vmsa.vcpus,
            cpu: {
              family: d.vmsa.cpu.family,
              model: d.vmsa.cpu.model,
              stepping: d.vmsa.cpu.stepping,
              signature: hex(d.vmsa.cpu.signature),
              from: cpuSource,
            },
            sevFeatures: `0x${d.vmsa.sevFeatures.toString(16)}`,
            resetAddress: hex(d.vmsa.resetAddress),
            bspSha256: d.vmsa.bspSha256,
            apSha256: d.vmsa.apSha256,
          },
  };
}

/**
 * @throws SUP_ERR_USAGE for missing or contradictory options; the errors of computeExpectedDigest.
 */
export async function runMeasure(o: MeasureCliOptions): Promise<void> {
  if (o.mode === 'snp' || o.mode === 'snp:ovmf-hash') {
    const { runMeasureSnp } = await import('./measure-snp.js');
    await runMeasureSnp(o, resolveLaunchOptions(o));
    return;
  }
  const mode = o.mode === 'sev-es' ? 'seves' : o.mode;
  const snpOnly = referenceValueOptions(o).map(([flag]) => flag);
  if (o.referenceValues === true) snpOnly.unshift('--reference-values');
  if (snpOnly.length > 0) usage(`${snpOnly.join(', ')}: SNP reference values, only with --mode snp`);
  const r = resolveLaunchOptions(o);
  const { owner } = r;
  if (owner.firmware === undefined) usage('--firmware (or --ovmf) is required');
  if (mode === 'seves') {
    if (owner.vcpus === undefined) usage("missing --vcpus N in guest mode 'seves'");
    if (owner.cpu === undefined)
      usage("missing --vcpu-type, --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping in guest mode 'seves'");
  } else if (owner.vcpus !== undefined || owner.cpu !== undefined) {
    process.stderr.write('sevsup: note: --vcpus and the vCPU signature only count for --mode seves; ignored\n');
  }
  const digest = await computeExpectedDigest({
    firmware: owner.firmware,
    ...(owner.kernel === undefined ? {} : { kernel: owner.kernel }),
    ...(owner.initrd === undefined ? {} : { initrd: owner.initrd }),
    ...(owner.cmdline === undefined ? {} : { cmdline: owner.cmdline }),
    ...(mode === 'seves' && owner.vcpus !== undefined && owner.cpu !== undefined
      ? { sevEs: { vcpus: owner.vcpus, cpu: owner.cpu, vmsaInit: r.vmsaInit, sevFeatures: r.sevFeatures } }
      : {}),
  });
  if (o.json === true) printJson({ mode, ...digestReport(digest, r.cpuSource) });
  else process.stdout.write(`${digest.digest.toString(o.outputFormat)}\n`);
}
