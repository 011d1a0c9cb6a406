// What QEMU 10 does at start-up with a `sev-snp-guest` on a real SEV-SNP host, up to the paused
// guest: the object's QAPI visit and property setters, accelerator init (sev_common_kvm_init's
// checks, SNP_LAUNCH_START's policy checks, sev_snp_kvm_init's SMM rule), the -bios load, the SEV
// info block and the kernel-hashes area, with QEMU's exact stderr lines (snp-facts §1.1–§1.3).
// Owns: the order of those checks and their texts. Pure: the caller reads files and passes facts.
// Must not: spawn, read files, or decide what happens at the first run (snp-launch.ts does).
import { describeHashesAreaProblem, SEV_HASH_TABLE_RV_GUID, type OvmfTable } from '../../sev/ovmf-table.js';
import { firmwareSizeProblem } from '../../sev/snp-launch-digest.js';
import {
  decodeSnpPolicy,
  QEMU_DEFAULT_SNP_POLICY,
  SNP_POLICY_MBO,
  SNP_POLICY_RESERVED_HIGH,
  snpPolicyFlagMask,
} from '../../sev/snp-policy.js';
import { linkedSevObject, type QemuArgvModel, type SevGuestObject } from './argv-model.js';
import { readBool, readUint } from './qemu-opts.js';
import { glibBase64Decode, PSP_IOCTL_RET, SEV_FW_ERRORS, SIM_HOST_CBITPOS } from './sev-state.js';
import { initAccelerator, QEMU_PROGNAME } from './startup-checks.js';

const UINT32_MAX = 0xffffffff;
const UINT64_MAX = 0xffffffffffffffffn;
/** Bits KVM accepts at SNP_LAUNCH_START (ABI, SMT, MBO, DEBUG, SINGLE_SOCKET and bits 21–25; not MIGRATE_MA). */
const KVM_VALID_POLICY = ~SNP_POLICY_RESERVED_HIGH & ~snpPolicyFlagMask('MIGRATE_MA') & UINT64_MAX;
/** Linux errno values KVM returns, as QEMU prints them in ret=. */
const EINVAL = 22;

export interface SnpObjectParams {
  readonly id: string;
  readonly policy: bigint;
  readonly cbitpos: number;
  readonly reducedPhysBits: number;
  readonly kernelHashes: boolean;
  readonly sevDevice: string;
  readonly guestVisibleWorkarounds: Buffer | null;
  readonly idBlock: Buffer | null;
  readonly idAuth: Buffer | null;
  readonly authorKeyEnabled: boolean;
  readonly hostData: Buffer | null;
  readonly vcekDisabled: boolean;
}

type Kind = 'str' | 'uint32' | 'uint64' | 'bool';
/** SevCommonProperties then SevSnpGuestProperties, in QAPI's member order (the visit's order). */
const SCHEMA: readonly (readonly [string, Kind])[] = [
  ['sev-device', 'str'],
  ['cbitpos', 'uint32'],
  ['reduced-phys-bits', 'uint32'],
  ['kernel-hashes', 'bool'],
  ['policy', 'uint64'],
  ['guest-visible-workarounds', 'str'],
  ['id-block', 'str'],
  ['id-auth', 'str'],
  ['author-key-enabled', 'bool'],
  ['host-data', 'str'],
  ['vcek-disabled', 'bool'],
];
const REQUIRED = new Set(['reduced-phys-bits']);

/** qemu_strtou64 base 0 on a keyval string; a JSON number as the input visitor takes it. */
function readUint64(value: unknown): bigint | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? BigInt(value) : null;
  if (typeof value !== 'string' || !/^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.test(value)) return null;
  const n = value.length > 1 && /^0[0-7]/.test(value) ? BigInt(`0o${value.slice(1)}`) : BigInt(value);
  return n <= UINT64_MAX ? n : null;
}

