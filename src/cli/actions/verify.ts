// Implementation of `sevsup verify`: gather the host-reported values (record or options), the
// owner's keys and inputs under the trust model, compute the expected digest, verify, report.
// Owns: the output shapes and the mapping of every failure to libvirt's exit codes (0 valid,
// 1 mismatch, 2 unsupported usage, 3 insecure, 4 bad config, 5 bad state), set on process.exitCode.
// Must not: decide validity (attestation/verify.ts), print TIK/TEK or MACs, or load heavy modules.
import { computeExpectedDigest, loadRecord, loadTransportKeys } from '../../attestation/inputs.js';
import {
  decodeReportedMeasurement,
  explainMismatch,
  isSevEsPolicy,
  selectLaunchInputs,
  verifyLaunch,
  type ReportedLaunch,
} from '../../attestation/verify.js';
import { SupervisorError } from '../../errors.js';
import { describePolicy } from '../../sev/policy.js';
import type { MeasurementRecord } from '../../vm/record.js';
import type { VerifyCliOptions } from '../commands/verify.js';
import { digestReport, resolveLaunchOptions } from './measure.js';
import { runVerifyWith, verifyExitCode, type VerifyReport } from './verify-output.js';

export { runVerifyWith, verifyExitCode, type VerifyReport };

/** States in which QEMU has a measurement (launch-secret with -S, running after cont). */
const MEASURED_STATES: readonly string[] = ['launch-secret', 'running'];

/** Runs the check and sets process.exitCode; rethrows only unexpected errors (exit 70). */
export async function runVerify(o: VerifyCliOptions): Promise<void> {
  await runVerifyWith(o, () => verify(o), verifyExitCode);
}

async function verify(o: VerifyCliOptions): Promise<VerifyReport> {
  checkUsage(o);
  const [record, keys] = await Promise.all([
    o.record === undefined ? Promise.resolve(null) : loadRecord(o.record),
    loadTransportKeys(
      {
        ...(o.tik === undefined ? {} : { tik: o.tik }),
        ...(o.tek === undefined ? {} : { tek: o.tek }),
        ...(o.tk === undefined ? {} : { tk: o.tk }),
      },
      { needTek: false },
    ),
  ]);
  if (record !== null && !MEASURED_STATES.includes(record.state)) {
    throw new SupervisorError(
      'SUP_ERR_VERIFY_STATE',
      `the record was captured in SEV state ${JSON.stringify(record.state)}, which has no launch measurement`,
      {
        details: { state: record.state },
      },
    );
  }
  const reported = reportedLaunch(o, record);
  decodeReportedMeasurement(reported.measurement); // fail on a malformed measurement before hashing files
  const sevEs = isSevEsPolicy(reported.policy);
  const resolved = resolveLaunchOptions(o);
  const selected = selectLaunchInputs({ owner: resolved.owner, record, useRecordInputs: o.useRecordInputs === true, sevEs });
  const warnings = [...selected.insecure.map((line) => `insecure: ${line}`)];
  if (!sevEs && (resolved.owner.vcpus !== undefined || resolved.owner.cpu !== undefined)) {
    warnings.push('the policy is not SEV-ES: --vcpus and the vCPU signature were ignored');
  }
  if (record?.platform === 'simulated') warnings.push('the record comes from the simulated SEV platform: not a security boundary');
  if (o.quiet !== true) for (const w of warnings) process.stderr.write(`sevsup: WARNING: ${w}\n`);

  const digest = await computeExpectedDigest({
    firmware: selected.firmware,
    ...(selected.kernel === undefined ? {} : { kernel: selected.kernel }),
    ...(selected.initrd === undefined ? {} : { initrd: selected.initrd }),
    ...(selected.cmdline === undefined ? {} : { cmdline: selected.cmdline }),
    ...(sevEs && selected.vcpus !== undefined && selected.cpu !== undefined
      ? { sevEs: { vcpus: selected.vcpus, cpu: selected.cpu, vmsaInit: resolved.vmsaInit, sevFeatures: resolved.sevFeatures } }
      : {}),
  });
  const outcome = verifyLaunch({
    reported,
    tik: keys.tik,
    launchDigest: digest.digest,
    checks: {
      ...(o.expectedPolicy === undefined ? {} : { expectedPolicy: o.expectedPolicy }),
      ...(o.minApi === undefined ? {} : { minApi: o.minApi }),
      ...(o.allowedBuildId === undefined ? {} : { allowedBuildIds: o.allowedBuildId }),
    },
  });
  const macOk = outcome.checks.find((c) => c.name === 'measurement')?.ok === true;
  const hints = macOk
    ? []
    : explainMismatch(
        {
          firmwareSha256: digest.firmware.sha256,
          kernelSha256: digest.kernel?.sha256 ?? null,
          initrdSha256: digest.initrd?.sha256 ?? null,
          cmdline: digest.cmdline,
          vcpus: digest.vmsa?.vcpus ?? null,
          sevEs,
          vmsaInit: sevEs ? resolved.vmsaInit : null,
          sevFeatures: sevEs ? resolved.sevFeatures : null,
        },
        record,
      );
  const kind = sevEs ? 'SEV-ES' : 'SEV';
  const vcpuText =
    digest.vmsa === null
      ? ''
      : `, ${digest.vmsa.vcpus} vCPU${digest.vmsa.vcpus === 1 ? '' : 's'} (${resolved.cpuSource ?? 'from the record'}, ${digest.vmsa.variant} VMSAs)`;
  const summary = `${kind}, policy ${describePolicy(reported.policy)}, SEV API ${reported.apiMajor}.${reported.apiMinor} build ${reported.buildId}${vcpuText}`;
  const lines = outcome.valid
    ? [
        `OK: ${outcome.checks[0]?.message ?? ''}: ${summary}`,
        ...outcome.checks.slice(1).map((c) => `OK: ${c.message}`),
        `launch digest: ${digest.digest.toString('hex')}`,
      ]
    : [];
  const problems = outcome.valid
    ? []
    : [
        ...outcome.checks.filter((c) => !c.ok).map((c) => `ERROR: ${c.message}`),
        `(${summary}; launch digest of your inputs ${digest.digest.toString('hex')})`,
        ...hints.map((h) => `hint: ${h}`),
      ];
  return {
    exitCode: outcome.exitCode,
    lines,
    problems,
    json: {
      valid: outcome.valid,
      exitCode: outcome.exitCode,
      sevType: sevEs ? 'sev-es' : 'sev',
      reported: { ...reported, policyText: describePolicy(reported.policy), from: record === null ? 'command line' : o.record },
      platform: record?.platform ?? null,
      checks: outcome.checks,
      sources: selected.sources,
      warnings,
      hints,
      ...digestReport(digest, resolved.cpuSource),
    },
  };
}

