// What the owner's service reads from an SNP launch record (issue 12's record kind) relayed by the
// daemon: the expected launch digest the host computed from the inputs it used, the 64-bit policy,
// host data and the ID key digest. Owns: that narrow reading, in one place, so the record's final
// field names change only here. Pure. Must not: believe the record proves anything (it is the host's
// word; the guest's attestation report is the evidence).
// Accepted spellings: `sevType` (or `kind`) `sev-snp`/`snp`; the digest as `launchDigest` or
// `expectedLaunchDigest` (96 hex digits); `policy` a number or 0x-hex string; `hostData` and
// `idKeyDigest` hex (or base64), null or absent.
import { isRecord } from '../util/is-record.js';

export interface SnpLaunchView {
  readonly vm: string | null;
  readonly digest: Buffer;
  readonly policy: bigint;
  readonly hostData: Buffer | null;
  readonly idKeyDigest: Buffer | null;
}

/** The view, or why the record is not an SNP launch record (a reason for the host). */
export function readSnpLaunchRecord(record: unknown): SnpLaunchView | string {
  if (!isRecord(record)) return 'the record is not an object';
  const kind = record['sevType'] ?? record['kind'];
  if (kind !== 'sev-snp' && kind !== 'snp') return 'the record is not an SNP launch record (sevType sev-snp)';
  const digest = bytes(record['launchDigest'] ?? record['expectedLaunchDigest'], 48);
  if (digest === null) return 'the SNP record has no 48-byte launch digest';
  const policy = policyOf(record['policy']);
  if (policy === null) return 'the SNP record has no 64-bit policy';
  const hostData = optional(record['hostData'], 32);
  const idKeyDigest = optional(record['idKeyDigest'], 48);
  if (hostData === undefined) return "the SNP record's host data is not 32 bytes";
  if (idKeyDigest === undefined) return "the SNP record's ID key digest is not 48 bytes";
  const vm = typeof record['vm'] === 'string' ? record['vm'] : null;
  return { vm, digest, policy, hostData, idKeyDigest };
}

function bytes(value: unknown, n: number): Buffer | null {
  if (typeof value !== 'string') return null;
  if (new RegExp(`^(0x)?[0-9a-fA-F]{${2 * n}}$`).test(value)) return Buffer.from(value.replace(/^0x/, ''), 'hex');
  const b = /^[A-Za-z0-9+/]+={0,2}$/.test(value) ? Buffer.from(value, 'base64') : null;
  return b !== null && b.length === n && b.toString('base64') === value ? b : null;
}

function optional(value: unknown, n: number): Buffer | null | undefined {
  if (value === undefined || value === null) return null;
  return bytes(value, n) ?? undefined;
}

function policyOf(value: unknown): bigint | null {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === 'string' && /^(0x[0-9a-fA-F]{1,16}|\d{1,20})$/.test(value)) {
    const p = BigInt(value);
    return p <= 0xffff_ffff_ffff_ffffn ? p : null;
  }
  return null;
}
