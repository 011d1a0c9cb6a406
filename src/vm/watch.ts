// The watch over a guest under supervision once its launch is through (or it was re-attached):
// QEMU's events (STOP, RESUME, SHUTDOWN, through guest-events.ts), its process's end, the loss of
// its monitor, and the graceful stop of a guest that ran.
// Owns: keeping the guest's state true to what QEMU reports, and its ending. Must not: resume a
// guest (only the lifecycle's launch and the owner's approval do), or decide what the guest is
// allowed (the proxy does).
import { setTimeout as delay } from 'node:timers/promises';
import { isSupervisorError, SupervisorError } from '../errors.js';
import type { Logger } from '../log.js';
import type { QemuExit } from '../process/launcher.js';
import type { QmpEvent } from '../qmp/client.js';
import { EXIT_GRACE_MS } from './failure.js';
import { exitEnding, reactToEvent } from './guest-events.js';
import type { GuestRecord } from './guest-record.js';
import { isTerminal } from './state.js';

/** A guest that shut down makes QEMU exit by itself; after this it is told to quit. */
const GUEST_SHUTDOWN_GRACE_MS = 5_000;

/** What the watch asks of the lifecycle. */
export interface WatchControl {
  /** The lifecycle let go of QEMU (detach, or unreachable on re-attach). */
  readonly detached: () => boolean;
  /** sevsup asked the guest to stop. */
  readonly stopRequested: () => boolean;
  /** stop({force}): SIGKILL instead of the quit ladder. */
  readonly force: () => boolean;
  /** quit → SIGTERM → SIGKILL (no powerdown). */
  readonly destroy: () => Promise<QemuExit>;
  /** How long a running guest gets to power down. @default the launcher's */
  readonly powerdownTimeoutMs?: number;
}

export class GuestWatch {
  readonly #g: GuestRecord;
  readonly #log: Logger;
  readonly #c: WatchControl;
  #shutdownSeen: string | null = null;
  #unsubscribe: (() => void) | undefined;

  constructor(guest: GuestRecord, logger: Logger, control: WatchControl) {
    this.#g = guest;
    this.#log = logger;
    this.#c = control;
  }

  /** Stop listening to QEMU's events (detach). */
  stopListening(): void {
    this.#unsubscribe?.();
  }

  /** Keep the state true to QEMU's events and process exit. MUST be called once, when running. */
  start(): void {
    const qmp = this.#g.requireQmp();
    const proc = this.#g.requireProc();
    this.#unsubscribe = qmp.onEvent((event) => this.#onQmpEvent(event));
    void proc.exited.then((exit) => this.#onExit(exit));
    const ending = (): boolean => isTerminal(this.#g.state) || this.#g.state === 'stopping' || this.#c.detached();
    void qmp.closed.then(async (cause) => {
      if (ending()) return;
      // The monitor went away but QEMU may live on: without it the guest cannot be supervised.
      const exit = await Promise.race([proc.exited, delay(EXIT_GRACE_MS, null)]);
      if (exit !== null || ending()) return;
      this.#log.error({ err: cause }, 'QMP monitor closed while QEMU runs; stopping QEMU');
      this.#g.error = new SupervisorError(
        'SUP_ERR_QMP_INTERRUPTED',
        `VM ${this.#g.vm}: QEMU's QMP monitor closed while the guest was running; QEMU was stopped`,
        {
          details: { vm: this.#g.vm },
          ...(cause === undefined ? {} : { cause }),
        },
      );
      void this.shutdown('monitor lost', false);
    });
  }

  #onQmpEvent(event: QmpEvent): void {
    const proc = this.#g.requireProc();
    const reaction = reactToEvent(event, { vm: this.#g.vm, state: this.#g.state, pid: proc.pid, stopRequested: this.#c.stopRequested() });
    if (reaction.shutdown !== undefined) {
      this.#shutdownSeen = reaction.shutdown;
      this.#log.info({ reason: reaction.shutdown }, 'guest shut down');
    }
    if (reaction.error !== undefined) {
      this.#g.error ??= reaction.error;
      this.#log.warn({ was: this.#g.state }, 'QEMU ended by an external signal');
    }
    if (reaction.next === undefined) return;
    this.#g.move(reaction.next);
    if (reaction.report !== undefined) this.#g.emit(reaction.report);
    if (reaction.next === 'stopping') {
      // QEMU exits by itself after SHUTDOWN unless told not to; only then is it told to quit.
      void Promise.race([proc.exited, delay(GUEST_SHUTDOWN_GRACE_MS, null)]).then((exit) => {
        if (exit === null) void this.#c.destroy().catch(() => undefined);
      });
    }
  }

  #onExit(exit: QemuExit): void {
    if (isTerminal(this.#g.state) || this.#c.detached()) return;
    this.#unsubscribe?.();
    void this.#g.qmp?.close();
    const ending = exitEnding(this.#g.vm, this.#g.state, exit, this.#g.error, this.#shutdownSeen !== null);
    if (ending.kind === 'failed') {
      this.#g.emitStopped(exit, exit.how);
      this.#g.fail(ending.error);
      return;
    }
    this.#g.emitStopped(exit, ending.how);
    this.#g.move('stopped');
    this.#g.finish({ state: 'stopped', how: ending.how, ran: this.#g.ran });
  }

  /** Graceful stop of a guest that ran. */
  async shutdown(reason: string, powerdown: boolean): Promise<void> {
    if (this.#g.state !== 'stopping') {
      this.#g.move('stopping');
      this.#g.emit({ event: 'stopping', reason });
    }
    const proc = this.#g.requireProc();
    const stopped = this.#c.force()
      ? proc.kill()
      : proc.stop({
          ...(this.#g.qmp === undefined ? {} : { qmp: this.#g.qmp }),
          ...(powerdown
            ? this.#c.powerdownTimeoutMs === undefined
              ? {}
              : { powerdownTimeoutMs: this.#c.powerdownTimeoutMs }
            : { powerdownTimeoutMs: 0 }),
        });
    await stopped.catch((error: unknown) => {
      this.#log.error({ err: error }, 'QEMU did not stop');
      this.#g.error ??= isSupervisorError(error) ? error : new SupervisorError('SUP_ERR_SHUTDOWN_ABNORMAL', String(error));
    });
    // #onExit (from proc.exited) records the outcome.
  }
}
