// The guest owner's offline verification of an SEV / SEV-ES launch measurement. Pure: no I/O.
//
// Trust model (libvirt's virt-qemu-sev-validate's, kept verbatim in spirit):
//  - From the host, untrusted but bound by the HMAC under the owner's TIK, we accept only: the
//    measurement, the policy (also sealed in the owner's launch session blob), and the SEV API
//    version and build id (they matter only if the owner wants to exclude firmware versions:
//    --min-api, --allowed-build-id).
//  - From the owner, never from the host: the firmware image, kernel, initrd, cmdline, vCPU count
//    and vCPU signature. A measurement record's launch inputs are the host's word; they are used
//    only when the owner passes --use-record-inputs, and the result then says it is insecure.
//  - The TIK/TEK must be fresh for every launch (sevctl session): reusing them is insecure.
// A valid measurement proves the platform launched exactly these inputs with this policy; it says
// nothing about what the guest does next. Owns: that decision, the choice of where each input
// comes from, and the hints shown when the MAC differs. Must not: read files, log, or return MACs
// or key bytes (only the launch digest, which is public).
import { SupervisorError } from '../errors.js';
import { cpuModelSignature, type CpuSignatureParts } from '../sev/cpu-models.js';
import { computeMeasurementMac, decodeMeasurement, macEquals } from '../sev/measurement.js';
import { formatPolicy, POLICY_BITS } from '../sev/policy.js';
import type { MeasurementRecord } from '../vm/record.js';

/** What the host reports (query-sev, query-sev-launch-measure): the only host values we use. */
export interface ReportedLaunch {
  /** base64 of HMAC (32) ‖ mnonce (16), as QEMU returned it. */
  readonly measurement: string;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
  readonly policy: number;
}

/** The owner's optional conditions on host-reported values (simple-kbs' policy lists). */
export interface OwnerChecks {
  readonly expectedPolicy?: number;
  readonly minApi?: { readonly major: number; readonly minor: number };
  readonly allowedBuildIds?: readonly number[];
}

export type CheckName = 'measurement' | 'policy' | 'api-version' | 'build-id';

export interface CheckResult {
  readonly name: CheckName;
  readonly ok: boolean;
  readonly message: string;
}

export interface VerifyOutcome {
  /** True only when the MAC matches and every owner check passes. */
  readonly valid: boolean;
  /** libvirt's exit codes: 0 valid, 1 not trustworthy. */
  readonly exitCode: 0 | 1;
  readonly checks: readonly CheckResult[];
}

/** True when the policy asks for SEV-ES (bit 2): VMSAs are then part of the launch digest. */
export function isSevEsPolicy(policy: number): boolean {
  return (policy & POLICY_BITS.ES) !== 0;
}

/**
 * Compare the reported measurement with HMAC(TIK, 0x04 ‖ api ‖ build ‖ policy ‖ digest ‖ mnonce)
 * in constant time, then apply the owner's checks.
 * @throws SUP_ERR_VERIFY_UNSUPPORTED for a measurement that is not base64 of 48 bytes, a TIK not
 * 16 bytes, or reported values outside their field sizes.
 */
export function verifyLaunch(i: { reported: ReportedLaunch; tik: Buffer; launchDigest: Buffer; checks?: OwnerChecks }): VerifyOutcome {
  const { reported } = i;
  const { mac, mnonce } = decodeReportedMeasurement(reported.measurement);
  const expected = computeMeasurementMac({
    tik: i.tik,
    ...pickPlatform(reported),
    policy: reported.policy,
    digest: i.launchDigest,
    mnonce,
  });
  const matches = macEquals(expected, mac);
  const results: CheckResult[] = [
    {
      name: 'measurement',
      ok: matches,
      message: matches
        ? 'the measurement matches the launch digest of your inputs'
        : 'the measurement does not match: the VM is not trustworthy (different inputs, policy, platform or TIK)',
    },
  ];
  results.push(...ownerChecks(reported, i.checks ?? {}));
  const valid = results.every((r) => r.ok);
  return { valid, exitCode: valid ? 0 : 1, checks: results };
}

/**
 * Split a reported measurement into MAC and mnonce.
 * @throws SUP_ERR_VERIFY_UNSUPPORTED (not strict base64, or not 48 bytes).
 */
export function decodeReportedMeasurement(measurement: string): { mac: Buffer; mnonce: Buffer } {
  try {
    return decodeMeasurement(measurement);
  } catch (error: unknown) {
    const message = error instanceof Error ? error.message : String(error);
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `--measurement: ${message}`, { cause: error });
  }
}

function pickPlatform(r: ReportedLaunch): { apiMajor: number; apiMinor: number; buildId: number } {
  return { apiMajor: r.apiMajor, apiMinor: r.apiMinor, buildId: r.buildId };
}

