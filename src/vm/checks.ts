// The fail-closed checks on what QEMU reports after spawn (DESIGN "Fail closed"; facts §10.2;
// snp-facts §1.4 for SEV-SNP).
// Owns: deciding whether `query-sev` / `query-sev-launch-measure` answers prove the guest is the SEV
// (or SEV-SNP) guest the config asked for, and the coded error that says which check failed, what was seen and
// what was expected. Pure: no I/O. Must not: stop QEMU (lifecycle.ts does, and never resumes after
// any of these throws).
import { SupervisorError } from '../errors.js';
import { describePolicy } from '../sev/policy.js';
import { describeSnpPolicy, formatSnpPolicy } from '../sev/snp-policy.js';
import { MEASUREMENT_BLOB_BYTES as MEASUREMENT_BYTES, splitMeasurement, type MeasurementParts } from '../sev/measurement.js';

/** The subset of qmp/commands' SevInfo union the checks read. */
export type ReportedSev =
  | {
      readonly enabled: boolean;
      readonly state: string;
      /** null: QEMU before 9.1 (flat reply without `sev-type`). */
      readonly sevType: null | 'sev';
      readonly policy: number;
    }
  | { readonly enabled: boolean; readonly state: string; readonly sevType: 'sev-snp'; readonly snpPolicy: bigint };

/** A reply of the SEV / SEV-ES shape. */
export type ReportedLegacySev = Extract<ReportedSev, { readonly policy: number }>;

export interface ExpectedSev {
  readonly policy: number;
}

/**
 * Refuse any answer that is not an enabled SEV guest with exactly the expected policy, still
 * paused in `launch-secret` (facts §3.2: with -S the measurement is ready before QMP answers).
 * @throws SUP_ERR_CHECK_SEV_DISABLED, SUP_ERR_CHECK_SEV_TYPE_MISMATCH, SUP_ERR_CHECK_POLICY_MISMATCH, SUP_ERR_CHECK_STATE
 */
export function checkSevInfo(vm: string, seen: ReportedSev, expected: ExpectedSev): asserts seen is ReportedLegacySev {
  const want = describePolicy(expected.policy);
  if (!seen.enabled) {
    throw fail(
      'SUP_ERR_CHECK_SEV_DISABLED',
      vm,
      `QEMU reports SEV is not enabled (query-sev: enabled false), expected an SEV guest with policy ${want}`,
      {
        check: 'enabled',
        seen: false,
        expected: true,
      },
    );
  }
  if (seen.sevType === 'sev-snp') {
    throw fail('SUP_ERR_CHECK_SEV_TYPE_MISMATCH', vm, `QEMU reports sev-type ${seen.sevType}, expected sev`, {
      check: 'sev-type',
      seen: seen.sevType,
      expected: 'sev',
    });
  }
  if (seen.policy !== expected.policy) {
    throw fail(
      'SUP_ERR_CHECK_POLICY_MISMATCH',
      vm,
      `QEMU applied SEV policy ${safeDescribe(seen.policy)}, but the config asks for ${want}`,
      {
        check: 'policy',
        seen: seen.policy,
        expected: expected.policy,
      },
    );
  }
  if (seen.state !== 'launch-secret') {
    throw fail('SUP_ERR_CHECK_STATE', vm, `SEV state is ${seen.state}, expected launch-secret: ${stateHint(seen.state)}`, {
      check: 'state',
      seen: seen.state,
      expected: 'launch-secret',
    });
  }
}

/**
 * Refuse any answer that is not an enabled SEV-SNP guest with exactly the expected 64-bit policy,
 * still in `launch-update`: SNP has no launch-secret state, and everything is measured at the first
 * run, so before `cont` the launch must not have gone further (snp-facts §1.2, §1.4).
 * @throws SUP_ERR_CHECK_SEV_DISABLED, SUP_ERR_CHECK_SEV_TYPE_MISMATCH, SUP_ERR_CHECK_POLICY_MISMATCH, SUP_ERR_CHECK_STATE
 */
