// The SEV-SNP launch record: the second kind of launch record (DESIGN "Measurement record"), schema
// `sevsup.snp-launch/v1`, documented in docs/snp-attestation.md. SNP has no host-side measurement
// (query-sev-launch-measure always fails): the record holds what the host launched and what a
// verifier must therefore find in the guest's attestation report — the expected launch digest
// computed from the exact inputs the host gave QEMU, the policy, host data, the ID key digests,
// and the reference values (`sevsup measure --mode snp --reference-values`'s JSON, one builder).
// Owns: the record's shape, its assembly from what the launch gathered, and narrowing a record read
// back. Pure: no I/O. Must not: compute digests (attestation/snp-inputs.ts and sev/ do) or judge a
// report (the owner's verifier does).
import { createHash } from 'node:crypto';
import { snpLaunchReferenceValues, type SnpMeasuredInputs, type SnpReferenceValues } from '../attestation/snp-reference-values.js';
import { hex } from '../sev/ovmf-table.js';
import { idAuthKeyDigests, parseIdBlock } from '../sev/snp-id-block.js';
import { describeSnpPolicy, snpPolicyView, type SnpPolicyFlag } from '../sev/snp-policy.js';
import { isRecord } from '../util/is-record.js';
import type { FileDigest, LaunchInputs, RecordPlatform } from './record.js';
import { fileDigest, HEX, int, matching, nullableMatching, recordHead, SHA256, SHA384, str } from './record-fields.js';

export const SNP_RECORD_SCHEMA = 'sevsup.snp-launch/v1';

/**
 * SEV_FEATURES in every VMSA of a guest QEMU 10 launches without IGVM: KVM_SEV_INIT2 gets
 * vmsa_features 0 and KVM adds only SNPActive (snp-facts §1.2). sevsup builds no IGVM launch, so
 * this is what its guests are measured with; an owner whose kernel adds features (0x21) says so
 * in their own `sevsup measure --guest-features`.
 */
export const SNP_QEMU_GUEST_FEATURES = 0x1n;

/** The 64-bit policy, hex and decoded. */
export interface SnpRecordPolicy {
  readonly value: string;
  readonly description: string;
  readonly abiMajor: number;
  readonly abiMinor: number;
  /** Set flags in bit order, bit 17 left out. */
  readonly flags: readonly SnpPolicyFlag[];
}

/** The ID block the launch used, as the firmware will check it at SNP_LAUNCH_FINISH. */
export interface SnpRecordIdBlock {
  /** The launch digest the block pins (hex); the platform refuses a launch whose digest differs. */
  readonly launchDigest: string;
  /** Whether it equals `expectedLaunchDigest` (false: the platform will refuse this launch). */
  readonly matchesExpected: boolean;
  readonly policy: string;
  readonly familyId: string;
  readonly imageId: string;
  readonly guestSvn: number;
  /** SHA-384 of the ID key structure: ID_KEY_DIGEST in every report. */
  readonly idKeyDigest: string;
  /** SHA-384 of the author key structure when `author-key=1`: AUTHOR_KEY_DIGEST. */
  readonly authorKeyDigest: string | null;
}

/** The launch inputs every record holds (record.ts LaunchInputs), plus SNP's; the firmware is never absent. */
export interface SnpRecordLaunch extends Omit<LaunchInputs, 'firmware'> {
  /** The -bios image: path and sha256 of the bytes the digest was computed over. */
  readonly firmware: FileDigest;
  /** CPUID 1 EAX of the vCPUs as QEMU reports them (`0xa00f11`): RDX in every VMSA. */
  readonly vcpuSignature: string;
  /** VMSA SEV_FEATURES (`0x1`). */
  readonly guestFeatures: string;
  readonly vmmType: 'QEMU';
  /** sha256 of the bytes QEMU was given (decoded from base64), with the file they came from. */
  readonly idBlock: FileDigest | null;
  readonly idAuth: FileDigest | null;
  /** `host-data-file`'s path and the sha256 of its 32 bytes; null for inline host data or none. */
  readonly hostDataFile: FileDigest | null;
}

export interface SnpLaunchRecord {
  readonly schema: typeof SNP_RECORD_SCHEMA;
  readonly vm: string;
  /** ISO-8601 UTC, before `cont`; the file name is this with `:` replaced by `-`. */
  readonly capturedAt: string;
  readonly platform: RecordPlatform;
  readonly sevType: 'sev-snp';
  /** The policy QEMU reports (`snp-policy`), checked equal to the config's. */
  readonly policy: SnpRecordPolicy;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
  /** SEV state at capture: `launch-update` (nothing is measured before the first run). */
  readonly state: string;
  /** The expected launch digest (SHA-384, 96 hex digits): the report's MEASUREMENT must equal it. */
  readonly expectedLaunchDigest: string;
  /** The chain after the firmware pages (`measure --mode snp:ovmf-hash`). */
  readonly firmwareDigest: string;
  /** HOST_DATA (64 hex digits), copied into every report; null when none was given. */
  readonly hostData: string | null;
  readonly idBlock: SnpRecordIdBlock | null;
  readonly launch: SnpRecordLaunch;
  /** What a verifier must expect (`sevsup.snp-reference-values/v1`). */
  readonly referenceValues: SnpReferenceValues;
}