/** QEMU's visitor error for `value` of member `name`, or null when it reads as `kind`. */
function typeError(name: string, kind: Kind, value: unknown, json: boolean): string | null {
  switch (kind) {
    case 'str':
      return typeof value === 'string' ? null : `Invalid parameter type for '${name}', expected: string`;
    case 'bool':
      if (json) return typeof value === 'boolean' ? null : `Invalid parameter type for '${name}', expected: boolean`;
      return readBool(value) === null ? `Parameter '${name}' expects 'on' or 'off'` : null;
    case 'uint32':
    case 'uint64': {
      if (json ? typeof value !== 'number' || !Number.isInteger(value) : readUint64(value) === null) {
        return json ? `Parameter '${name}' expects uint64` : `Parameter '${name}' expects a uint64 value`;
      }
      if (kind === 'uint32' && readUint(value, UINT32_MAX) === null) return `Parameter '${name}' expects uint32_t`;
      return null;
    }
  }
}

/**
 * qbase64_decode (only the alphabet, '=' and newlines, then glib's lenient decode, which drops a
 * trailing incomplete group) then the property setter's length rule. Returns the bytes, or the
 * setter's error (checked against QEMU 10.0.13: "AAA" is "parameter length of 0").
 */
function decodeProperty(name: string, text: string): Buffer | string {
  if (!/^[A-Za-z0-9+/=\n]*$/.test(text)) return 'Base64 data contains invalid characters';
  const bytes = glibBase64Decode(text);
  switch (name) {
    case 'guest-visible-workarounds':
      return bytes.length === 16 ? bytes : `parameter length of ${bytes.length} exceeds max of 16`;
    case 'id-block':
      return bytes.length === 96 ? bytes : `parameter length of ${bytes.length} not equal to 96`;
    case 'id-auth':
      return bytes.length <= 4096 ? bytes : `parameter length:ID_AUTH ${bytes.length} exceeds max of 4096`;
    default:
      return bytes.length === 32 ? bytes : `parameter length of ${bytes.length} not equal to 32`;
  }
}

/**
 * The object as QEMU 10 creates it from -object: the QAPI visit (types, the required member,
 * then unknown members: `sev-guest`'s dh-cert-file, session-file, handle and legacy-vm-type are
 * unknown here), then the setters. Returns the parameters or QEMU's error text (without prefix).
 */
export function readSnpObject(object: SevGuestObject): SnpObjectParams | { readonly error: string; readonly setter?: true } {
  const p = object.props;
  if (typeof p['id'] !== 'string') return { error: "Parameter 'id' is missing" };
  for (const [name, kind] of SCHEMA) {
    const value = p[name];
    if (value === undefined) {
      if (REQUIRED.has(name)) return { error: `Parameter '${name}' is missing` };
      continue;
    }
    const problem = typeError(name, kind, value, object.json);
    if (problem !== null) return { error: problem };
  }
  const known = new Set(['qom-type', 'id', ...SCHEMA.map(([name]) => name)]);
  const unknown = Object.keys(p).find((k) => !known.has(k));
  if (unknown !== undefined) return { error: object.json ? `Parameter '${unknown}' is unexpected` : `Invalid parameter '${unknown}'` };
  const bytes: Record<string, Buffer | null> = {};
  for (const name of ['guest-visible-workarounds', 'id-block', 'id-auth', 'host-data']) {
    const text = p[name];
    if (typeof text !== 'string') {
      bytes[name] = null;
      continue;
    }
    const decoded = decodeProperty(name, text);
    // Setters run after the option's visit: QEMU prints their errors without the -object location.
    if (typeof decoded === 'string') return { error: decoded, setter: true };
    bytes[name] = decoded;
  }
  const bool = (name: string): boolean => (p[name] === undefined ? false : (readBool(p[name]) as boolean));
  return {
    id: p['id'],
    policy: p['policy'] === undefined ? QEMU_DEFAULT_SNP_POLICY : (readUint64(p['policy']) as bigint),
    cbitpos: p['cbitpos'] === undefined ? 0 : (readUint(p['cbitpos'], UINT32_MAX) as number),
    reducedPhysBits: readUint(p['reduced-phys-bits'], UINT32_MAX) as number,
    kernelHashes: bool('kernel-hashes'),
    sevDevice: typeof p['sev-device'] === 'string' ? p['sev-device'] : '/dev/sev',
    guestVisibleWorkarounds: bytes['guest-visible-workarounds'] ?? null,
    idBlock: bytes['id-block'] ?? null,
    idAuth: bytes['id-auth'] ?? null,
    authorKeyEnabled: bool('author-key-enabled'),
    hostData: bytes['host-data'] ?? null,
    vcekDisabled: bool('vcek-disabled'),
  };
}