function ownerChecks(r: ReportedLaunch, c: OwnerChecks): CheckResult[] {
  const out: CheckResult[] = [];
  if (c.expectedPolicy !== undefined) {
    const ok = r.policy === c.expectedPolicy;
    out.push({
      name: 'policy',
      ok,
      message: ok
        ? `policy ${formatPolicy(r.policy)} is the expected one`
        : `policy ${formatPolicy(r.policy)} is not the expected ${formatPolicy(c.expectedPolicy)}`,
    });
  }
  if (c.minApi !== undefined) {
    const { major, minor } = c.minApi;
    const ok = r.apiMajor > major || (r.apiMajor === major && r.apiMinor >= minor);
    out.push({
      name: 'api-version',
      ok,
      message: `SEV API ${r.apiMajor}.${r.apiMinor} ${ok ? 'is at least' : 'is older than'} ${major}.${minor}`,
    });
  }
  if (c.allowedBuildIds !== undefined && c.allowedBuildIds.length > 0) {
    const ok = c.allowedBuildIds.includes(r.buildId);
    out.push({
      name: 'build-id',
      ok,
      message: `build id ${r.buildId} is ${ok ? '' : 'not '}one of the allowed ${c.allowedBuildIds.join(', ')}`,
    });
  }
  return out;
}

// Section: where each launch input comes from ------------------------------------------------------

export type InputName = 'firmware' | 'kernel' | 'initrd' | 'cmdline' | 'vcpus' | 'cpu';
export type InputSource = 'owner' | 'record';

/** Launch inputs as the owner gave them on the command line (all optional here). */
export interface OwnerLaunchInputs {
  readonly firmware?: string;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  readonly vcpus?: number;
  readonly cpu?: CpuSignatureParts;
}

export interface SelectedLaunchInputs {
  readonly firmware: string;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  /** Present for SEV-ES only. */
  readonly vcpus?: number;
  readonly cpu?: CpuSignatureParts;
  readonly sources: Readonly<Partial<Record<InputName, InputSource>>>;
  /** One line per input taken from the host's record (insecure). */
  readonly insecure: readonly string[];
}

/**
 * Decide each launch input's source under the trust model: the owner's value when given; the
 * record's only with `useRecordInputs` (and then listed as insecure); otherwise a refusal.
 * @throws SUP_ERR_VERIFY_INSECURE when an input the record names is missing from the owner's and
 * `useRecordInputs` is off; SUP_ERR_VERIFY_UNSUPPORTED when a required input is missing and no
 * record names it (or `useRecordInputs` without a record); SUP_ERR_VERIFY_CONFIG when the
 * record cannot supply what was asked of it.
 */
export function selectLaunchInputs(o: {
  owner: OwnerLaunchInputs;
  record: MeasurementRecord | null;
  useRecordInputs: boolean;
  sevEs: boolean;
}): SelectedLaunchInputs {
  const { owner, record } = o;
  if (o.useRecordInputs && record === null) {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', '--use-record-inputs needs --record');
  }
  const launch = record?.launch ?? null;
  const sources: Partial<Record<InputName, InputSource>> = {};
  const insecure: string[] = [];
  const fromRecord = <T>(name: InputName, flag: string, value: T, what: string): T => {
    if (!o.useRecordInputs) {
      throw new SupervisorError(
        'SUP_ERR_VERIFY_INSECURE',
        `using the ${what} from the measurement record is not secure (the host wrote it): give ${flag}, ` +
          "or pass --use-record-inputs to accept the host's word",
        { details: { input: name } },
      );
    }
    sources[name] = 'record';
    insecure.push(`${name}: ${what} taken from the host's measurement record`);
    return value;
  };

  let firmware = owner.firmware;
  if (firmware !== undefined) sources.firmware = 'owner';
  else if (launch?.firmware) firmware = fromRecord('firmware', '--firmware', launch.firmware.path, `firmware path ${launch.firmware.path}`);
  else throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', '--firmware is required');

  // The record's kernel, initrd and cmdline were measured only with kernel-hashes.
  const measured = launch?.kernelHashes === true && launch.kernel !== null;
  let kernel = owner.kernel;
  let initrd = owner.initrd;
  let cmdline = owner.cmdline;
  if (kernel !== undefined) sources.kernel = 'owner';
  else if (measured && launch.kernel !== null)
    kernel = fromRecord('kernel', '--kernel', launch.kernel.path, `kernel path ${launch.kernel.path}`);
  if (kernel !== undefined) {
    if (initrd !== undefined) sources.initrd = 'owner';
    else if (measured && launch.initrd !== null)
      initrd = fromRecord('initrd', '--initrd', launch.initrd.path, `initrd path ${launch.initrd.path}`);
    if (cmdline !== undefined) sources.cmdline = 'owner';
    else if (measured && launch.cmdline !== null && launch.cmdline !== '')
      cmdline = fromRecord('cmdline', '--cmdline', launch.cmdline, 'kernel command line');
  }

  let vcpus: number | undefined;
  let cpu: CpuSignatureParts | undefined;
  if (o.sevEs) {
    vcpus = owner.vcpus;
    if (vcpus !== undefined) sources.vcpus = 'owner';
    else if (launch !== null) vcpus = fromRecord('vcpus', '--vcpus', launch.vcpus, `vCPU count (${launch.vcpus})`);
    else throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', 'the policy asks for SEV-ES: give the number of vCPUs (--vcpus)');
    cpu = owner.cpu;
    if (cpu !== undefined) sources.cpu = 'owner';
    else if (record !== null) {
      const fromHost = recordCpuSignature(record);
      if (fromHost === null && o.useRecordInputs) {
        throw new SupervisorError(
          'SUP_ERR_VERIFY_CONFIG',
          `the record gives no vCPU signature for CPU model ${JSON.stringify(record.launch.cpuModel)}: give --vcpu-type or --vcpu-family/--vcpu-model/--vcpu-stepping`,
        );
      }
      cpu = fromRecord(
        'cpu',
        '--vcpu-type (or --vcpu-family/--vcpu-model/--vcpu-stepping)',
        fromHost ?? undefined,
        `vCPU signature (CPU model ${record.launch.cpuModel})`,
      );
    } else {
      throw new SupervisorError(
        'SUP_ERR_VERIFY_UNSUPPORTED',
        'the policy asks for SEV-ES: give the vCPU signature (--vcpu-type, --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping)',
      );
    }
  }
  return {
    firmware,
    ...(kernel === undefined ? {} : { kernel }),
    ...(initrd === undefined ? {} : { initrd }),
    ...(cmdline === undefined ? {} : { cmdline }),
    ...(vcpus === undefined ? {} : { vcpus }),
    ...(cpu === undefined ? {} : { cpu }),
    sources,
    insecure,
  };
}

