// SEV-SNP guest policy (64-bit): encode from named fields, decode for messages and records with the
// sense of every bit, and say what sevsup refuses. Layout: SNP ABI spec GUEST_POLICY, as sev-rs,
// go-sev-guest, libvirt, QEMU (SEV_SNP_POLICY_SMT/_DBG) and KVM (RSVD_MBO) agree (snp-facts §2.2).
// Note the sense: SMT and DEBUG are "allowed when set", the opposite of SEV's NODBG/NOKS bits.
// Owns: the bit layout, names and meanings. Pure: no I/O. Must not: import config/ (DESIGN) — the
// config layer maps its keys onto SnpPolicyFields.

/** Each named bit, with what it means when it is set. */
export const SNP_POLICY_FLAGS = {
  SMT: { bit: 16, meaning: 'SMT allowed on the host' },
  RESERVED_MBO: { bit: 17, meaning: 'reserved, must be one' },
  MIGRATE_MA: { bit: 18, meaning: 'a migration agent may be associated' },
  DEBUG: { bit: 19, meaning: 'debugging allowed (the host can read and write guest memory through the PSP)' },
  SINGLE_SOCKET: { bit: 20, meaning: 'guest may run on one socket only' },
  CXL_ALLOW: { bit: 21, meaning: 'CXL devices and memory allowed' },
  MEM_AES_256_XTS: { bit: 22, meaning: 'memory encryption must use AES-256-XTS' },
  RAPL_DIS: { bit: 23, meaning: 'RAPL must be disabled on the host' },
  CIPHERTEXT_HIDING: { bit: 24, meaning: 'ciphertext hiding must be enabled on the host' },
  PAGE_SWAP_DISABLE: { bit: 25, meaning: "the guest's page move/swap commands are disabled" },
} as const;

export type SnpPolicyFlag = keyof typeof SNP_POLICY_FLAGS;

/** The mask of one named bit. */
export const snpPolicyFlagMask = (name: SnpPolicyFlag): bigint => 1n << BigInt(SNP_POLICY_FLAGS[name].bit);
const flagMask = snpPolicyFlagMask;

/** Bit 17: every SNP policy must set it (firmware refuses one without). */
export const SNP_POLICY_MBO = flagMask('RESERVED_MBO');
/** Bits 63:26 are reserved and must be zero. */
export const SNP_POLICY_RESERVED_HIGH = ~((1n << 26n) - 1n) & 0xffffffffffffffffn;
/** QEMU's default policy: SMT allowed, bit 17. */
export const QEMU_DEFAULT_SNP_POLICY = 0x30000n;
const U64_MAX = 0xffffffffffffffffn;

/** The policy as named fields (the minimum firmware ABI in bits 15:8 major, 7:0 minor). */
export interface SnpPolicyFields {
  readonly abiMajor: number;
  readonly abiMinor: number;
  readonly smt: boolean;
  readonly migrateMa: boolean;
  readonly debug: boolean;
  readonly singleSocket: boolean;
  readonly cxlAllow: boolean;
  readonly memAes256Xts: boolean;
  readonly raplDis: boolean;
  readonly ciphertextHiding: boolean;
  readonly pageSwapDisable: boolean;
}

const FIELD_FLAGS: readonly (readonly [keyof SnpPolicyFields, SnpPolicyFlag])[] = [
  ['smt', 'SMT'],
  ['migrateMa', 'MIGRATE_MA'],
  ['debug', 'DEBUG'],
  ['singleSocket', 'SINGLE_SOCKET'],
  ['cxlAllow', 'CXL_ALLOW'],
  ['memAes256Xts', 'MEM_AES_256_XTS'],
  ['raplDis', 'RAPL_DIS'],
  ['ciphertextHiding', 'CIPHERTEXT_HIDING'],
  ['pageSwapDisable', 'PAGE_SWAP_DISABLE'],
];

