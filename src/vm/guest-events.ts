// What a supervised guest's state does when QEMU reports something after the launch: a QMP event
// (STOP, RESUME, SHUTDOWN) or the process's end. Pure: given the event and the guest as it is,
// returns what follows (the next state, the event to report, an error); the lifecycle applies it.
// Must not: act (move the state, stop QEMU, log).
import { SupervisorError } from '../errors.js';
import { describeEnd, type QemuExit } from '../process/launcher.js';
import type { QmpEvent } from '../qmp/client.js';
import { quoteStderr, type Ending } from './failure.js';
import type { VmState } from './state.js';
import type { LifecycleEvent } from './types.js';

/** The guest as a QEMU event finds it. */
export interface WatchedGuest {
  readonly vm: string;
  readonly state: VmState;
  readonly pid: number;
  /** sevsup asked it to stop (its own signals come only then). */
  readonly stopRequested: boolean;
}

export interface EventReaction {
  readonly next?: 'paused' | 'running' | 'stopping';
  readonly report?: LifecycleEvent;
  /** SHUTDOWN's reason, when the event was one. */
  readonly shutdown?: string;
  /** The guest was killed by a signal sevsup did not send: its end is a failure. */
  readonly error?: SupervisorError;
}

/** The reaction to one QMP event (events that change nothing: `{}`). */
export function reactToEvent(event: QmpEvent, g: WatchedGuest): EventReaction {
  switch (event.event) {
    case 'STOP':
      return g.state === 'running' ? { next: 'paused', report: { event: 'paused', reason: 'QEMU reported STOP' } } : {};
    case 'RESUME':
      return g.state === 'paused' ? { next: 'running', report: { event: 'running', pid: g.pid } } : {};
    case 'SHUTDOWN': {
      const reason = typeof event.data?.['reason'] === 'string' ? event.data['reason'] : 'unknown';
      const live = g.state === 'running' || g.state === 'paused';
      // A signal sevsup did not send (its own come only once it is stopping): QEMU exits 0 on
      // SIGTERM, but the guest was killed, not stopped. Reported as a failure, never `stopped`.
      const error =
        reason === 'host-signal' && live && !g.stopRequested
          ? new SupervisorError(
              'SUP_ERR_QEMU_SIGNALLED',
              `VM ${g.vm}: QEMU was ended by a signal that sevsup did not send while the guest was ${g.state} (QMP SHUTDOWN reason host-signal); see qemu.log for the sender's pid`,
              { details: { vm: g.vm, was: g.state } },
            )
          : undefined;
      return {
        shutdown: reason,
        ...(error === undefined ? {} : { error }),
        ...(live ? { next: 'stopping', report: { event: 'stopping', reason: `guest shutdown (${reason})` } } : {}),
      };
    }
    default:
      return {};
  }
}

/**
 * How a guest ends when its QEMU exits under supervision: stopped when it was stopping or QEMU
 * exited cleanly (and nothing failed before), else failed with what failed or with QEMU's end.
 */
export function exitEnding(vm: string, state: VmState, exit: QemuExit, failed: SupervisorError | null, shutdownSeen: boolean): Ending {
  const clean = exit.signal === undefined && exit.exitCode === 0;
  if (failed === null && (state === 'stopping' || clean)) {
    return { kind: 'stopped', how: exit.how === 'exited' ? (shutdownSeen ? 'guest-shutdown' : 'exited') : exit.how };
  }
  return {
    kind: 'failed',
    error:
      failed ??
      new SupervisorError(
        'SUP_ERR_QEMU_EXITED',
        `VM ${vm}: QEMU ${describeEnd(exit)} while the guest was ${state}${quoteStderr(exit.stderrTail)}`,
        {
          details: { vm, exitCode: exit.exitCode, signal: exit.signal, stderrTail: exit.stderrTail },
        },
      ),
  };
}
