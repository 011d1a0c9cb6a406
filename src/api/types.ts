// The control API's wire shapes, shared by the server (api/server.ts) and the CLI's client.
// Owns: request/response types and the narrowing of request bodies. Pure: no I/O.
// Must not: import anything heavy (the CLI client loads this on every `sevsup attest`).
import { SupervisorError } from '../errors.js';
import { decodeStrictBase64 } from '../sev/measurement.js';

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

/**
 * Narrow a decoded JSON body to an AttestRequest.
 * @throws SUP_ERR_API_BAD_REQUEST naming the member that is wrong (never echoing secret values).
 */
export function parseAttestRequest(value: unknown): AttestRequest {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('the body must be a JSON object');
  const body: Record<string, unknown> = { ...value };
  const action = body['action'];
  const allowed = (names: readonly string[]): void => {
    const extra = Object.keys(body).filter((k) => !names.includes(k));
    if (extra.length > 0) throw bad(`unexpected member ${JSON.stringify(extra[0])} for action ${String(action)}`);
  };
  switch (action) {
    case 'approve':
    case 'reject':
      allowed(['action']);
      return { action };
    case 'inject-secret': {
      allowed(['action', 'packetHeader', 'secret', 'gpa']);
      const { packetHeader, secret, gpa } = body;
      if (typeof packetHeader !== 'string' || !isBase64(packetHeader)) throw bad('"packetHeader" must be non-empty base64');
      if (typeof secret !== 'string' || !isBase64(secret)) throw bad('"secret" must be non-empty base64');
      if (gpa === undefined) return { action, packetHeader, secret };
      if (typeof gpa !== 'number' || !Number.isSafeInteger(gpa) || gpa < 0) throw bad('"gpa" must be a non-negative integer');
      return { action, packetHeader, secret, gpa };
    }
    default:
      throw bad('"action" must be "approve", "reject" or "inject-secret"');
  }
}

/** Canonical, padded, non-empty base64: what sevsup forwards to QEMU (whose decoder is lenient). */
function isBase64(text: string): boolean {
  return text.length > 0 && decodeStrictBase64(text) !== null;
}

function bad(message: string): SupervisorError {
  return new SupervisorError('SUP_ERR_API_BAD_REQUEST', `attest request: ${message}`);
}
