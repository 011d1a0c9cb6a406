// One guest of the daemon's registry (guests.ts): its config, its current lifecycle and supervision,
// what it is busy with, and a QEMU of it that sevsup does not supervise. Plus the small facts about
// a lifecycle and a config that the registry and re-attaching (reattach.ts) both ask.
// Owns: the Guest record and its two questions (active lifecycle, may a QEMU run); when a
// lifecycle has settled; a config's canonical text (change detection, a re-attach's state).
// Must not: start, stop or attach anything (guests.ts, reattach.ts), or publish events.
import { formatVmConfig } from '../config/vm-config.js';
import type { VmSpec } from '../config/vm-spec.js';
import type { SupervisorError } from '../errors.js';
import type { SupervisedGuest } from '../guest/supervised.js';
import type { VmLifecycle } from '../vm/lifecycle.js';
import type { PersistedVmState } from '../vm/state-file.js';
import { isTerminal, type VmState } from '../vm/state.js';

/** A guest's state once a start or attach has settled (or it ended). */
const SETTLED: readonly VmState[] = ['held', 'running', 'paused', 'stopped', 'failed'];

export class Guest {
  /** The current config; null for a re-attached guest whose config file is gone. */
  spec: VmSpec | null;
  /** Its config file was removed: forget the guest once it has stopped. */
  removed = false;
  lifecycle: VmLifecycle | null = null;
  /** The current supervision (lifecycle and proxy), once one was made. */
  supervised: SupervisedGuest | null = null;
  /** Offline work or a launch being prepared; nothing else may start meanwhile. */
  busy: 'starting' | 'snapshot' | 'migrate' | null = null;
  /**
   * A QEMU of this guest that sevsup does not supervise, left alone and shown as such: its monitor
   * was unreachable on re-attach (`start` retries), or its state file is unreadable and nothing
   * proves which process is its QEMU (`orphaned`).
   */
  unsupervised: Unsupervised | null = null;

  constructor(
    readonly name: string,
    spec: VmSpec | null,
  ) {
    this.spec = spec;
  }

  /** A lifecycle that has (or may have) a QEMU. */
  active(): VmLifecycle | null {
    return this.lifecycle !== null && !isTerminal(this.lifecycle.state) ? this.lifecycle : null;
  }

  /** A QEMU may run for it, supervised or not: never launch another, never forget it. */
  hasQemu(): boolean {
    return this.active() !== null || this.unsupervised !== null;
  }
}

export interface Unsupervised {
  readonly state: 'unreachable' | 'orphaned';
  readonly pid: number | null;
  readonly error: SupervisorError;
  /** What re-attaching needs (unreachable only). */
  readonly persisted: PersistedVmState | null;
}

/** Resolves once the lifecycle is held, running or paused, or has ended. */
export function settled(lifecycle: VmLifecycle): Promise<void> {
  return new Promise((resolve) => {
    const done = (): boolean => SETTLED.includes(lifecycle.state);
    if (done()) {
      resolve();
      return;
    }
    const unsubscribe = lifecycle.onEvent(() => {
      if (!done()) return;
      unsubscribe();
      resolve();
    });
    void lifecycle.finished.then(() => {
      unsubscribe();
      resolve();
    });
  });
}

/** A config as text, to tell a changed config from a re-read one (falls back to JSON if unformattable). */
export function canonical(spec: VmSpec): string {
  try {
    return formatVmConfig(spec);
  } catch {
    return JSON.stringify(spec);
  }
}