export function checkSnpInfo(
  vm: string,
  seen: ReportedSev,
  expected: { readonly policy: bigint },
): asserts seen is Extract<ReportedSev, { readonly sevType: 'sev-snp' }> {
  const want = describeSnpPolicy(expected.policy);
  if (!seen.enabled) {
    throw fail(
      'SUP_ERR_CHECK_SEV_DISABLED',
      vm,
      `QEMU reports SEV is not enabled (query-sev: enabled false), expected an SEV-SNP guest with policy ${want}`,
      { check: 'enabled', seen: false, expected: true },
    );
  }
  if (seen.sevType !== 'sev-snp') {
    const what = seen.sevType === null ? 'the QEMU 7.2 reply (no sev-type: plain SEV or SEV-ES)' : 'sev-type sev (SEV or SEV-ES)';
    throw fail('SUP_ERR_CHECK_SEV_TYPE_MISMATCH', vm, `QEMU reports ${what}, expected sev-snp`, {
      check: 'sev-type',
      seen: seen.sevType,
      expected: 'sev-snp',
    });
  }
  if (seen.snpPolicy !== expected.policy) {
    // Hex strings in details: a bigint is not JSON.
    throw fail(
      'SUP_ERR_CHECK_POLICY_MISMATCH',
      vm,
      `QEMU applied SEV-SNP policy ${describeSnpPolicy(seen.snpPolicy)}, but the config asks for ${want}`,
      { check: 'policy', seen: formatSnpPolicy(seen.snpPolicy), expected: formatSnpPolicy(expected.policy) },
    );
  }
  if (seen.state !== 'launch-update') {
    throw fail('SUP_ERR_CHECK_STATE', vm, `SEV-SNP state is ${seen.state}, expected launch-update: ${snpStateHint(seen.state)}`, {
      check: 'state',
      seen: seen.state,
      expected: 'launch-update',
    });
  }
}

function snpStateHint(state: string): string {
  switch (state) {
    case 'running':
      return 'the guest has already run, so its launch was finished without sevsup (was QEMU started without -S?)';
    case 'uninit':
      return 'the SEV-SNP launch never started';
    default:
      return 'an SEV-SNP guest waits in launch-update until its first run';
  }
}

/**
 * The measurement must be strict base64 of exactly 48 bytes; returns its MAC and mnonce.
 * @throws SUP_ERR_CHECK_MEASUREMENT
 */
export function checkMeasurement(vm: string, measurement: unknown): MeasurementParts {
  if (typeof measurement !== 'string' || measurement.length === 0) {
    throw fail('SUP_ERR_CHECK_MEASUREMENT', vm, `QEMU returned no launch measurement, expected base64 of ${MEASUREMENT_BYTES} bytes`, {
      check: 'measurement',
      expected: `${MEASUREMENT_BYTES} bytes`,
    });
  }
  const parts = splitMeasurement(measurement);
  if (!('problem' in parts)) return parts;
  if (parts.problem === 'not-base64') {
    throw fail(
      'SUP_ERR_CHECK_MEASUREMENT',
      vm,
      `the launch measurement QEMU returned is not base64 (${measurement.length} characters), expected base64 of ${MEASUREMENT_BYTES} bytes`,
      {
        check: 'measurement',
        seen: `${measurement.length} characters`,
        expected: `${MEASUREMENT_BYTES} bytes`,
      },
    );
  }
  throw fail(
    'SUP_ERR_CHECK_MEASUREMENT',
    vm,
    `the launch measurement QEMU returned is ${parts.bytes} bytes, expected ${MEASUREMENT_BYTES}`,
    {
      check: 'measurement',
      seen: `${parts.bytes} bytes`,
      expected: `${MEASUREMENT_BYTES} bytes`,
    },
  );
}

function stateHint(state: string): string {
  switch (state) {
    case 'launch-update':
      return 'LAUNCH_MEASURE failed, so there is no measurement (QEMU logs the firmware error on its stderr)';
    case 'uninit':
      return 'the SEV launch never started';
    case 'running':
      return 'the guest has already run (was QEMU started without -S?)';
    default:
      return 'the guest is not waiting for its launch secret';
  }
}

function safeDescribe(policy: number): string {
  try {
    return describePolicy(policy);
  } catch {
    return String(policy);
  }
}

function fail(
  code:
    | 'SUP_ERR_CHECK_SEV_DISABLED'
    | 'SUP_ERR_CHECK_SEV_TYPE_MISMATCH'
    | 'SUP_ERR_CHECK_POLICY_MISMATCH'
    | 'SUP_ERR_CHECK_STATE'
    | 'SUP_ERR_CHECK_MEASUREMENT',
  vm: string,
  what: string,
  details: Readonly<Record<string, unknown>>,
): SupervisorError {
  return new SupervisorError(code, `VM ${vm}: ${what}; the guest was not resumed`, { details: { vm, ...details } });
}