/**
 * The 64-bit policy for `fields`; bit 17 is always set.
 * @throws RangeError for an ABI major/minor outside 0..255 (a caller bug: config validates them).
 */
export function encodeSnpPolicy(fields: SnpPolicyFields): bigint {
  for (const [name, v] of [
    ['abiMajor', fields.abiMajor],
    ['abiMinor', fields.abiMinor],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`${name} must be 0..255, got ${v}`);
  }
  let policy = SNP_POLICY_MBO | (BigInt(fields.abiMajor) << 8n) | BigInt(fields.abiMinor);
  for (const [field, flag] of FIELD_FLAGS) if (fields[field] === true) policy |= flagMask(flag);
  return policy;
}

export interface DecodedSnpPolicy extends SnpPolicyFields {
  readonly value: bigint;
  readonly hex: string;
  /** Set flags, in bit order (RESERVED_MBO included when set). */
  readonly flags: readonly SnpPolicyFlag[];
  /** Set reserved bits 63:26 (non-zero: firmware and KVM refuse the policy). */
  readonly reservedHigh: bigint;
}

/**
 * Decode any u64 into named fields (reserved bits reported, not dropped).
 * @throws RangeError outside u64.
 */
export function decodeSnpPolicy(value: bigint): DecodedSnpPolicy {
  if (value < 0n || value > U64_MAX) throw new RangeError(`SNP policy must be a 64-bit unsigned integer, got ${value}`);
  const has = (flag: SnpPolicyFlag): boolean => (value & flagMask(flag)) !== 0n;
  const flags = (Object.keys(SNP_POLICY_FLAGS) as SnpPolicyFlag[]).filter(has);
  return {
    value,
    hex: formatSnpPolicy(value),
    flags,
    reservedHigh: value & SNP_POLICY_RESERVED_HIGH,
    abiMajor: Number((value >> 8n) & 0xffn),
    abiMinor: Number(value & 0xffn),
    smt: has('SMT'),
    migrateMa: has('MIGRATE_MA'),
    debug: has('DEBUG'),
    singleSocket: has('SINGLE_SOCKET'),
    cxlAllow: has('CXL_ALLOW'),
    memAes256Xts: has('MEM_AES_256_XTS'),
    raplDis: has('RAPL_DIS'),
    ciphertextHiding: has('CIPHERTEXT_HIDING'),
    pageSwapDisable: has('PAGE_SWAP_DISABLE'),
  };
}

/** `0x30000`-style hex. */
export function formatSnpPolicy(value: bigint): string {
  return `0x${value.toString(16)}`;
}

/**
 * Why sevsup would not launch (or sign an ID block for) this policy; empty when it is acceptable.
 * Bit 17 clear and reserved bits are refused by the firmware anyway; the migration agent is refused
 * for the reason sevsup always sets SEV's NOSEND: an encrypted guest is never migrated.
 */
export function snpPolicyProblems(value: bigint): string[] {
  const problems: string[] = [];
  if (value < 0n || value > U64_MAX) return [`${value} is not a 64-bit value`];
  if ((value & SNP_POLICY_MBO) === 0n) problems.push('bit 17 (reserved, must be one) is clear; the firmware refuses such a policy');
  const high = value & SNP_POLICY_RESERVED_HIGH;
  if (high !== 0n) problems.push(`reserved bits 63:26 are set (${formatSnpPolicy(high)}); no firmware defines them`);
  if ((value & flagMask('MIGRATE_MA')) !== 0n) {
    problems.push(
      "bit 18 (MIGRATE_MA) allows a migration agent; sevsup never migrates an encrypted guest (as it always sets SEV's NOSEND)",
    );
  }
  return problems;
}

/** Whether the policy lets the host debug the guest (bit 19 set). */
export function snpPolicyAllowsDebug(value: bigint): boolean {
  return (value & flagMask('DEBUG')) !== 0n;
}

