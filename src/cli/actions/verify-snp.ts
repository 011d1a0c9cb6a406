// Implementation of `sevsup verify --report`: read the report, find its certificates (--certs DIR
// first, then the certificate cache; never the network), pin the ARK (AMD's or --ark), verify,
// report; the expected measurement computed from the owner's launch inputs when they are given (as
// `measure --mode snp`). Owns: where each input comes from and the output shapes; exit codes as
// `sevsup verify` (0 valid, 1 not trustworthy, 2 usage, 4 unreadable/missing input), set on process.exitCode.
// Must not: decide validity (attestation/verify-snp.ts) or fetch certificates.
import { readFile } from 'node:fs/promises';
import { lookupReportCerts } from '../../attestation/kds-cache.js';
import { DEFAULT_SNP_CERT_CACHE } from '../../paths.js';
import { loadPinnedArks, readCertDir } from '../../attestation/snp-cert-files.js';
import { parseSnpReferenceValues, referenceExpectations } from '../../attestation/snp-reference-values.js';
import {
  readSnpReport,
  reportToJson,
  verifySnpReport,
  type PinnedArk,
  type SnpCertificates,
  type SnpExpectations,
  type SnpVerifyOutcome,
} from '../../attestation/verify-snp.js';
import { errorTable, SupervisorError, type ErrorCode } from '../../errors.js';
import { formatSnpPolicy } from '../../sev/snp-policy.js';
import { productFromCpuid, signingKeyOf, type SnpReport } from '../../sev/snp-report.js';
import { describeIoError } from '../../util/io-error.js';
import type { VerifyCliOptions } from '../commands/verify.js';
import { resolveLaunchOptions } from './measure.js';
import { runVerifyWith, verifyExitCode, type VerifyReport } from './verify-output.js';

/** Codes that mean "an input could not be read or found": libvirt's 4 (bad configuration). */
const BAD_INPUT: readonly ErrorCode[] = ['SUP_ERR_CERTS_INPUT', 'SUP_ERR_CERTS_CACHE', 'SUP_ERR_CERTS_OFFLINE'];

export function verifySnpExitCode(code: ErrorCode): number | null {
  if (BAD_INPUT.includes(code)) return errorTable().SUP_ERR_VERIFY_CONFIG.exit;
  return verifyExitCode(code);
}

export async function runVerifySnp(o: VerifyCliOptions): Promise<void> {
  await runVerifyWith(o, () => verifySnp(o), verifySnpExitCode);
}

/** SEV-only options make no sense with --report: refuse them rather than ignore them. */
function checkUsage(o: VerifyCliOptions): void {
  const sevOnly = (
    [
      ['--record', o.record],
      ['--measurement', o.measurement],
      ['--api-major', o.apiMajor],
      ['--api-minor', o.apiMinor],
      ['--build-id', o.buildId],
      ['--policy', o.policy],
      ['--tik', o.tik],
      ['--tek', o.tek],
      ['--tk', o.tk],
      ['--min-api', o.minApi],
      ['--allowed-build-id', o.allowedBuildId],
      ['--use-record-inputs', o.useRecordInputs],
    ] as const
  ).filter(([, v]) => v !== undefined);
  if (sevOnly.length > 0) {
    throw new SupervisorError(
      'SUP_ERR_VERIFY_UNSUPPORTED',
      `${sevOnly.map(([f]) => f).join(', ')} ${sevOnly.length === 1 ? 'is' : 'are'} for SEV/SEV-ES measurements, not with --report`,
    );
  }
}

function parseJson(data: Buffer, path: string): unknown {
  try {
    return JSON.parse(data.toString('utf8')) as unknown;
  } catch (error: unknown) {
    throw new SupervisorError(
      'SUP_ERR_VERIFY_CONFIG',
      `--reference-values ${path}: not JSON (${error instanceof Error ? error.message : String(error)})`,
      { cause: error },
    );
  }
}