/** The vCPU signature a record states: its validator arguments, else its CPU model's. */
export function recordCpuSignature(record: MeasurementRecord): CpuSignatureParts | null {
  const arg = (flag: string): number | null => {
    const at = record.validateArgs.indexOf(flag);
    const text = at < 0 ? undefined : record.validateArgs[at + 1];
    return text !== undefined && /^\d+$/.test(text) ? Number(text) : null;
  };
  const family = arg('--cpu-family');
  const model = arg('--cpu-model');
  const stepping = arg('--cpu-stepping');
  if (family !== null && model !== null && stepping !== null) return { family, model, stepping };
  return cpuModelSignature(record.launch.cpuModel);
}

// Section: hints when the MAC differs ---------------------------------------------------------------

/** What the owner computed with, for comparison with what the host's record says it launched. */
export interface ComputedWith {
  readonly firmwareSha256: string;
  readonly kernelSha256: string | null;
  readonly initrdSha256: string | null;
  readonly cmdline: string | null;
  readonly vcpus: number | null;
  readonly sevEs: boolean;
  readonly vmsaInit: 'legacy' | 'init2' | null;
  readonly sevFeatures: bigint | null;
}

/**
 * Likely reasons for a mismatch, for people. The record is the host's word, so these are hints,
 * never verdicts: a matching record proves nothing, a differing one points where to look.
 */
export function explainMismatch(c: ComputedWith, record: MeasurementRecord | null): string[] {
  const hints: string[] = [];
  const launch = record?.launch ?? null;
  if (launch !== null) {
    const differs = (what: string, ours: string | null, theirs: string | null): void => {
      if (ours !== theirs) hints.push(`the record says the host launched ${what} ${theirs ?? 'none'}, you computed with ${ours ?? 'none'}`);
    };
    differs('firmware sha256', c.firmwareSha256, launch.firmware?.sha256 ?? null);
    const measured = launch.kernelHashes && launch.kernel !== null;
    differs('kernel sha256', c.kernelSha256, measured ? (launch.kernel?.sha256 ?? null) : null);
    differs('initrd sha256', c.initrdSha256, measured ? (launch.initrd?.sha256 ?? null) : null);
    if (c.kernelSha256 !== null && measured && (c.cmdline ?? '') !== (launch.cmdline ?? '')) {
      hints.push(
        `the record's kernel command line ${JSON.stringify(launch.cmdline ?? '')} differs from yours ${JSON.stringify(c.cmdline ?? '')}`,
      );
    }
    if (c.sevEs && c.vcpus !== null && c.vcpus !== launch.vcpus)
      hints.push(`the record says ${launch.vcpus} vCPUs, you computed with ${c.vcpus}`);
    if (record?.platform === 'simulated') hints.push("the record comes from the simulated platform: use the simulator's TIK");
  }
  if (c.sevEs) {
    if (c.vmsaInit === 'legacy') {
      hints.push(
        'SEV-ES: hosts that create the guest with KVM_SEV_INIT2 (Linux >= 6.10 with QEMU legacy-vm-type=off) measure other VMSAs: try --vmsa-init init2',
      );
    } else {
      hints.push('SEV-ES: QEMU 7.2 to 10.x use KVM_SEV_ES_INIT by default: try --vmsa-init legacy');
    }
    if (c.sevFeatures === 0n) hints.push('SEV-ES: some host kernels set DebugSwap in the VMSA: try --sev-features 0x20');
  }
  hints.push("check the TIK is the one of this launch's session (a fresh TIK/TEK per launch)");
  return hints;
}
