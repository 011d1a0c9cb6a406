// The owner service's decision on one relayed launch: request record + the guest's loaded reference
// values and keys → approve, inject (with the packet) or reject, with reasons. Pure: no I/O, no
// clock; randomness (the packet's IV) may come in. Verifies with verify.ts (`sevsup verify`'s code)
// and seals with secret-packet.ts (`sevsup secret build`'s code).
// Owns: which checks apply to a relayed record and their order. Must not: log, read files, or put
// key or secret bytes in reasons (reasons go to the host and to logs).
// Replay is not judged here (it is state: owner-replay.ts), nor who the host is (owner-server.ts).
import { isSupervisorError } from '../errors.js';
import type { OvmfTable } from '../sev/ovmf-table.js';
import { formatPolicy } from '../sev/policy.js';
import { parseRecord } from '../vm/record.js';
import { sealLaunchSecret } from './secret-packet.js';
import type { AttestRequest } from './relay-protocol.js';
import { readSnpLaunchRecord } from './owner-snp-record.js';
import { verifyLaunch } from './verify.js';

export interface LoadedSevGuest {
  readonly type: 'sev' | 'sev-es';
  readonly host: string;
  readonly vm: string;
  /** GCTX.LD the owner expects: computed from its own inputs, or configured. */
  readonly digest: Buffer;
  readonly policies: readonly number[];
  readonly minApi: { readonly major: number; readonly minor: number } | null;
  readonly buildIds: readonly number[] | null;
  readonly tik: Buffer;
  readonly tek: Buffer | null;
  /** Empty: approve; otherwise inject these. */
  readonly secrets: readonly { readonly guid: string; readonly data: Buffer }[];
  /** The owner's firmware (for the secret-area fit), when the digest came from inputs. */
  readonly firmware: { readonly path: string; readonly table: OvmfTable } | null;
}

export interface LoadedSnpGuest {
  readonly type: 'snp';
  readonly host: string;
  readonly vm: string;
  readonly digest: Buffer;
  readonly policy: bigint;
  readonly hostData: Buffer | null;
  readonly idKeyDigest: Buffer | null;
}

export type LoadedGuest = LoadedSevGuest | LoadedSnpGuest;

export type OwnerDecision =
  | { readonly verdict: 'approve'; readonly reasons: readonly string[] }
  | {
      readonly verdict: 'inject';
      readonly reasons: readonly string[];
      readonly header: Buffer;
      readonly payload: Buffer;
      readonly secrets: number;
    }
  | {
      readonly verdict: 'reject';
      readonly reasons: readonly string[];
      /**
       * The TIK authenticated the evidence (its MAC verified) though a check failed. Only such rejects
       * are remembered against replay: made-up evidence costs a host nothing, so remembering it would
       * let a host grow the state file without bound, and burn a measurement it saw elsewhere.
       */
      readonly authenticated: boolean;
    };

const reject = (...reasons: string[]): OwnerDecision => ({ verdict: 'reject', reasons, authenticated: false });

/** Decide on `request` for `guest` (already chosen by host identity and VM name). */
export function decideAttestation(request: AttestRequest, guest: LoadedGuest, o: { iv?: Buffer } = {}): OwnerDecision {
  return guest.type === 'snp' ? decideSnp(request, guest) : decideSev(request, guest, o);
}

