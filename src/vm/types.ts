// The lifecycle's own types: what an owner asks of a held guest, what that did, a guest's status,
// the lifecycle's events and how a launch ended.
// The control API serves these shapes (api/types.ts re-exports them); they belong to vm/, which must
// not import api/. Pure: types only.
import type { SupervisorError } from '../errors.js';
import type { RecordPlatform } from './record.js';
import type { VmState } from './state.js';

/**
 * Who asked and whether they override the relay: `force` (from the request) lets an operator approve
 * or inject into a guest whose owner's service decides (`attest: relay`); `peer` is set by the
 * control API from the socket's credentials, never read from the body.
 */
interface AttestOverride {
  readonly force?: boolean;
  readonly peer?: string;
}

export type AttestRequest =
  | ({ readonly action: 'approve' } & AttestOverride)
  | ({ readonly action: 'reject' } & AttestOverride)
  | ({
      readonly action: 'inject-secret';
      /** base64 of the launch secret packet header (as `sev-inject-launch-secret` takes it). */
      readonly packetHeader: string;
      /** base64 of the encrypted secret. */
      readonly secret: string;
      /** Guest physical address; absent: the firmware's launch-secret area. */
      readonly gpa?: number;
    } & AttestOverride);

export type AttestAction = AttestRequest['action'];

/** What an attest call did; never carries the secret. */
export interface AttestResult {
  readonly vm: string;
  readonly action: AttestAction;
  readonly state: string;
  /** inject-secret only. */
  readonly gpa?: number;
  readonly headerBytes?: number;
  readonly secretBytes?: number;
}

/** `GET /v1/vms/<vm>`. */
export interface VmStatus {
  readonly vm: string;
  readonly state: string;
  readonly platform: 'hardware' | 'simulated';
  readonly sev: boolean;
  readonly pid: number | null;
  /** Path of this launch's measurement record, once written. */
  readonly record: string | null;
  /** ISO time a held guest is rejected at; null when not held. */
  readonly holdDeadline: string | null;
  /** Secrets injected during this hold. */
  readonly secretsInjected: number;
  readonly error: { readonly code: string; readonly message: string } | null;
}

export type LifecycleEvent =
  | { readonly event: 'starting'; readonly platform: RecordPlatform; readonly sev: boolean }
  | { readonly event: 'spawned'; readonly pid: number }
  | { readonly event: 'attached'; readonly pid: number; readonly was: VmState; readonly qemuStatus: string }
  | {
      readonly event: 'checked';
      readonly policy: string;
      readonly sevType: string;
      readonly apiMajor: number;
      readonly apiMinor: number;
      readonly buildId: number;
    }
  | { readonly event: 'measured'; readonly record: string; readonly measurement: string }
  /** SEV-SNP: the launch record is durable (before `cont`); what the guest's report must carry. */
  | {
      readonly event: 'snp-recorded';
      readonly record: string;
      readonly expectedLaunchDigest: string;
      readonly hostData: string | null;
      readonly idKeyDigest: string | null;
      /** Whether the ID block pins this digest and policy (false: the platform will refuse the launch); null without one. */
      readonly idBlockMatches: boolean | null;
    }
  | {
      readonly event: 'held';
      readonly deadline: string;
      readonly timeoutSeconds: number;
      readonly controlSocket: string | null;
      /** Whether the owner may inject a launch secret (SEV / SEV-ES; never SEV-SNP). */
      readonly secretInjection: boolean;
    }
  | { readonly event: 'secret-injected'; readonly gpa: number; readonly headerBytes: number; readonly secretBytes: number }
  | { readonly event: 'resumed' }
  | { readonly event: 'running'; readonly pid: number }
  | { readonly event: 'paused'; readonly reason: string }
  | { readonly event: 'stopping'; readonly reason: string }
  | {
      readonly event: 'stopped';
      readonly how: string;
      readonly exitCode: number | null;
      readonly signal: string | null;
    }
  | { readonly event: 'failed'; readonly code: string; readonly message: string };

/** An event as delivered: with the VM and a timestamp. */
export type LifecycleEventRecord = LifecycleEvent & { readonly vm: string; readonly time: string };

export type LifecycleOutcome =
  | { readonly state: 'stopped'; readonly how: string; readonly ran: boolean }
  | { readonly state: 'failed'; readonly error: SupervisorError; readonly ran: boolean }
  /** detach(): QEMU was left running, unsupervised by this lifecycle. */
  | { readonly state: 'detached'; readonly ran: boolean };