/** Short description, e.g. "0xb0000 (SNP, ABI ≥ 0.0, SMT allowed, DEBUG allowed)". */
export function describeSnpPolicy(value: bigint): string {
  const d = decodeSnpPolicy(value);
  const parts = [`SNP, ABI >= ${d.abiMajor}.${d.abiMinor}`];
  parts.push(d.smt ? 'SMT allowed' : 'SMT not allowed');
  parts.push(d.debug ? 'DEBUG allowed' : 'no debugging');
  for (const flag of d.flags) {
    if (flag === 'SMT' || flag === 'DEBUG' || flag === 'RESERVED_MBO') continue;
    parts.push(flag);
  }
  if ((value & SNP_POLICY_MBO) === 0n) parts.push('bit 17 CLEAR');
  if (d.reservedHigh !== 0n) parts.push(`reserved ${formatSnpPolicy(d.reservedHigh)}`);
  return `${d.hex} (${parts.join(', ')})`;
}

/** The policy as `verify --report --json` prints it: hex, minimum ABI, set flags (bit 17 left out). */
export interface SnpPolicyView {
  readonly value: string;
  readonly abiMajor: number;
  readonly abiMinor: number;
  readonly flags: readonly SnpPolicyFlag[];
}

export function snpPolicyView(value: bigint): SnpPolicyView {
  const d = decodeSnpPolicy(value);
  return { value: d.hex, abiMajor: d.abiMajor, abiMinor: d.abiMinor, flags: d.flags.filter((f) => f !== 'RESERVED_MBO') };
}

/** Every bit with its state and meaning, for JSON records and `--json` output. */
export function explainSnpPolicy(value: bigint): { bit: number; name: SnpPolicyFlag; set: boolean; meaning: string }[] {
  return (Object.keys(SNP_POLICY_FLAGS) as SnpPolicyFlag[]).map((name) => ({
    bit: SNP_POLICY_FLAGS[name].bit,
    name,
    set: (value & flagMask(name)) !== 0n,
    meaning: SNP_POLICY_FLAGS[name].meaning,
  }));
}

/**
 * The config's SNP options in their own sense (a config SnpSpec fits structurally; sev/ does not
 * import config/). `nodbg` is Proxmox's `no-debug`: false (the default) leaves DEBUG set.
 */
export interface SnpPolicyConfig {
  /** `no-debug=1`: clear bit 19 (DEBUG). Proxmox's default 0 leaves debugging allowed. */
  readonly nodbg: boolean;
  /** `allow-smt` (default 1): bit 16. */
  readonly allowSmt: boolean;
  readonly singleSocket: boolean;
  readonly cxlAllow: boolean;
  readonly aes256Xts: boolean;
  readonly raplDis: boolean;
  readonly ciphertextHiding: boolean;
  readonly pageSwapDisable: boolean;
  /** `abi=MAJOR.MINOR`: the minimum firmware ABI (bits 15:0); absent: 0.0. */
  readonly abi?: { readonly major: number; readonly minor: number };
}

/**
 * Proxmox's computation extended by the named bits: bit 17 always, SMT unless `allow-smt=0`,
 * DEBUG unless `no-debug=1`; never MIGRATE_MA. `type=snp` alone → 0xb0000 (Proxmox's default).
 */
export function snpPolicyFromConfig(c: SnpPolicyConfig): bigint {
  return encodeSnpPolicy({
    abiMajor: c.abi?.major ?? 0,
    abiMinor: c.abi?.minor ?? 0,
    smt: c.allowSmt,
    migrateMa: false,
    debug: !c.nodbg,
    singleSocket: c.singleSocket,
    cxlAllow: c.cxlAllow,
    memAes256Xts: c.aes256Xts,
    raplDis: c.raplDis,
    ciphertextHiding: c.ciphertextHiding,
    pageSwapDisable: c.pageSwapDisable,
  });
}