function decideSev(request: AttestRequest, guest: LoadedSevGuest, o: { iv?: Buffer }): OwnerDecision {
  const record = parseRecord(request.record);
  if (record === null) return reject('the record is not a sevsup.measurement/v1 measurement record (SEV, SEV-ES)');
  if (record.vm !== request.vm) return reject('the record is for another VM than the request names');
  if (record.sevType !== guest.type) return reject(`the record is an ${record.sevType} launch; the owner expects ${guest.type}`);
  if (record.state !== 'launch-secret') {
    return reject(`the record was captured in SEV state ${JSON.stringify(record.state)}, not launch-secret (held before the first cont)`);
  }
  const problems: string[] = [];
  if (!guest.policies.includes(record.policy)) {
    problems.push(`policy ${formatPolicy(record.policy)} is not one the owner allows (${guest.policies.map(formatPolicy).join(', ')})`);
  }
  let outcome: ReturnType<typeof verifyLaunch>;
  try {
    outcome = verifyLaunch({
      reported: {
        measurement: record.measurement,
        apiMajor: record.apiMajor,
        apiMinor: record.apiMinor,
        buildId: record.buildId,
        policy: record.policy,
      },
      tik: guest.tik,
      launchDigest: guest.digest,
      checks: {
        ...(guest.minApi === null ? {} : { minApi: guest.minApi }),
        ...(guest.buildIds === null ? {} : { allowedBuildIds: guest.buildIds }),
      },
    });
  } catch (error: unknown) {
    // A malformed measurement or out-of-range host values: the evidence cannot be checked.
    if (isSupervisorError(error))
      return reject(...problems, `cannot verify: ${error.message.replace(/^--measurement: /, 'measurement: ')}`);
    throw error;
  }
  problems.push(...outcome.checks.filter((c) => !c.ok).map((c) => c.message));
  if (problems.length > 0) {
    const macOk = outcome.checks.find((c) => c.name === 'measurement')?.ok === true;
    return { verdict: 'reject', reasons: problems, authenticated: macOk };
  }
  const reasons = outcome.checks.map((c) => c.message);
  reasons.push(`policy ${formatPolicy(record.policy)} is allowed`);
  if (guest.secrets.length === 0) return { verdict: 'approve', reasons };
  if (guest.tek === null) return reject('the owner has secrets for this guest but no TEK');
  try {
    const { packet } = sealLaunchSecret({
      tik: guest.tik,
      tek: guest.tek,
      measurement: record.measurement,
      secrets: guest.secrets,
      firmware: guest.firmware,
      ...(o.iv === undefined ? {} : { iv: o.iv }),
    });
    return { verdict: 'inject', reasons, header: packet.header, payload: packet.payload, secrets: guest.secrets.length };
  } catch (error: unknown) {
    if (isSupervisorError(error)) return reject(`cannot build the launch secret: ${error.message}`);
    throw error;
  }
}

function decideSnp(request: AttestRequest, guest: LoadedSnpGuest): OwnerDecision {
  const view = readSnpLaunchRecord(request.record);
  if (typeof view === 'string') return reject(view);
  if (view.vm !== request.vm) return reject('the record is for another VM than the request names');
  const problems: string[] = [];
  const reasons: string[] = [];
  const check = (ok: boolean, good: string, bad: string): void => {
    (ok ? reasons : problems).push(ok ? good : bad);
  };
  check(view.digest.equals(guest.digest), 'the launch digest is the expected one', "the launch digest is not the owner's expected digest");
  check(
    view.policy === guest.policy,
    `policy 0x${view.policy.toString(16)} is the expected one`,
    `policy 0x${view.policy.toString(16)} is not the expected 0x${guest.policy.toString(16)}`,
  );
  if (guest.hostData !== null) {
    check(
      view.hostData?.equals(guest.hostData) === true,
      'host data is the expected one',
      view.hostData === null ? 'the launch has no host data; the owner expects some' : 'host data differs from the expected',
    );
  }
  if (guest.idKeyDigest !== null) {
    check(
      view.idKeyDigest?.equals(guest.idKeyDigest) === true,
      "the ID block is signed by the owner's ID key",
      view.idKeyDigest === null
        ? 'the launch has no ID block; the owner expects one signed by its ID key'
        : 'the ID key digest differs from the expected',
    );
  }
  if (problems.length > 0) return reject(...problems);
  // The record is the host's word: the guest's attestation report (sevsup verify --report) is the proof.
  reasons.push("approved on the host's SNP launch record; the guest's attestation report is what proves it");
  return { verdict: 'approve', reasons };
}