async function readInput(path: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_VERIFY_CONFIG', `${flag} ${path}: ${describeIoError(error)}`, { cause: error });
  }
}

/** --certs first; what it lacks comes from the cache. */
async function findCerts(o: VerifyCliOptions, report: SnpReport): Promise<{ certs: SnpCertificates; from: string[] }> {
  const kind = signingKeyOf(report.signingKeyCode) === 'vlek' ? 'vlek' : 'vcek';
  const dir = o.certs === undefined ? null : await readCertDir(o.certs);
  const found: { ark?: Buffer; intermediate?: Buffer; leaf?: Buffer } = { ...(dir ?? {}) };
  const from = [...(dir?.files ?? [])];
  if (found.leaf === undefined || found.intermediate === undefined) {
    const cacheDir = o.cache ?? DEFAULT_SNP_CERT_CACHE;
    const hit = await lookupReportCerts(cacheDir, {
      product: o.product ?? productFromCpuid(report.cpuid),
      chipId: report.chipId,
      reportedTcb: report.reportedTcb,
      kind,
    });
    if (hit !== null) {
      found.leaf ??= hit.leaf;
      found.intermediate ??= hit.intermediate;
      found.ark ??= hit.ark;
      from.push(...hit.paths);
    } else if (found.leaf === undefined) {
      throw new SupervisorError(
        'SUP_ERR_VERIFY_CONFIG',
        `no ${kind.toUpperCase()} for this report in ${o.certs === undefined ? '' : `${o.certs} or `}the cache ${cacheDir}: run \`sevsup certs fetch --report ${o.report ?? 'REPORT'}\` where AMD's key server is reachable (or \`sevsup certs import DIR\`), or give --certs DIR`,
      );
    }
  }
  return { certs: found, from };
}

/** Launch inputs given: the owner wants the measurement computed from them (as `measure --mode snp`). */
function inputsGiven(o: VerifyCliOptions): boolean {
  const given = [o.firmware, o.ovmf, o.kernel, o.initrd, o.cmdline, o.append, o.snpOvmfHash, o.vcpus, o.numCpus, o.vcpuType, o.vcpuSig];
  return [...given, o.vcpuFamily, o.vcpuModel, o.vcpuStepping, o.cpuFamily, o.cpuModel, o.cpuStepping].some((v) => v !== undefined);
}

/**
 * The launch digest of the owner's inputs, exactly as `sevsup measure --mode snp` computes it; an
 * expected measurement given as well (option or reference values) must be the same digest: two
 * owner statements that disagree are a mistake to fix, not a report to judge.
 * @throws SUP_ERR_USAGE when they disagree; the errors of snpDigestFromOptions.
 */
async function measurementFromInputs(o: VerifyCliOptions, stated: { value: Buffer; from: string } | null): Promise<Buffer> {
  const { snpDigestFromOptions } = await import('./measure-snp.js');
  const { digest } = await snpDigestFromOptions(o, resolveLaunchOptions(o));
  if (stated !== null && !stated.value.equals(digest)) {
    throw new SupervisorError(
      'SUP_ERR_USAGE',
      `the measurement from ${stated.from} (${stated.value.toString('hex')}) is not the launch digest of your inputs (${digest.toString('hex')}, as \`sevsup measure --mode snp\` computes it): give one of them, or fix the inputs (--firmware, --kernel, --initrd, --cmdline, --vcpus, the vCPU signature, --guest-features, --vmm-type)`,
    );
  }
  return digest;
}

