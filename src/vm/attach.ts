// Re-attach: what a restarted daemon does with a guest whose QEMU a previous supervisor left
// running, from the state file that supervisor persisted. Held stays held (never re-measured),
// running stays running; a guest caught mid-launch, or held but found running, is destroyed (fail
// closed); a QEMU that cannot be reached is left alone (`unreachable`); one that is gone ends the
// guest with what is known.
// Owns: the plan (pure), adopting the process by identity, asking QEMU what it is doing, and the
// errors and endings of a guest found unreachable or gone. Must not: move the VM's state, stop or
// resume QEMU (the lifecycle does, from what this returns), or trust the state file over QEMU.
import type { Logger } from '../log.js';
import { isErrorCode, SupervisorError } from '../errors.js';
import { adoptQemu } from '../process/adopt.js';
import type { QemuProcess } from '../process/launcher.js';
import { readFileTail } from '../process/stderr-tail.js';
import { querySev, queryStatus, type QmpExecutor } from '../qmp/commands.js';
import { quoteStderr, type Ending, type QmpStep } from './failure.js';
import type { GuestRecord } from './guest-record.js';
import type { PersistedVmState } from './state-file.js';
import type { VmState } from './state.js';

/** What attach() does with a QEMU it found alive, by the state persisted before the restart. */
export type ReattachPlan =
  | { readonly kind: 'hold' }
  | { readonly kind: 'running' | 'paused' }
  | { readonly kind: 'stop' }
  | { readonly kind: 'destroy'; readonly why: string };

/**
 * Pure: the state a re-attached guest resumes in. A held guest must still be paused (nothing may
 * have run it but sevsup); a guest caught mid-launch is destroyed, since it was never both measured
 * and approved as far as anyone can prove; a guest that ran keeps whatever QEMU says.
 */
export function planReattach(persisted: VmState, ran: boolean, qemuRunning: boolean, qemuPrelaunch = false): ReattachPlan {
  // QEMU's `prelaunch` means no `cont` ever reached it: whatever the file says, it never ran.
  if (qemuPrelaunch && (persisted === 'running' || persisted === 'paused')) {
    return {
      kind: 'destroy',
      why: `it was recorded as ${persisted}, but QEMU says it never ran (prelaunch): nothing proves it was approved`,
    };
  }
  switch (persisted) {
    case 'held':
      return qemuRunning
        ? { kind: 'destroy', why: 'it was held for attestation, but QEMU reports it running: nothing but sevsup may resume it' }
        : { kind: 'hold' };
    case 'running':
    case 'paused':
      return { kind: qemuRunning ? 'running' : 'paused' };
    case 'resuming':
      return qemuRunning ? { kind: 'running' } : { kind: 'destroy', why: 'sevsup stopped while resuming it, before it ran' };
    case 'stopping':
      return { kind: 'stop' };
    case 'defined':
    case 'starting':
    case 'attaching':
    case 'measuring':
      return ran && qemuRunning
        ? { kind: 'running' }
        : { kind: 'destroy', why: `sevsup stopped while it was ${persisted}, before its launch completed` };
    case 'stopped':
    case 'failed':
      return { kind: 'destroy', why: `it was recorded as ${persisted}` };
  }
}

/** The persisted QEMU, if it is still that process (pid + start time + command line); null when gone or never spawned. */
export function adoptPersisted(persisted: PersistedVmState, logger: Logger): QemuProcess | null {
  if (persisted.pid === null || persisted.startTime === null) return null;
  return adoptQemu({
    pid: persisted.pid,
    startTime: persisted.startTime,
    cmdlineIncludes: persisted.monitorSocket,
    ...(persisted.stderrFile === null ? {} : { stderrFile: persisted.stderrFile }),
    logger,
  });
}

/**
 * Ask the adopted QEMU what it is doing and plan from that. A held SEV guest must still be waiting
 * for its secret (`launch-secret`), a held SEV-SNP guest still in `launch-update`: LAUNCH_FINISH
 * (the first cont) has not happened. `heldSevState` is that state; null without SEV.
 * @throws what the QMP exchange threw (the caller leaves a live QEMU alone then).
 */