/** Host-reported values come from a record or from all five options, never a mix. */
function checkUsage(o: VerifyCliOptions): void {
  // The SNP digest options (defaults 0x1 and QEMU) have no meaning for an SEV measurement: refuse, never ignore.
  const snpOnly = [
    ...(o.snpOvmfHash === undefined ? [] : ['--snp-ovmf-hash']),
    ...((o.guestFeatures ?? 1n) === 1n ? [] : ['--guest-features']),
    ...((o.vmmType ?? 'QEMU') === 'QEMU' ? [] : ['--vmm-type']),
  ];
  if (snpOnly.length > 0)
    throw new SupervisorError(
      'SUP_ERR_VERIFY_UNSUPPORTED',
      `${snpOnly.join(', ')}: for SNP attestation reports (--report), not SEV measurements`,
    );
  const given = (
    [
      ['--measurement', o.measurement],
      ['--api-major', o.apiMajor],
      ['--api-minor', o.apiMinor],
      ['--build-id', o.buildId],
      ['--policy', o.policy],
    ] as const
  ).map(([flag, value]) => ({ flag, given: value !== undefined }));
  if (o.record !== undefined) {
    const clash = given.filter((g) => g.given).map((g) => g.flag);
    if (clash.length > 0) {
      throw new SupervisorError(
        'SUP_ERR_VERIFY_UNSUPPORTED',
        `--record and ${clash.join(', ')} exclude each other: the record carries the host-reported values`,
      );
    }
    return;
  }
  const missing = given.find((g) => !g.given);
  if (missing !== undefined) throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `either ${missing.flag} or --record is required`);
}

function reportedLaunch(o: VerifyCliOptions, record: MeasurementRecord | null): ReportedLaunch {
  if (record !== null) {
    return {
      measurement: record.measurement,
      apiMajor: record.apiMajor,
      apiMinor: record.apiMinor,
      buildId: record.buildId,
      policy: record.policy,
    };
  }
  if (
    o.measurement === undefined ||
    o.apiMajor === undefined ||
    o.apiMinor === undefined ||
    o.buildId === undefined ||
    o.policy === undefined
  ) {
    throw new SupervisorError('SUP_ERR_INTERNAL', 'checkUsage let incomplete host values through');
  }
  return { measurement: o.measurement, apiMajor: o.apiMajor, apiMinor: o.apiMinor, buildId: o.buildId, policy: o.policy };
}
