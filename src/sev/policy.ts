// SEV guest policy: encode from a SevSpec exactly as the seed does, and decode for messages/records.
// Owns: the policy bit layout (DESIGN "Words"). Pure: no I/O. SEV-SNP's 64-bit policy: snp-policy.ts.
import { SupervisorError } from '../errors.js';

/**
 * What the policy is built from: the SEV flavour and its two owner-chosen bits (config/ validates
 * them; a config SevSpec fits, sev/ does not import config/). `snp` is refused (64-bit policy).
 */
export interface PolicyInputs {
  readonly type: 'std' | 'es' | 'snp';
  readonly nodbg: boolean;
  readonly noks?: boolean;
}

export const POLICY_BITS = {
  NODBG: 0x1,
  NOKS: 0x2,
  ES: 0x4,
  NOSEND: 0x8,
  DOMAIN: 0x10,
  SEV: 0x20,
} as const;

export type PolicyFlag = keyof typeof POLICY_BITS;

/**
 * The seed's computation: bit 0 nodbg, bit 1 noks, bit 2 when type=es, bit 3 (NOSEND) always,
 * because SEV migration is not supported. `std` → 0x8 … `es,nodbg=1,noks=1` → 0xf.
 * @throws SUP_ERR_INTERNAL for `snp`, whose policy is 64-bit with other bits (snp-policy.ts): a caller
 *   that reaches here with an SNP guest must fail, never launch it with a SEV policy.
 */
export function encodePolicy(sev: PolicyInputs): number {
  if (sev.type === 'snp') {
    throw new SupervisorError(
      'SUP_ERR_INTERNAL',
      'the SEV policy was asked for an SEV-SNP guest; SNP uses the 64-bit policy of sev/snp-policy.ts',
    );
  }
  let policy = POLICY_BITS.NOSEND;
  if (sev.nodbg) policy |= POLICY_BITS.NODBG;
  if (sev.noks === true) policy |= POLICY_BITS.NOKS;
  if (sev.type === 'es') policy |= POLICY_BITS.ES;
  return policy;
}

export interface DecodedPolicy {
  readonly value: number;
  readonly hex: string;
  readonly flags: readonly PolicyFlag[];
  readonly sevType: 'std' | 'es';
  /** Minimum firmware API version (bits 16..23 major, 24..31 minor). */
  readonly apiMajor: number;
  readonly apiMinor: number;
}

/** Decode a 32-bit SEV policy into named flags. Throws RangeError outside uint32. */
export function decodePolicy(value: number): DecodedPolicy {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`policy must be a 32-bit unsigned integer, got ${value}`);
  }
  const flags = (Object.keys(POLICY_BITS) as PolicyFlag[]).filter((name) => (value & POLICY_BITS[name]) !== 0);
  return {
    value,
    hex: formatPolicy(value),
    flags,
    sevType: (value & POLICY_BITS.ES) !== 0 ? 'es' : 'std',
    apiMajor: (value >>> 16) & 0xff,
    apiMinor: (value >>> 24) & 0xff,
  };
}

/** `0x8`-style hex, as the seed's sprintf("%#x") prints it (0 prints as `0x0`). */
export function formatPolicy(value: number): string {
  return `0x${value.toString(16)}`;
}

/** Short human description, e.g. "0xf (SEV-ES, NODBG, NOKS, NOSEND)". */
export function describePolicy(value: number): string {
  const decoded = decodePolicy(value);
  const parts = [decoded.sevType === 'es' ? 'SEV-ES' : 'SEV', ...decoded.flags.filter((f) => f !== 'ES')];
  return `${decoded.hex} (${parts.join(', ')})`;
}
