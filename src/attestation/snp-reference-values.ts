// The reference values of an SNP launch: what a verifier must expect of the guest's attestation
// report, as a documented JSON (`sevsup.snp-reference-values/v1`, docs/snp-reference-values.md)
// an owner loads into their verifier, into `sevsup verify --report --reference-values`, or, mapped
// by `toCocoReferenceValues`, into the Confidential Containers attestation service (Trustee RVPS).
// Owns: that format, its strict parsing, and both mappings. Pure: no I/O.
// Must not: compute digests (the SNP launch digest comes from sev/, the input hashes from callers).
import { SupervisorError } from '../errors.js';
import { hex } from '../sev/ovmf-table.js';
import { decodeSnpPolicy } from '../sev/snp-policy.js';
import type { TcbParts } from '../sev/snp-report.js';
import type { SnpVmmType } from '../sev/snp-vmsa.js';
import { isRecord } from '../util/is-record.js';
import type { SnpExpectedDigest } from './snp-inputs.js';
import type { SnpExpectations } from './verify-snp.js';

export const SNP_REFERENCE_VALUES_SCHEMA = 'sevsup.snp-reference-values/v1';

export interface SnpReferenceValues {
  readonly schema: typeof SNP_REFERENCE_VALUES_SCHEMA;
  /** The expected launch digest, 96 hex digits. */
  readonly measurement: string;
  /** The exact 64-bit guest policy, 0x-hex. */
  readonly policy: string;
  readonly hostData: string | null;
  readonly idKeyDigest: string | null;
  readonly authorKeyDigest: string | null;
  readonly minTcb: TcbParts | null;
  readonly minGuestSvn: number | null;
  readonly vmpl: number | null;
  /** What produced the measurement (informational: a verifier compares only the fields above). */
  readonly inputs: Readonly<Record<string, unknown>>;
}

const HEX = (n: number): RegExp => new RegExp(`^[0-9a-f]{${2 * n}}$`);

export function buildSnpReferenceValues(i: {
  measurement: Buffer;
  policy: bigint;
  hostData?: Buffer;
  idKeyDigest?: Buffer;
  authorKeyDigest?: Buffer;
  minTcb?: TcbParts;
  minGuestSvn?: number;
  vmpl?: number;
  inputs?: Readonly<Record<string, unknown>>;
}): SnpReferenceValues {
  if (i.measurement.length !== 48) throw new RangeError('an SNP launch digest is 48 bytes');
  return {
    schema: SNP_REFERENCE_VALUES_SCHEMA,
    measurement: i.measurement.toString('hex'),
    policy: `0x${i.policy.toString(16)}`,
    hostData: i.hostData?.toString('hex') ?? null,
    idKeyDigest: i.idKeyDigest?.toString('hex') ?? null,
    authorKeyDigest: i.authorKeyDigest?.toString('hex') ?? null,
    minTcb: i.minTcb ?? null,
    minGuestSvn: i.minGuestSvn ?? null,
    vmpl: i.vmpl ?? null,
    inputs: i.inputs ?? {},
  };
}

/** What an SNP launch digest was computed from: the `inputs` of its reference values. */
export interface SnpMeasuredInputs {
  readonly digest: Pick<SnpExpectedDigest, 'digest' | 'firmwareDigest' | 'firmware' | 'kernel' | 'initrd' | 'cmdline'>;
  readonly vcpus: number | null;
  readonly vcpuSignature: number;
  readonly guestFeatures: bigint;
  readonly vmmType: SnpVmmType;
}

/** What a verifier must expect beyond the measurement. */
export interface SnpLaunchExpectations {
  readonly policy: bigint;
  readonly hostData?: Buffer;
  readonly idKeyDigest?: Buffer;
  readonly authorKeyDigest?: Buffer;
  readonly minTcb?: TcbParts;
  readonly minGuestSvn?: number;
  readonly vmpl?: number;
}

