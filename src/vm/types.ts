// The lifecycle's own types: what an owner asks of a held guest, what that did, and a guest's status.
// The control API serves these shapes (api/types.ts re-exports them); they belong to vm/, which must
// not import api/. Pure: types only.

export type AttestRequest =
  | { readonly action: 'approve' }
  | { readonly action: 'reject' }
  | {
      readonly action: 'inject-secret';
      /** base64 of the launch secret packet header (as `sev-inject-launch-secret` takes it). */
      readonly packetHeader: string;
      /** base64 of the encrypted secret. */
      readonly secret: string;
      /** Guest physical address; absent: the firmware's launch-secret area. */
      readonly gpa?: number;
    };

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