/** QEMU's line for an object error: visit errors name the option, setter errors do not (QEMU 10.0.13). */
export function objectErrorLine(object: SevGuestObject, read: { readonly error: string; readonly setter?: true }): string {
  return read.setter === true ? `${QEMU_PROGNAME}: ${read.error}` : `${QEMU_PROGNAME}: ${object.optionText}: ${read.error}`;
}

/** The simulated host's SNP firmware: its API version bounds the policy's minimum ABI. */
export interface SnpHostFacts {
  readonly apiMajor: number;
  readonly apiMinor: number;
  /** Whether a sev-device other than /dev/sev exists (the simulated host has /dev/sev). */
  readonly existingDevices: ReadonlySet<string>;
}

/** The -bios image as QEMU 10's x86_bios_rom_init sees it; null when unreadable. */
export interface SnpFirmwareFacts {
  /** The name as given on the command line (QEMU's message quotes it). */
  readonly given: string;
  readonly size: number | null;
  readonly table: OvmfTable | null;
  /** QEMU's non-fatal "OVMF table has invalid size N" line, when the table is corrupt. */
  readonly tableError: string | null;
}

export interface SnpStartupFacts {
  readonly host: SnpHostFacts;
  /** null: no firmware option (QEMU loads its default SeaBIOS, which has no SEV info block). */
  readonly firmware: SnpFirmwareFacts | null;
  /** Whether -kernel is a bzImage; null without -kernel. */
  readonly kernelIsBzImage: boolean | null;
}

export type SnpStartupPlan =
  | { readonly kind: 'fail'; readonly lines: readonly string[]; readonly exit: 'exit-1' | 'abort' }
  | {
      readonly kind: 'snp';
      readonly params: SnpObjectParams;
      /** Non-fatal lines QEMU prints on the way (a corrupt footer table's size). */
      readonly lines: readonly string[];
      /** The AP reset address from the SEV info block (never zero here). */
      readonly resetAddress: number;
      /** QEMU built the kernel-hashes table (kernel-hashes=on, a -kernel bzImage, a valid area). */
      readonly kernelHashesBuilt: boolean;
    };

/** SNP_LAUNCH_START: KVM's policy mask, then the firmware's ABI floor. */
function launchStartProblem(policy: bigint, host: SnpHostFacts): string | null {
  if ((policy & ~KVM_VALID_POLICY) !== 0n || (policy & SNP_POLICY_MBO) === 0n) {
    return `sev_snp_launch_start: SNP_LAUNCH_START ret=-${EINVAL} fw_error=0 ''`;
  }
  const { abiMajor, abiMinor } = decodeSnpPolicy(policy);
  if (abiMajor > host.apiMajor || (abiMajor === host.apiMajor && abiMinor > host.apiMinor)) {
    const fw = SEV_FW_ERRORS.POLICY_FAILURE;
    return `sev_snp_launch_start: SNP_LAUNCH_START ret=${PSP_IOCTL_RET} fw_error=${fw.code} '${fw.text}'`;
  }
  return null;
}

