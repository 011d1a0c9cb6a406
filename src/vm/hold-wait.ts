// The wait of the attestation hold, once the guest is reported held: the first of the owner's
// decision, the deadline, QEMU's exit and the launch's abort (hold.ts's AttestationHold), with the
// owner's service asked meanwhile for an `attest: relay` guest (relay-step.ts), and the way it ended
// turned into what the launch does next. Split out of lifecycle.ts, which moves the VM to `held`,
// persists it and reports it before it calls this, and resumes or fails closed after it.
// Owns: starting and ending the relay with the wait, and mapping the outcome: approved returns,
// rejected or timed out throws the refusal (the relay's reason first), QEMU gone throws that failure
// named, an abort throws its reason. Must not: move the VM's state, persist or emit events, resume or
// stop QEMU (the lifecycle does), or return for anything but an approval.
import { SupervisorError } from '../errors.js';
import type { QemuProcess } from '../process/launcher.js';
import { explainFailure } from './failure.js';
import { holdRefusal, type AttestationHold } from './hold.js';

export interface OwnerWait {
  readonly vm: string;
  /** The hold, opened before the guest was reported held (a decision that came at once is kept). */
  readonly hold: AttestationHold;
  readonly deadline: Date;
  /** The hold's length, for the timeout's message. */
  readonly timeoutMs: number;
  readonly proc: QemuProcess;
  /** The launch's signal: stop() and detach() abort it. */
  readonly signal: AbortSignal;
  /**
   * `attest: relay`: ask the owner's service (relay-step.ts) until `end` aborts; `refuse` hears a
   * rejection's reason. Null for a guest held for a person.
   */
  readonly relay: ((end: AbortSignal, refuse: (error: SupervisorError) => void) => Promise<void>) | null;
}

/**
 * Wait for the hold's end; resolves only when the owner (or the relay) approved.
 * @throws SUP_ERR_ATTEST_REJECTED / SUP_ERR_ATTEST_TIMEOUT (or the relay's rejection), the launch's
 *   abort reason, SUP_ERR_QEMU_EXITED (named by failure.ts) when QEMU went away while held.
 */
export async function waitForOwner(o: OwnerWait): Promise<void> {
  // The relay's rejection carries its reason; the hold's end (deadline, stop, QEMU gone, a forced
  // approve) ends the relay.
  let relayRefusal: SupervisorError | null = null;
  const relayEnd = new AbortController();
  const relaying =
    o.relay === null
      ? Promise.resolve()
      : o.relay(relayEnd.signal, (error) => {
          relayRefusal = error;
        });
  let outcome: Awaited<ReturnType<AttestationHold['wait']>>;
  try {
    outcome = await o.hold.wait({ deadline: o.deadline, exited: o.proc.exited, signal: o.signal });
  } finally {
    relayEnd.abort();
    await relaying;
  }
  switch (outcome) {
    case 'approved':
      return;
    case 'aborted':
      o.signal.throwIfAborted();
      // An abort that is no longer pending still must not let the guest run unapproved.
      throw new SupervisorError('SUP_ERR_VM_STATE', `VM ${o.vm}: the hold ended without an approval`);
    case 'rejected':
    case 'timeout':
      throw (outcome === 'rejected' ? relayRefusal : null) ?? holdRefusal(o.vm, outcome, o.timeoutMs);
    case 'exited':
      throw await explainFailure(
        o.vm,
        o.proc,
        new SupervisorError('SUP_ERR_QEMU_EXITED', 'QEMU exited while held'),
        'the attestation hold',
      );
  }
}
