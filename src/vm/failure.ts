// How a launch's failure is named: a QMP error because QEMU died becomes SUP_ERR_QEMU_EXITED
// quoting QEMU's stderr; anything that is not a SupervisorError becomes SUP_ERR_INTERNAL.
// Owns: that naming and the stderr quote every such message carries. Must not: stop QEMU or move
// the VM's state (the lifecycle does, with the error named here).
import { setTimeout as delay } from 'node:timers/promises';
import { hasCode, isSupervisorError, SupervisorError } from '../errors.js';
import { describeEnd, type QemuExit, type QemuProcess } from '../process/launcher.js';
import { errorLines } from '../process/stderr-tail.js';
import type { VmState } from './state.js';

/** After QMP reports trouble, how long to wait for QEMU's exit so the error can quote its stderr. */
export const EXIT_GRACE_MS = 2_000;
/** Stderr lines quoted in a message (the whole tail goes into details). */
const MESSAGE_STDERR_LINES = 4;

/** How a guest ended: stopped (and how), or failed (and why). */
export type Ending = { readonly kind: 'stopped'; readonly how: string } | { readonly kind: 'failed'; readonly error: SupervisorError };

/** Runs one QMP exchange of a launch step (the lifecycle's, which names a failure by its phase). */
export type QmpStep = <T>(what: string, run: () => Promise<T>) => Promise<T>;

/** `: <last stderr lines>`, or a note that QEMU printed nothing. */
export function quoteStderr(tail: string): string {
  const lines = errorLines(tail).slice(-MESSAGE_STDERR_LINES);
  return lines.length > 0 ? `: ${lines.join('; ')}` : ' (it printed nothing on stderr)';
}

/**
 * Name the failure of `phase` precisely. When QEMU is gone (or QMP says so), waits up to
 * EXIT_GRACE_MS for its exit so that the error quotes what it printed.
 */
export async function explainFailure(vm: string, proc: QemuProcess | undefined, error: unknown, phase: string): Promise<SupervisorError> {
  if (
    hasCode(error, 'SUP_ERR_LAUNCH_FAILED', 'SUP_ERR_SNP_LAUNCH_FAILED') ||
    (hasCode(error, 'SUP_ERR_QEMU_EXITED') && error.details['stderrTail'] !== undefined)
  )
    return error;
  const qmpGone =
    hasCode(error, 'SUP_ERR_QMP_INTERRUPTED', 'SUP_ERR_QMP_STATE', 'SUP_ERR_QEMU_EXITED') || (proc !== undefined && !proc.isAlive());
  if (proc !== undefined && qmpGone) {
    const exit = await Promise.race([proc.exited, delay(EXIT_GRACE_MS, null)]);
    if (exit !== null) {
      return new SupervisorError(
        'SUP_ERR_QEMU_EXITED',
        `VM ${vm}: QEMU ${describeEnd(exit)} during ${phase}${quoteStderr(exit.stderrTail)}`,
        {
          details: { vm, phase, exitCode: exit.exitCode, signal: exit.signal, stderrTail: exit.stderrTail },
          cause: error,
        },
      );
    }
  }
  if (isSupervisorError(error)) return error;
  return new SupervisorError(
    'SUP_ERR_INTERNAL',
    `VM ${vm}: internal error during ${phase}: ${error instanceof Error ? error.message : String(error)}`,
    {
      cause: error,
    },
  );
}

/**
 * An SEV-SNP guest whose QEMU ended at (or right after) its first `cont`: the PSP measures and
 * checks an SNP guest only when it first runs (metadata, CPUID page, policy, ID block), and QEMU
 * exits on any refusal. That is a failed launch, in QEMU's own words, never a guest that stopped.
 */
export function snpLaunchFailure(
  vm: string,
  exit: Pick<QemuExit, 'exitCode' | 'signal' | 'stderrTail'>,
  windowMs: number,
  cause?: unknown,
): SupervisorError {
  return new SupervisorError(
    'SUP_ERR_SNP_LAUNCH_FAILED',
    `VM ${vm}: the SEV-SNP launch failed at its first run: QEMU ${describeEnd(exit)} within ${windowMs / 1000} s of cont` +
      `${quoteStderr(exit.stderrTail)}; the platform measures and checks an SNP guest (firmware metadata, CPUID page, ` +
      'policy, ID block) only when it first runs',
    {
      details: { vm, phase: 'first run', exitCode: exit.exitCode, signal: exit.signal, stderrTail: exit.stderrTail, windowMs },
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

/** The launch phase a state is in, as failure messages name it. */
export function phaseOf(state: VmState): string {
  switch (state) {
    case 'starting':
      return 'start-up';
    case 'measuring':
      return 'the SEV checks';
    case 'held':
      return 'the attestation hold';
    case 'resuming':
      return 'resume';
    default:
      return state;
  }
}