function kvmInitProblems(params: SnpObjectParams, model: QemuArgvModel, host: SnpHostFacts): string[] {
  // sev_common_kvm_init, QEMU 10 order: cbitpos, reduced-phys-bits, open(sev-device), platform
  // status, KVM_SEV_INIT2, launch_start; then sev_snp_kvm_init (SMM).
  if (params.cbitpos !== SIM_HOST_CBITPOS) {
    return [`sev_common_kvm_init: cbitpos check failed, host '${SIM_HOST_CBITPOS}' requested '${params.cbitpos}'`];
  }
  if (params.reducedPhysBits < 1 || params.reducedPhysBits > 63) {
    return [
      `sev_common_kvm_init: reduced_phys_bits check failed, it should be in the range of 1 to 63, requested '${params.reducedPhysBits}'`,
    ];
  }
  if (params.sevDevice !== '/dev/sev' && !host.existingDevices.has(params.sevDevice)) {
    return [`sev_common_kvm_init: Failed to open ${params.sevDevice} 'No such file or directory'`];
  }
  const start = launchStartProblem(params.policy, host);
  if (start !== null) return [start, 'sev_common_kvm_init: failed to create encryption context'];
  if (model.smm === 'on') return ['SEV-SNP does not support SMM.'];
  return [];
}

/** Where QEMU 10 looks for a -bios given without a path, and its default x86 BIOS. */
export const DEFAULT_BIOS = 'bios-256k.bin';

/**
 * QEMU 10's start-up of an SNP guest on the simulated host, up to the paused guest. Lines come
 * with QEMU's prefix (and the `-object …:` / `-accel …:` location where QEMU prints one).
 */
export function planSnpStartup(model: QemuArgvModel, facts: SnpStartupFacts): SnpStartupPlan {
  const object = linkedSevObject(model) as SevGuestObject;
  const read = readSnpObject(object);
  if ('error' in read) return { kind: 'fail', lines: [objectErrorLine(object, read)], exit: 'exit-1' };
  const params = read;
  const accel = initAccelerator(model, () => kvmInitProblems(params, model, facts.host));
  if (accel.kind === 'fail') return accel;
  const lines = [...accel.lines];
  const fail = (...texts: string[]): SnpStartupPlan => ({
    kind: 'fail',
    lines: [...lines, ...texts.map((t) => `${QEMU_PROGNAME}: ${t}`)],
    exit: 'exit-1',
  });

  // x86_bios_rom_init: a non-zero multiple of 64 KiB, copied into guest_memfd RAM below 4 GiB.
  const fw = facts.firmware;
  if (fw !== null && (fw.size === null || firmwareSizeProblem(fw.size) !== null)) {
    return fail(`qemu: could not load PC BIOS '${fw.given}'`);
  }
  if (fw?.tableError != null) lines.push(fw.tableError);
  // x86_firmware_configure → sev_es_save_reset_vector (SNP implies SEV-ES).
  const table = fw?.table ?? null;
  if (table === null || table.sevInfoSource === null) {
    return fail('SEV information block/Firmware GUID Table block not found in pflash rom', 'failed to locate and/or save reset vector');
  }
  if (table.sevInfoResetAddress === null || table.sevInfoResetAddress === 0) {
    return fail('SEV-ES reset address is zero', 'failed to locate and/or save reset vector');
  }
  // x86_load_linux → sev_add_kernel_loader_hashes (only with kernel-hashes=on; bzImage path).
  let kernelHashesBuilt = false;
  if (params.kernelHashes && model.kernel !== null && facts.kernelIsBzImage === true) {
    // QEMU reads base and size from whatever the entry holds; a truncated entry reads as zeros here.
    const area = table.entries.some((e) => e.guid === SEV_HASH_TABLE_RV_GUID) ? (table.hashesArea ?? { base: 0, size: 0 }) : null;
    const problem = describeHashesAreaProblem(area);
    if (problem !== '') return fail(problem);
    kernelHashesBuilt = true;
  }
  return { kind: 'snp', params, lines, resetAddress: table.sevInfoResetAddress, kernelHashesBuilt };
}
