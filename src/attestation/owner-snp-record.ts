// What the owner's service reads from an SNP launch record (issue 12's record kind) relayed by the
// daemon: the expected launch digest the host computed from the inputs it used, the 64-bit policy,
// host data and the ID key digest. Owns: that narrow reading, in one place, so the record's final
// field names change only here. Pure. Must not: believe the record proves anything (it is the host's
// word; the guest's attestation report is the evidence).
// The record is `sevsup.snp-launch/v1` (issue 12: src/vm/snp-record.ts): `sevType` `sev-snp`,
// `state` `launch-update`, `expectedLaunchDigest` (96 hex digits), `policy.value` (0x-hex),
// `hostData` (64 hex digits or null), `idBlock.idKeyDigest` (96 hex digits; `idBlock` null without
// an ID block). Also read, for records from other writers: `kind` for `sevType`, `launchDigest` for
// the digest, `policy` as a number or string, a top-level `idKeyDigest`, base64 for the byte fields.
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
  if (typeof record['state'] === 'string' && record['state'] !== 'launch-update') {
    return `the SNP record was captured in state ${JSON.stringify(record['state'])}, not launch-update (held before the first run)`;
  }
  const rawPolicy = record['policy'];
  const policy = policyOf(isRecord(rawPolicy) ? rawPolicy['value'] : rawPolicy);
  if (policy === null) return 'the SNP record has no 64-bit policy';
  const hostData = optional(record['hostData'], 32);
  const idBlock = record['idBlock'];
  const idKeyDigest = optional(isRecord(idBlock) ? idBlock['idKeyDigest'] : record['idKeyDigest'], 48);
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
