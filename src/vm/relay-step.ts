// The relay step of an `attest: relay` hold: while the guest waits paused, ask the guest owner's
// service (the composition's relay, src/relay/relay.ts) and hand its decision to the hold through
// the owner's queue, so it is ordered with the owner's own actions (an injected secret before the
// approval it came with). Split out of lifecycle.ts, which opens the hold and starts this beside it.
// Owns: turning the relay's outcome (or its failure, or a launch without a relay or a record) into
// the owner's decision, and keeping the rejection's reason for the hold to report.
// Must not: move the VM's state, resume or stop QEMU (the lifecycle does, from the hold's outcome),
// act once the hold has ended, or throw (its failures are a rejection).
import type { RelaySpec } from '../config/vm-spec.js';
import { SupervisorError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RelayHold, RelayOutcome } from '../relay/relay.js';
import type { OwnerActions } from './hold.js';

export interface RelayStep {
  readonly vm: string;
  /** The config's relay line; undefined when the config has none. */
  readonly spec: RelaySpec | undefined;
  /** The composition's relay client (LifecycleOptions.relay); undefined when none was given. */
  readonly run: ((hold: RelayHold) => Promise<RelayOutcome>) | undefined;
  /** The durable record the owner's service is sent; null when the launch has none. */
  readonly recordPath: string | null;
  readonly deadline: Date;
  /** The hold's end (deadline, stop, QEMU gone, a forced approve): the relay stops, and nothing is decided. */
  readonly signal: AbortSignal;
  /** The owner's actions: the relay's secret and decision go through its queue. */
  readonly owner: Pick<OwnerActions, 'relayInject' | 'relayDecide'>;
  /** Hears a rejection's error before the hold does. */
  readonly refuse: (error: SupervisorError) => void;
  readonly logger: Logger;
}

/** Ask the owner's service and decide the hold. Never throws; does nothing once the hold ended. */
export async function relayToOwner(o: RelayStep): Promise<void> {
  const { vm, spec, run, recordPath } = o;
  let outcome: RelayOutcome;
  if (spec === undefined || run === undefined || recordPath === null) {
    const error = new SupervisorError(
      'SUP_ERR_RELAY_CREDENTIALS',
      `VM ${vm} is attest: relay, but this launch has no relay or no record; rejected`,
    );
    outcome = { approved: false, error };
  } else {
    outcome = await run({
      vm,
      spec,
      recordPath,
      deadline: o.deadline,
      signal: o.signal,
      inject: (packet) => o.owner.relayInject(packet),
      logger: o.logger,
    }).catch(
      (error: unknown): RelayOutcome => ({
        approved: false,
        error:
          error instanceof SupervisorError
            ? error
            : new SupervisorError('SUP_ERR_INTERNAL', `VM ${vm}: the relay failed`, { cause: error }),
      }),
    );
  }
  if (o.signal.aborted) return;
  if (!outcome.approved) o.refuse(outcome.error);
  await o.owner.relayDecide(outcome.approved ? 'approved' : 'rejected').catch(() => undefined);
}