/**
 * The reference values of one launch: the one builder behind `sevsup measure --mode snp
 * --reference-values` and the SNP launch record (vm/snp-record.ts), so both print the same JSON.
 * `inputs` holds digests, not paths: the paths are one machine's, the sha256 says which files.
 */
export function snpLaunchReferenceValues(m: SnpMeasuredInputs, e: SnpLaunchExpectations): SnpReferenceValues {
  const d = m.digest;
  return buildSnpReferenceValues({
    measurement: d.digest,
    policy: e.policy,
    ...(e.hostData === undefined ? {} : { hostData: e.hostData }),
    ...(e.idKeyDigest === undefined ? {} : { idKeyDigest: e.idKeyDigest }),
    ...(e.authorKeyDigest === undefined ? {} : { authorKeyDigest: e.authorKeyDigest }),
    ...(e.minTcb === undefined ? {} : { minTcb: e.minTcb }),
    ...(e.minGuestSvn === undefined ? {} : { minGuestSvn: e.minGuestSvn }),
    ...(e.vmpl === undefined ? {} : { vmpl: e.vmpl }),
    inputs: {
      firmwareSha256: d.firmware.sha256,
      firmwareDigest: d.firmwareDigest.toString('hex'),
      kernelSha256: d.kernel?.sha256 ?? null,
      initrdSha256: d.initrd?.sha256 ?? null,
      cmdline: d.cmdline,
      vcpus: m.vcpus,
      vcpuSignature: hex(m.vcpuSignature),
      guestFeatures: `0x${m.guestFeatures.toString(16)}`,
      vmmType: m.vmmType,
    },
  });
}

/**
 * Parse and check a reference-values document (unknown keys refused: a misspelt key must not
 * silently drop an expectation).
 * @throws SUP_ERR_VERIFY_CONFIG naming `source` and the key.
 */
export function parseSnpReferenceValues(json: unknown, source: string): SnpReferenceValues {
  const fail = (why: string): never => {
    throw new SupervisorError('SUP_ERR_VERIFY_CONFIG', `${source}: ${why}`);
  };
  if (!isRecord(json)) return fail('not a JSON object');
  if (json['schema'] !== SNP_REFERENCE_VALUES_SCHEMA) fail(`schema must be ${JSON.stringify(SNP_REFERENCE_VALUES_SCHEMA)}`);
  const known = [
    'schema',
    'measurement',
    'policy',
    'hostData',
    'idKeyDigest',
    'authorKeyDigest',
    'minTcb',
    'minGuestSvn',
    'vmpl',
    'inputs',
  ];
  for (const k of Object.keys(json)) if (!known.includes(k)) fail(`unknown key ${JSON.stringify(k)}`);
  const hex = (key: string, n: number, required: boolean): string | null => {
    const v = json[key];
    if (v === null || v === undefined) return required ? fail(`${key} is required`) : null;
    if (typeof v !== 'string' || !HEX(n).test(v)) return fail(`${key} must be ${n} bytes as lower-case hex`);
    return v;
  };
  const uint = (key: string, max: number): number | null => {
    const v = json[key];
    if (v === null || v === undefined) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) return fail(`${key} must be an integer from 0 to ${max}`);
    return v;
  };
  const policy = json['policy'];
  if (typeof policy !== 'string' || !/^0x[0-9a-f]{1,16}$/.test(policy)) fail('policy must be 0x-hex (64-bit)');
  let minTcb: TcbParts | null = null;
  const t = json['minTcb'];
  if (t !== null && t !== undefined) {
    if (!isRecord(t)) return fail('minTcb must be an object');
    const spl = (k: string, optional: boolean): number | undefined => {
      const v = t[k];
      if (v === undefined && optional) return undefined;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) return fail(`minTcb.${k} must be 0..255`);
      return v;
    };
    for (const k of Object.keys(t)) if (!['bootloader', 'tee', 'snp', 'microcode', 'fmc'].includes(k)) fail(`unknown key minTcb.${k}`);
    const fmc = spl('fmc', true);
    minTcb = {
      bootloader: spl('bootloader', false) ?? 0,
      tee: spl('tee', false) ?? 0,
      snp: spl('snp', false) ?? 0,
      microcode: spl('microcode', false) ?? 0,
      ...(fmc === undefined ? {} : { fmc }),
    };
  }
  const inputs = json['inputs'] ?? {};
  if (!isRecord(inputs)) fail('inputs must be an object');
  return {
    schema: SNP_REFERENCE_VALUES_SCHEMA,
    measurement: hex('measurement', 48, true) ?? '',
    policy: String(policy),
    hostData: hex('hostData', 32, false),
    idKeyDigest: hex('idKeyDigest', 48, false),
    authorKeyDigest: hex('authorKeyDigest', 48, false),
    minTcb,
    minGuestSvn: uint('minGuestSvn', 0xffffffff),
    vmpl: uint('vmpl', 3),
    inputs: isRecord(inputs) ? inputs : {},
  };
}

