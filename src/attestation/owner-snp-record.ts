// What the owner's service reads from an SNP launch record (issue 12's record kind) relayed by the
// daemon: the expected launch digest the host computed from the inputs it used, the 64-bit policy,
// host data and the ID key digest. Owns: that narrow view, taken from the one narrowing of the
// record (vm/snp-record.ts parseSnpRecord: attestation/ may import vm/, DESIGN "Modules"), plus the
// owner's own rule that the record was captured before the first run. Pure. Must not: parse the
// record's fields itself (one parser for `sevsup.snp-launch/v1`), nor believe the record proves
// anything (it is the host's word; the guest's attestation report is the evidence). Nothing here
// reads `launch.qemuVersion`: on the simulated platform it names the QEMU the simulator ran
// underneath (docs/snp-attestation.md), and which QEMU ran is not the owner's criterion.
import { isRecord } from '../util/is-record.js';
import { parseSnpRecord } from '../vm/snp-record.js';

export interface SnpLaunchView {
  readonly vm: string;
  readonly digest: Buffer;
  readonly policy: bigint;
  readonly hostData: Buffer | null;
  readonly idKeyDigest: Buffer | null;
}

/** The view, or why the record is not an SNP launch record (a reason for the host). */
export function readSnpLaunchRecord(record: unknown): SnpLaunchView | string {
  if (!isRecord(record)) return 'the record is not an object';
  if (record['sevType'] !== 'sev-snp') return 'the record is not an SNP launch record (sevType sev-snp)';
  const r = parseSnpRecord(record);
  if (r === null) return 'the SNP record is not a well-formed sevsup.snp-launch/v1 record (docs/snp-attestation.md)';
  if (r.state !== 'launch-update') {
    return `the SNP record was captured in state ${JSON.stringify(r.state)}, not launch-update (held before the first run)`;
  }
  return {
    vm: r.vm,
    digest: Buffer.from(r.expectedLaunchDigest, 'hex'),
    policy: BigInt(r.policy.value),
    hostData: r.hostData === null ? null : Buffer.from(r.hostData, 'hex'),
    idKeyDigest: r.idBlock === null ? null : Buffer.from(r.idBlock.idKeyDigest, 'hex'),
  };
}
