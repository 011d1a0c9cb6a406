// SEV-SNP's first run: QEMU does SNP_LAUNCH_FINISH inside the first `cont` (the firmware pages, the
// metadata sections, the CPUID page the PSP validates, then the VMSAs, then the ID block check) and
// exits on any refusal, mostly before it even replies; KVM's first entry into each vCPU's VMSA can
// still fail just after. A QEMU that exits within the window is therefore a failed launch, not a
// guest that stopped. The window is short because these failures are immediate; its default
// (lifecycle-options.ts) leaves room for a loaded host's scheduling.
// Owns: the window's wait and the mapping of an exit in it to SUP_ERR_SNP_LAUNCH_FAILED. Must not:
// move the VM's state or stop QEMU (the lifecycle does, from the error).
import { setTimeout as delay } from 'node:timers/promises';
import { hasCode } from '../errors.js';
import type { QemuExit } from '../process/launcher.js';
import { snpLaunchFailure } from './failure.js';

export interface FirstRunWatch {
  readonly vm: string;
  /** Settles when QEMU exits. */
  readonly exited: Promise<QemuExit>;
  readonly windowMs: number;
  /** The launch's signal: a stop or detach during the window ends the wait (and throws its reason). */
  readonly signal: AbortSignal;
}

/** Resolves when the window passed with QEMU alive; throws the failed launch if QEMU exited in it. */
export async function watchSnpFirstRun(o: FirstRunWatch): Promise<void> {
  const ended = new AbortController();
  try {
    const exit = await Promise.race([
      o.exited,
      delay(o.windowMs, null, { signal: ended.signal }).catch(() => null),
      new Promise<null>((resolve) => o.signal.addEventListener('abort', () => resolve(null), { once: true, signal: ended.signal })),
    ]);
    o.signal.throwIfAborted();
    if (exit !== null) throw snpLaunchFailure(o.vm, exit, o.windowMs);
  } finally {
    ended.abort();
  }
}

/** A QEMU that died during an SNP guest's `cont` or first-run window: a failed SNP launch with QEMU's words; else `error` itself. */
export function asSnpLaunchFailure(vm: string, error: unknown, windowMs: number): unknown {
  if (hasCode(error, 'SUP_ERR_QEMU_EXITED') && typeof error.details['stderrTail'] === 'string') {
    const { exitCode, signal } = error.details;
    return snpLaunchFailure(
      vm,
      {
        ...(typeof exitCode === 'number' ? { exitCode } : {}),
        ...(typeof signal === 'string' ? { signal } : {}),
        stderrTail: error.details['stderrTail'],
      },
      windowMs,
      error,
    );
  }
  return error;
}