export interface SnpRecordInputs {
  readonly vm: string;
  readonly capturedAt: Date;
  readonly platform: RecordPlatform;
  readonly reported: {
    readonly snpPolicy: bigint;
    readonly apiMajor: number;
    readonly apiMinor: number;
    readonly buildId: number;
    readonly state: string;
  };
  /** The digest and what it was computed from (attestation/snp-inputs.ts). */
  readonly measured: SnpMeasuredInputs;
  /** Hashed at spawn (informational when kernel-hashes is off). */
  readonly kernel: FileDigest | null;
  readonly initrd: FileDigest | null;
  readonly cmdline: string | null;
  readonly kernelHashes: boolean;
  readonly cpuModel: string;
  readonly qemuVersion: string;
  /** The base64 values the sev-snp-guest object was given, with their files. */
  readonly hostData: { readonly base64: string; readonly path: string | null } | null;
  readonly idBlock: { readonly block: string; readonly auth: string; readonly blockPath: string; readonly authPath: string } | null;
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/**
 * Assemble the record. Throws TypeError on inputs no record may carry (a programming error: the
 * lifecycle's checks ran before).
 */
export function buildSnpRecord(i: SnpRecordInputs): SnpLaunchRecord {
  const d = i.measured.digest;
  if (d.digest.length !== 48) throw new TypeError('an SNP launch digest is 48 bytes');
  if (i.measured.vcpus === null) throw new TypeError('an SNP launch record needs the vCPU count');
  const expected = d.digest.toString('hex');
  const hostData = i.hostData === null ? null : Buffer.from(i.hostData.base64, 'base64');
  let idBlock: SnpRecordIdBlock | null = null;
  let idFiles: { block: FileDigest; auth: FileDigest } | null = null;
  if (i.idBlock !== null) {
    const blockBytes = Buffer.from(i.idBlock.block, 'base64');
    const authBytes = Buffer.from(i.idBlock.auth, 'base64');
    const view = parseIdBlock(blockBytes);
    const keys = idAuthKeyDigests(authBytes);
    const hexOf = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
    idBlock = {
      launchDigest: hexOf(view.launchDigest),
      matchesExpected: Buffer.from(view.launchDigest).equals(d.digest) && view.policy === i.reported.snpPolicy,
      policy: `0x${view.policy.toString(16)}`,
      familyId: hexOf(view.familyId),
      imageId: hexOf(view.imageId),
      guestSvn: view.guestSvn,
      idKeyDigest: keys.idKeyDigest.toString('hex'),
      authorKeyDigest: keys.authorKeyDigest?.toString('hex') ?? null,
    };
    idFiles = {
      block: { path: i.idBlock.blockPath, sha256: sha256(blockBytes) },
      auth: { path: i.idBlock.authPath, sha256: sha256(authBytes) },
    };
  }
  const view = snpPolicyView(i.reported.snpPolicy);
  return {
    schema: SNP_RECORD_SCHEMA,
    vm: i.vm,
    capturedAt: i.capturedAt.toISOString(),
    platform: i.platform,
    sevType: 'sev-snp',
    policy: { ...view, description: describeSnpPolicy(i.reported.snpPolicy) },
    apiMajor: i.reported.apiMajor,
    apiMinor: i.reported.apiMinor,
    buildId: i.reported.buildId,
    state: i.reported.state,
    expectedLaunchDigest: expected,
    firmwareDigest: d.firmwareDigest.toString('hex'),
    hostData: hostData?.toString('hex') ?? null,
    idBlock,
    launch: {
      firmware: { path: d.firmware.path, sha256: d.firmware.sha256 },
      kernel: i.kernel,
      initrd: i.initrd,
      cmdline: i.cmdline,
      kernelHashes: i.kernelHashes,
      vcpus: i.measured.vcpus,
      cpuModel: i.cpuModel,
      vcpuSignature: hex(i.measured.vcpuSignature),
      guestFeatures: `0x${i.measured.guestFeatures.toString(16)}`,
      vmmType: 'QEMU',
      idBlock: idFiles?.block ?? null,
      idAuth: idFiles?.auth ?? null,
      hostDataFile: i.hostData?.path == null || hostData === null ? null : { path: i.hostData.path, sha256: sha256(hostData) },
      qemuVersion: i.qemuVersion,
    },
    referenceValues: snpLaunchReferenceValues(i.measured, {
      policy: i.reported.snpPolicy,
      ...(hostData === null ? {} : { hostData }),
      ...(idBlock === null ? {} : { idKeyDigest: Buffer.from(idBlock.idKeyDigest, 'hex') }),
      ...(idBlock?.authorKeyDigest == null ? {} : { authorKeyDigest: Buffer.from(idBlock.authorKeyDigest, 'hex') }),
    }),
  };
}

// Section: narrowing a record read back -------------------------------------------------------------

const HEX_VALUE = /^0x[0-9a-f]{1,16}$/;

/**
 * Narrow a value read back from disk (or from the API) to an SNP launch record; null when it is not
 * one. Checks every field's type and form (hex lengths), not its meaning. The reference values are
 * checked by their own parser's rules only in form here (schema and measurement), so a record stays
 * readable; `sevsup verify --report --reference-values` parses them strictly.
 */
export function parseSnpRecord(value: unknown): SnpLaunchRecord | null {
  if (!isRecord(value) || value['schema'] !== SNP_RECORD_SCHEMA || value['sevType'] !== 'sev-snp') return null;
  const head = recordHead(value);
  const expectedLaunchDigest = matching(value, 'expectedLaunchDigest', SHA384);
  const firmwareDigest = matching(value, 'firmwareDigest', SHA384);
  const hostData = nullableMatching(value, 'hostData', SHA256);
  if (head === null || expectedLaunchDigest === null || firmwareDigest === null || hostData === undefined) return null;
  const policy = parsePolicy(value['policy']);
  const idBlock = value['idBlock'] === null ? null : parseIdBlockView(value['idBlock']);
  const launch = parseLaunch(value['launch']);
  const rv = value['referenceValues'];
  if (policy === null || idBlock === undefined || launch === null) return null;
  if (!isRecord(rv) || rv['schema'] !== 'sevsup.snp-reference-values/v1' || matching(rv, 'measurement', SHA384) === null) return null;
  const { vm, capturedAt, platform, state, apiMajor, apiMinor, buildId } = head;
  return {
    schema: SNP_RECORD_SCHEMA,
    vm,
    capturedAt,
    platform,
    sevType: 'sev-snp',
    policy,
    apiMajor,
    apiMinor,
    buildId,
    state,
    expectedLaunchDigest,
    firmwareDigest,
    hostData,
    idBlock,
    launch,
    referenceValues: rv as unknown as SnpReferenceValues,
  };
}

function parsePolicy(value: unknown): SnpRecordPolicy | null {
  if (!isRecord(value)) return null;
  const v = matching(value, 'value', HEX_VALUE);
  const description = str(value, 'description');
  const abiMajor = int(value, 'abiMajor');
  const abiMinor = int(value, 'abiMinor');
  const flags = value['flags'];
  if (v === null || description === null || abiMajor === null || abiMinor === null) return null;
  if (!Array.isArray(flags) || !flags.every((f): f is SnpPolicyFlag => typeof f === 'string')) return null;
  return { value: v, description, abiMajor, abiMinor, flags };
}

function parseIdBlockView(value: unknown): SnpRecordIdBlock | undefined {
  if (!isRecord(value)) return undefined;
  const launchDigest = matching(value, 'launchDigest', SHA384);
  const policy = matching(value, 'policy', HEX_VALUE);
  const familyId = matching(value, 'familyId', HEX(16));
  const imageId = matching(value, 'imageId', HEX(16));
  const guestSvn = int(value, 'guestSvn');
  const idKeyDigest = matching(value, 'idKeyDigest', SHA384);
  const authorKeyDigest = nullableMatching(value, 'authorKeyDigest', SHA384);
  const matchesExpected = value['matchesExpected'];
  if (launchDigest === null || policy === null || familyId === null || imageId === null || guestSvn === null) return undefined;
  if (idKeyDigest === null || authorKeyDigest === undefined || typeof matchesExpected !== 'boolean') return undefined;
  return { launchDigest, matchesExpected, policy, familyId, imageId, guestSvn, idKeyDigest, authorKeyDigest };
}

function parseLaunch(value: unknown): SnpRecordLaunch | null {
  if (!isRecord(value)) return null;
  const firmware = fileDigest(value['firmware']);
  const kernel = fileDigest(value['kernel']);
  const initrd = fileDigest(value['initrd']);
  const idBlock = fileDigest(value['idBlock']);
  const idAuth = fileDigest(value['idAuth']);
  const hostDataFile = fileDigest(value['hostDataFile']);
  const cmdline = value['cmdline'];
  const kernelHashes = value['kernelHashes'];
  const vcpus = int(value, 'vcpus');
  const cpuModel = str(value, 'cpuModel');
  const vcpuSignature = matching(value, 'vcpuSignature', HEX_VALUE);
  const guestFeatures = matching(value, 'guestFeatures', HEX_VALUE);
  const qemuVersion = str(value, 'qemuVersion');
  if (firmware == null || kernel === undefined || initrd === undefined || idBlock === undefined || idAuth === undefined) return null;
  if (hostDataFile === undefined || (cmdline !== null && typeof cmdline !== 'string') || typeof kernelHashes !== 'boolean') return null;
  if (vcpus === null || cpuModel === null || vcpuSignature === null || guestFeatures === null || qemuVersion === null) return null;
  if (value['vmmType'] !== 'QEMU') return null;
  return {
    firmware,
    kernel,
    initrd,
    cmdline,
    kernelHashes,
    vcpus,
    cpuModel,
    vcpuSignature,
    guestFeatures,
    vmmType: 'QEMU',
    idBlock,
    idAuth,
    hostDataFile,
    qemuVersion,
  };
}
