// The attestation report the simulated SNP firmware gives a running guest for its REPORT_DATA
// (SNP_GUEST_REQUEST MSG_REPORT_REQ at VMPL 0), signed with the simulated VCEK, and the sim-only
// QMP request that fetches it on the guest's behalf (a guest under TCG cannot ask the PSP itself):
//   -> {"execute":"x-sevsup-sim-snp-report","arguments":{"report-data":"<128 hex digits or base64 of 64 bytes>"}}
//   <- {"return":{"data":"<base64 report>","ark":"<PEM>","ask":"<PEM>","vcek":"<PEM>"}}
// Owns: the report's fields from the launch facts and the platform identity, and the request's
// argument checks. Pure (signing on a KeyObject). Must not: exist on hardware (real QEMU answers
// CommandNotFound), or sign anything but what the guest's launch measured and bound.
import { encodeTcb, buildSignedReport, signingKeyCode, tcbLayoutOf, type SnpReportFields } from '../../sev/snp-report.js';
import { isRecord } from '../../util/is-record.js';
import type { QmpResult } from './sev-state.js';
import type { SnpLaunchFacts } from './snp-launch.js';
import type { SnpPlatformIdentity } from './snp-platform-keys.js';

export const SIM_SNP_REPORT_COMMAND = 'x-sevsup-sim-snp-report';
/** Version 3 (CPUID fields; what current Milan/Genoa firmware writes). */
export const SIM_SNP_REPORT_VERSION = 3;
/** CPUID family/model/stepping of the simulated host (EPYC Milan, as its -cpu host). */
const SIM_CPUID = { family: 0x19, model: 0x01, stepping: 0x01 } as const;
const REPORT_DATA_BYTES = 64;

export interface SimFirmwareVersion {
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
}

/** Every field of the report a guest with `facts` gets for `reportData` on this platform. */
export function simulatedReportFields(
  facts: SnpLaunchFacts,
  platform: Pick<SnpPlatformIdentity, 'product' | 'tcb' | 'chipId'>,
  firmware: SimFirmwareVersion,
  reportData: Buffer,
  reportId: Buffer,
): SnpReportFields {
  const tcb = encodeTcb(platform.tcb, tcbLayoutOf(platform.product));
  const version = { major: firmware.apiMajor, minor: firmware.apiMinor, build: firmware.buildId };
  return {
    version: SIM_SNP_REPORT_VERSION,
    guestSvn: facts.guestSvn,
    policy: facts.policy,
    familyId: facts.familyId,
    imageId: facts.imageId,
    vmpl: 0,
    signatureAlgo: 1,
    currentTcb: tcb,
    // The simulated host runs without SMT, TSME or the other platform features.
    platformInfo: 0n,
    authorKeyEn: facts.authorKeyEnabled,
    maskChipKey: false,
    signingKeyCode: signingKeyCode('vcek'),
    reportData,
    measurement: facts.measurement,
    hostData: facts.hostData,
    idKeyDigest: facts.idKeyDigest,
    authorKeyDigest: facts.authorKeyDigest,
    reportId,
    // No migration agent is bound to the guest.
    reportIdMa: Buffer.alloc(32, 0xff),
    reportedTcb: tcb,
    cpuid: SIM_CPUID,
    chipId: platform.chipId,
    committedTcb: tcb,
    currentVersion: version,
    committedVersion: version,
    launchTcb: tcb,
    launchMitVector: null,
    currentMitVector: null,
  };
}

/** `report-data` as 128 hex digits or base64 of exactly 64 bytes; or why not. */
export function parseReportData(value: unknown): Buffer | string {
  if (typeof value !== 'string') return "Parameter 'report-data' expects string";
  if (/^[0-9a-fA-F]{128}$/.test(value)) return Buffer.from(value, 'hex');
  if (/^[A-Za-z0-9+/]{86}==$/.test(value)) {
    const bytes = Buffer.from(value, 'base64');
    if (bytes.length === REPORT_DATA_BYTES && bytes.toString('base64') === value) return bytes;
  }
  return `${SIM_SNP_REPORT_COMMAND}: report-data must be ${REPORT_DATA_BYTES} bytes, as 128 hex digits or base64`;
}

const genericError = (desc: string): QmpResult => ({ error: { class: 'GenericError', desc } });

/**
 * The answer to the sim-only request: the signed report and the chain, or QEMU-style errors for
 * bad arguments and for a guest that is not a running SNP guest.
 */
export function answerReportRequest(
  args: Record<string, unknown>,
  guest: { readonly isSnp: boolean; readonly snpFacts: SnpLaunchFacts | null },
  /** The platform identity, or why there is none (still being made on first use, or failed). */
  platform: SnpPlatformIdentity | string,
  firmware: SimFirmwareVersion,
  reportId: Buffer,
): QmpResult {
  if (!isRecord(args)) return genericError("Invalid parameter type for 'arguments', expected: object");
  for (const key of Object.keys(args)) if (key !== 'report-data') return genericError(`Parameter '${key}' is unexpected`);
  if (!Object.hasOwn(args, 'report-data')) return genericError("Parameter 'report-data' is missing");
  const reportData = parseReportData(args['report-data']);
  if (typeof reportData === 'string') return genericError(reportData);
  if (!guest.isSnp) return genericError(`${SIM_SNP_REPORT_COMMAND}: the guest is not an SEV-SNP guest`);
  const facts = guest.snpFacts;
  if (facts === null)
    return genericError(`${SIM_SNP_REPORT_COMMAND}: the guest has not been launched yet (no report before its first run)`);
  if (facts.vcekDisabled) return genericError(`${SIM_SNP_REPORT_COMMAND}: vcek-disabled is set and the simulated platform has no VLEK`);
  if (typeof platform === 'string') return genericError(`${SIM_SNP_REPORT_COMMAND}: ${platform}`);
  const report = buildSignedReport(simulatedReportFields(facts, platform, firmware, reportData, reportId), platform.vcekKey);
  return { return: { data: report.toString('base64'), ark: platform.pem.ark, ask: platform.pem.ask, vcek: platform.pem.vcek } };
}
