// The measurement record: the contract with the guest owner's attestation scripts (DESIGN
// "Measurement record"). One JSON object per launch, schema `sevsup.measurement/v1`.
// Owns: the record's shape, its construction from what QEMU reported plus the launch inputs, the
// argument list for libvirt's `virt-qemu-sev-validate` (offline mode), and narrowing a record read
// back from disk (with the field readers vm/record-fields.ts shares with SEV-SNP's parser); and the
// union of the two kinds of launch record (SEV-SNP's is vm/snp-record.ts).
// Pure: no I/O; never judges whether a measurement is right (only the owner can).
import { MNONCE_BYTES } from '../sev/measurement.js';
import { isRecord } from '../util/is-record.js';
import { fileDigest, int, matching, recordHead, SHA256, str } from './record-fields.js';
import { parseSnpRecord, type SnpLaunchRecord } from './snp-record.js';

export const RECORD_SCHEMA = 'sevsup.measurement/v1';

export type RecordPlatform = 'hardware' | 'simulated';
export type RecordSevType = 'sev' | 'sev-es';

export interface FileDigest {
  readonly path: string;
  /** Lower-case hex SHA-256 of the file's bytes. */
  readonly sha256: string;
}

export interface LaunchInputs {
  /** The measured firmware image (pflash unit 0 / -bios). */
  readonly firmware: FileDigest | null;
  readonly kernel: FileDigest | null;
  readonly initrd: FileDigest | null;
  /** `-append` as given; null when there is none. */
  readonly cmdline: string | null;
  /** kernel-hashes=1: the kernel, initrd and cmdline are measured (else only their sha256 is noted). */
  readonly kernelHashes: boolean;
  readonly vcpus: number;
  readonly cpuModel: string;
  /**
   * `major.minor.micro` from the QMP greeting, plus the package string when QEMU gives one: the QEMU
   * that ran (on the simulated platform, the one the simulator runs underneath; docs/snp-attestation.md).
   */
  readonly qemuVersion: string;
}

/**
 * How sevsup builds SEV-ES VMSAs for `expectedLaunchDigest`: QEMU 7.2 (and 9.1+ by default) uses
 * the legacy KVM_SEV_ES_INIT, whose VMSAs have zero x87/SSE control words. Hosts launched with
 * KVM_SEV_INIT2 (`legacy-vm-type=off`) measure differently: see `sevsup measure --vmsa-init`.
 */
export const RECORD_VMSA_INIT = 'legacy';

export interface MeasurementRecord {
  readonly schema: typeof RECORD_SCHEMA;
  readonly vm: string;
  /** ISO-8601 UTC; the file name is this with `:` replaced by `-`. */
  readonly capturedAt: string;
  readonly platform: RecordPlatform;
  readonly sevType: RecordSevType;
  /** Policy QEMU reports (query-sev). */
  readonly policy: number;
  /** Policy the config asked for (encodePolicy(spec)); equal to `policy` in every record written. */
  readonly expectedPolicy: number;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
  /** SEV state at capture (`launch-secret`). */
  readonly state: string;
  /** base64 of 48 bytes exactly as QEMU returned it: HMAC (32) ‖ mnonce (16). */
  readonly measurement: string;
  /** Hex of the last 16 bytes of the decoded measurement. */
  readonly mnonce: string;
  readonly launch: LaunchInputs;
  /**
   * GCTX.LD (hex) the host computed from the inputs it used: a diagnostic for an owner whose check
   * fails. The owner computes their own (`sevsup measure`); it never replaces that.
   */
  readonly expectedLaunchDigest: string;
  /** How the SEV-ES VMSAs in `expectedLaunchDigest` were built (`legacy`); null for plain SEV. */
  readonly vmsaInit: typeof RECORD_VMSA_INIT | null;
  /** Arguments for `virt-qemu-sev-validate` in offline mode, minus the owner's `--tik`/`--tek`. */
  readonly validateArgs: readonly string[];
}

/** The CPU signature QEMU puts in each SEV-ES VMSA (EDX at reset); needed to recompute ES digests. */
export interface CpuSignature {
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
}

export interface RecordInputs {
  readonly vm: string;
  readonly capturedAt: Date;
  readonly platform: RecordPlatform;
  readonly sevType: RecordSevType;
  readonly reported: {
    readonly policy: number;
    readonly apiMajor: number;
    readonly apiMinor: number;
    readonly buildId: number;
    readonly state: string;
  };
  readonly expectedPolicy: number;
  readonly measurement: string;
  /** The decoded measurement's last 16 bytes. */
  readonly mnonce: Uint8Array;
  readonly launch: LaunchInputs;
  /** Hex GCTX.LD computed by the host from `launch` (see MeasurementRecord.expectedLaunchDigest). */
  readonly expectedLaunchDigest: string;
  /** Required for `sev-es` (the validator rebuilds the VMSAs from it). */
  readonly cpuSignature?: CpuSignature;
}

/** Assemble a record. Throws TypeError on inputs no record may carry (a programming error). */
export function buildRecord(inputs: RecordInputs): MeasurementRecord {
  if (inputs.mnonce.length !== MNONCE_BYTES) throw new TypeError(`mnonce must be ${MNONCE_BYTES} bytes, got ${inputs.mnonce.length}`);
  if (inputs.sevType === 'sev-es' && inputs.cpuSignature === undefined) {
    throw new TypeError('an SEV-ES record needs the guest CPU signature (family, model, stepping)');
  }
  const record: Omit<MeasurementRecord, 'validateArgs'> = {
    schema: RECORD_SCHEMA,
    vm: inputs.vm,
    capturedAt: inputs.capturedAt.toISOString(),
    platform: inputs.platform,
    sevType: inputs.sevType,
    policy: inputs.reported.policy,
    expectedPolicy: inputs.expectedPolicy,
    apiMajor: inputs.reported.apiMajor,
    apiMinor: inputs.reported.apiMinor,
    buildId: inputs.reported.buildId,
    state: inputs.reported.state,
    measurement: inputs.measurement,
    mnonce: Buffer.from(inputs.mnonce).toString('hex'),
    launch: inputs.launch,
    expectedLaunchDigest: inputs.expectedLaunchDigest,
    vmsaInit: inputs.sevType === 'sev-es' ? RECORD_VMSA_INIT : null,
  };
  return { ...record, validateArgs: buildValidateArgs(record, inputs.cpuSignature) };
}