export async function inspectAdopted(
  qmp: QmpExecutor,
  persisted: PersistedVmState,
  heldSevState: 'launch-secret' | 'launch-update' | null,
  step: QmpStep,
): Promise<{ status: string; plan: ReattachPlan }> {
  const status = await step('query-status', () => queryStatus(qmp));
  const plan = planReattach(persisted.state, persisted.ran, status.running, status.status === 'prelaunch');
  if (plan.kind === 'hold' && heldSevState !== null) {
    const info = await step('query-sev', () => querySev(qmp));
    if (info.state !== heldSevState)
      return {
        status: status.status,
        plan: { kind: 'destroy', why: `it was held, but its SEV state is ${info.state}, not ${heldSevState}` },
      };
  }
  return { status: status.status, plan };
}

/** QEMU is alive but its monitor could not be reached: sevsup leaves it alone and says so. */
export function unreachableError(vm: string, pid: number, cause: unknown): SupervisorError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new SupervisorError(
    'SUP_ERR_VM_UNREACHABLE',
    `VM ${vm}: its QEMU (pid ${pid}) is running, but its monitor could not be reached on re-attach (${why}); ` +
      'sevsup left it alone (not stopped, not resumed). Free its monitor (is another supervisor attached to it?), then `sevsup start ' +
      `${vm}\` re-attaches it`,
    { details: { vm, pid }, cause },
  );
}

/** attach() found no QEMU: it ended while nobody supervised it; stopped if it was stopping, else failed with what is known. */
export function goneEnding(vm: string, persisted: PersistedVmState): Ending {
  if (persisted.state === 'stopping' || persisted.state === 'stopped')
    return { kind: 'stopped', how: 'exited while sevsup was not running' };
  const known = persisted.error;
  if (persisted.state === 'failed' && known !== null && isErrorCode(known.code)) {
    return { kind: 'failed', error: new SupervisorError(known.code, known.message, { details: { vm } }) };
  }
  const tail = persisted.stderrFile === null ? '' : readFileTail(persisted.stderrFile);
  const pid = persisted.pid === null ? '' : ` (pid ${persisted.pid})`;
  return {
    kind: 'failed',
    error: new SupervisorError(
      'SUP_ERR_QEMU_EXITED',
      `VM ${vm}: QEMU${pid} ended while sevsup was not running; the guest was ${persisted.state}${quoteStderr(tail)}`,
      {
        details: { vm, pid: persisted.pid, was: persisted.state, stderrTail: tail },
      },
    ),
  };
}

/** attach() found no QEMU: end the guest as stopped or failed (goneEnding). */
export function endGone(g: GuestRecord, persisted: PersistedVmState): void {
  const ending = goneEnding(g.vm, persisted);
  if (ending.kind === 'failed') {
    g.fail(ending.error);
    return;
  }
  g.move('stopping');
  g.emit({ event: 'stopped', how: ending.how, exitCode: null, signal: null });
  g.move('stopped');
  g.finish({ state: 'stopped', how: ending.how, ran: g.ran });
}

/**
 * attach() found QEMU alive but could not talk to it: let go without touching it (not stopped,
 * not resumed, state file unchanged) and say so. @throws SUP_ERR_VM_UNREACHABLE, always.
 */
export async function leaveUnreachable(g: GuestRecord, proc: QemuProcess, cause: unknown, logger: Logger): Promise<never> {
  await g.qmp?.close().catch(() => undefined);
  proc.release();
  const error = unreachableError(g.vm, proc.pid, cause);
  g.error = error;
  logger.error(
    { pid: proc.pid, reason: cause instanceof Error ? cause.message : String(cause) },
    'guest unreachable on re-attach; left alone',
  );
  g.running.reject(error);
  g.finish({ state: 'detached', ran: g.ran });
  throw error;
}