/** What `verify --report` checks for these reference values (the policy exactly, so debug and
 * the migration agent are allowed only if the reference policy itself allows them). */
export function referenceExpectations(rv: SnpReferenceValues): SnpExpectations {
  const policy = BigInt(rv.policy);
  const view = decodeSnpPolicy(policy);
  const b = (h: string | null): Buffer | undefined => (h === null ? undefined : Buffer.from(h, 'hex'));
  const hostData = b(rv.hostData);
  const idKeyDigest = b(rv.idKeyDigest);
  const authorKeyDigest = b(rv.authorKeyDigest);
  return {
    measurement: Buffer.from(rv.measurement, 'hex'),
    policy: { exact: policy, allowDebug: view.debug, allowMigrationAgent: view.migrateMa },
    ...(hostData === undefined ? {} : { hostData }),
    ...(idKeyDigest === undefined ? {} : { idKeyDigest }),
    ...(authorKeyDigest === undefined ? {} : { authorKeyDigest }),
    ...(rv.minTcb === null ? {} : { minTcb: rv.minTcb }),
    ...(rv.minGuestSvn === null ? {} : { minGuestSvn: rv.minGuestSvn }),
    ...(rv.vmpl === null ? {} : { vmpl: rv.vmpl }),
  };
}

/**
 * The reference values Trustee's default SNP appraisal policy (ear_default_policy_cpu.rego) reads
 * from RVPS: `snp_launch_measurement`, the four TCB lists, and the policy fields. Each value is a
 * list of accepted values, as RVPS stores them. The measurement is given hex; the base64 form is
 * added because Trustee's verifiers have encoded it both ways across versions (check yours).
 * Host data, ID/author key digests, guest SVN and VMPL have no slot in that policy: add rules of
 * your own for them (docs/snp-reference-values.md).
 */
export function toCocoReferenceValues(rv: SnpReferenceValues): Record<string, unknown[]> {
  const view = decodeSnpPolicy(BigInt(rv.policy));
  const measurement = Buffer.from(rv.measurement, 'hex');
  const out: Record<string, unknown[]> = {
    snp_launch_measurement: [rv.measurement, measurement.toString('base64')],
    snp_guest_abi_major: [view.abiMajor],
    snp_guest_abi_minor: [view.abiMinor],
    snp_single_socket: [view.singleSocket],
    snp_smt_allowed: [view.smt],
  };
  if (rv.minTcb !== null) {
    // RVPS holds lists of accepted values, not minima: list every SPL from the minimum up to 255.
    const from = (n: number): number[] => Array.from({ length: 256 - n }, (_, i) => n + i);
    out['snp_bootloader'] = from(rv.minTcb.bootloader);
    out['snp_tee_svn'] = from(rv.minTcb.tee);
    out['snp_snp_svn'] = from(rv.minTcb.snp);
    out['snp_microcode'] = from(rv.minTcb.microcode);
  }
  return out;
}