/**
 * `virt-qemu-sev-validate` offline arguments. Its `--policy`/`--api-*`/`--build-id` are parsed
 * with Python's int(), so numbers are decimal. The kernel, initrd and cmdline are measured only
 * with kernel-hashes, so they are passed only then (the validator adds no hashes table without
 * `--kernel`). An absent cmdline hashes like an empty one (SHA-256 of a single NUL), so it is omitted.
 */
export function buildValidateArgs(record: Omit<MeasurementRecord, 'validateArgs'>, cpu?: CpuSignature): string[] {
  const args = [
    '--measurement',
    record.measurement,
    '--api-major',
    String(record.apiMajor),
    '--api-minor',
    String(record.apiMinor),
    '--build-id',
    String(record.buildId),
    '--policy',
    String(record.policy),
  ];
  if (record.launch.firmware !== null) args.push('--firmware', record.launch.firmware.path);
  if (record.launch.kernelHashes && record.launch.kernel !== null) {
    args.push('--kernel', record.launch.kernel.path);
    if (record.launch.initrd !== null) args.push('--initrd', record.launch.initrd.path);
    if (record.launch.cmdline !== null) args.push('--cmdline', record.launch.cmdline);
  }
  if (record.sevType === 'sev-es' && cpu !== undefined) {
    args.push(
      '--num-cpus',
      String(record.launch.vcpus),
      '--cpu-family',
      String(cpu.family),
      '--cpu-model',
      String(cpu.model),
      '--cpu-stepping',
      String(cpu.stepping),
    );
  }
  return args;
}

/** A launch's record: SEV / SEV-ES (`sevsup.measurement/v1`) or SEV-SNP (`sevsup.snp-launch/v1`), told apart by `schema`. */
export type LaunchRecord = MeasurementRecord | SnpLaunchRecord;

/** Narrow a value read back to either kind of launch record; null when it is neither. */
export function parseLaunchRecord(value: unknown): LaunchRecord | null {
  return parseRecord(value) ?? parseSnpRecord(value);
}

/** `2026-11-26T10:25:20.123Z` → `2026-11-26T10-25-20.123Z`: no `:` (invalid on some filesystems, awkward in shells). */
export function recordFileStem(capturedAt: string): string {
  return capturedAt.replaceAll(':', '-');
}

/**
 * Narrow a value read back from disk (or from the API) to a record; null when it is not one.
 * Checks every field's type, not its meaning.
 */
export function parseRecord(value: unknown): MeasurementRecord | null {
  if (!isRecord(value) || value['schema'] !== RECORD_SCHEMA) return null;
  const head = recordHead(value);
  const launch = parseLaunch(value['launch']);
  const validateArgs = value['validateArgs'];
  const sevType = value['sevType'];
  if (head === null || launch === null || (sevType !== 'sev' && sevType !== 'sev-es')) return null;
  if (!Array.isArray(validateArgs) || !validateArgs.every((a): a is string => typeof a === 'string')) return null;
  const measurement = str(value, 'measurement');
  const mnonce = str(value, 'mnonce');
  const expectedLaunchDigest = matching(value, 'expectedLaunchDigest', SHA256);
  const vmsaInit = value['vmsaInit'];
  const policy = int(value, 'policy');
  const expectedPolicy = int(value, 'expectedPolicy');
  if (measurement === null || mnonce === null || expectedLaunchDigest === null || policy === null || expectedPolicy === null) return null;
  if (vmsaInit !== null && vmsaInit !== RECORD_VMSA_INIT) return null;
  const { vm, capturedAt, platform, state, apiMajor, apiMinor, buildId } = head;
  return {
    schema: RECORD_SCHEMA,
    vm,
    capturedAt,
    platform,
    sevType,
    policy,
    expectedPolicy,
    apiMajor,
    apiMinor,
    buildId,
    state,
    measurement,
    mnonce,
    launch,
    expectedLaunchDigest,
    vmsaInit,
    validateArgs,
  };
}

function parseLaunch(value: unknown): LaunchInputs | null {
  if (!isRecord(value)) return null;
  // The files' sha256 are informational (the owner hashes their own copies): any string is read,
  // as this parser always has, so records and requests that carry a placeholder stay readable.
  const firmware = fileDigest(value['firmware'], null);
  const kernel = fileDigest(value['kernel'], null);
  const initrd = fileDigest(value['initrd'], null);
  const { cmdline, kernelHashes } = value;
  const vcpus = int(value, 'vcpus');
  const cpuModel = str(value, 'cpuModel');
  const qemuVersion = str(value, 'qemuVersion');
  if (firmware === undefined || kernel === undefined || initrd === undefined) return null;
  if (cmdline !== null && typeof cmdline !== 'string') return null;
  if (typeof kernelHashes !== 'boolean' || vcpus === null || cpuModel === null || qemuVersion === null) return null;
  return { firmware, kernel, initrd, cmdline, kernelHashes, vcpus, cpuModel, qemuVersion };
}