/** The reference-values file's expectations, then each option given on top. */
async function expectations(o: VerifyCliOptions): Promise<SnpExpectations> {
  const base =
    o.referenceValues === undefined
      ? {}
      : referenceExpectations(
          parseSnpReferenceValues(
            parseJson(await readInput(o.referenceValues, '--reference-values'), o.referenceValues),
            o.referenceValues,
          ),
        );
  let measurement = o.expectedMeasurement;
  if (inputsGiven(o)) {
    const stated =
      o.expectedMeasurement !== undefined
        ? { value: o.expectedMeasurement, from: '--expected-measurement' }
        : base.measurement !== undefined
          ? { value: base.measurement, from: `--reference-values ${o.referenceValues ?? ''}` }
          : null;
    measurement = await measurementFromInputs(o, stated);
  }
  const policy = {
    ...base.policy,
    ...(o.allowDebug === true ? { allowDebug: true } : {}),
    ...(o.allowMigrationAgent === true ? { allowMigrationAgent: true } : {}),
    ...(o.smt === undefined ? {} : { smt: o.smt }),
    ...(o.minAbi === undefined ? {} : { minAbi: o.minAbi }),
    ...(o.expectedPolicy === undefined ? {} : { exact: BigInt(o.expectedPolicy) }),
  };
  return {
    ...base,
    ...(measurement === undefined ? {} : { measurement }),
    ...(o.hostData === undefined ? {} : { hostData: o.hostData }),
    ...(o.reportData === undefined ? {} : { reportData: o.reportData }),
    ...(o.idKeyDigest === undefined ? {} : { idKeyDigest: o.idKeyDigest }),
    ...(o.authorKeyDigest === undefined ? {} : { authorKeyDigest: o.authorKeyDigest }),
    policy,
    ...(o.minTcb === undefined ? {} : { minTcb: o.minTcb }),
    ...(o.minGuestSvn === undefined ? {} : { minGuestSvn: o.minGuestSvn }),
    ...(o.vmpl === undefined ? {} : { vmpl: o.vmpl }),
    ...(o.product === undefined ? {} : { product: o.product }),
  };
}

async function verifySnp(o: VerifyCliOptions): Promise<VerifyReport> {
  checkUsage(o);
  const reportPath = o.report ?? '';
  const report = readSnpReport(await readInput(reportPath, '--report'), reportPath);
  const [pinned, { certs, from }] = await Promise.all([loadPinnedArks(o.ark), findCerts(o, report)]);
  const outcome = verifySnpReport({ report, certs, pinned, expect: await expectations(o) });
  return present(outcome, { reportPath, certFiles: from, pinned });
}

const EVIDENCE_ONLY =
  'no expectation was given (--expected-measurement, --host-data, --report-data, …): only the evidence was checked; a genuine report of some guest on some AMD chip proves nothing about yours';

function present(
  out: SnpVerifyOutcome,
  ctx: { reportPath: string; certFiles: readonly string[]; pinned: readonly PinnedArk[] },
): VerifyReport {
  const r = out.report;
  const kind = out.signingKey?.toUpperCase() ?? 'reserved key';
  const summary = `SNP report v${r.version}, ${out.product ?? 'unknown product'}, ${kind}, policy ${formatSnpPolicy(r.policy)}, VMPL ${r.vmpl}, measurement ${r.measurement.toString('hex')}`;
  const warnings = out.evidenceOnly ? [EVIDENCE_ONLY] : [];
  const lines = out.valid ? [`OK: ${summary}`, ...out.checks.map((c) => `OK: ${c.message}`), ...warnings.map((w) => `WARNING: ${w}`)] : [];
  const problems = out.valid
    ? []
    : [...out.checks.filter((c) => !c.ok).map((c) => `ERROR: ${c.message}`), `(${summary})`, ...warnings.map((w) => `WARNING: ${w}`)];
  return {
    exitCode: out.exitCode,
    lines,
    problems,
    json: {
      valid: out.valid,
      exitCode: out.exitCode,
      sevType: 'sev-snp',
      evidenceOnly: out.evidenceOnly,
      product: out.product,
      tcbLayout: out.tcbLayout,
      signingKey: out.signingKey,
      trustAnchors: ctx.pinned.map((p) => (p.source === 'amd' ? `AMD ARK-${p.product ?? ''}` : '--ark')),
      certificates: ctx.certFiles,
      reportFile: ctx.reportPath,
      checks: out.checks,
      warnings,
      report: reportToJson(r, out.tcbLayout),
    },
  };
}
