// The queued writes of one guest's state.json (daemon mode): each transition queues an atomic
// write of the state as it is then, and the writes land in order, one at a time.
// Owns: that queue, flush() (wait until every queued write has landed), and the canonical text of
// the launch's config that every write carries. Must not: decide what is written when (the
// lifecycle does) or what a state means on re-attach (attach.ts); a failed write is logged, never
// thrown: the guest goes on, but a restarted daemon may not find it.
import { formatVmConfig } from '../config/vm-config.js';
import type { VmSpec } from '../config/vm-spec.js';
import type { Logger } from '../log.js';
import { VM_STATE_SCHEMA, type PersistedVmState, type writeVmState } from './state-file.js';

/** A snapshot as the lifecycle gives it; the writer adds the schema and the config. */
export type StateSnapshot = Omit<PersistedVmState, 'schema' | 'config' | 'configSource'>;

export class StateWriter {
  readonly #file: string;
  readonly #spec: VmSpec;
  readonly #write: typeof writeVmState;
  readonly #log: Logger;
  #pending: Promise<void> = Promise.resolve();
  #configText: string | undefined;

  constructor(o: { readonly file: string; readonly spec: VmSpec; readonly write: typeof writeVmState; readonly logger: Logger }) {
    this.#file = o.file;
    this.#spec = o.spec;
    this.#write = o.write;
    this.#log = o.logger;
  }

  /** Queue an atomic write of `snapshot`; it lands after every write queued before it. */
  queue(snapshot: StateSnapshot): void {
    const { updatedAt, error, ...before } = snapshot;
    // Members in the file's documented order: the config after the guest's state, updatedAt last.
    const ordered: PersistedVmState = {
      schema: VM_STATE_SCHEMA,
      ...before,
      config: this.#launchConfigText(),
      configSource: this.#spec.source,
      error,
      updatedAt,
    };
    const file = this.#file;
    this.#pending = this.#pending
      .then(() => this.#write(file, ordered))
      .catch((cause: unknown) =>
        this.#log.error({ err: cause, file }, 'cannot write the VM state file; a restarted daemon may not re-attach this guest'),
      );
  }

  /** Resolves once every write queued so far has landed (or failed and been logged). */
  flush(): Promise<void> {
    return this.#pending;
  }

  /** The launch's config as canonical text ('' if it cannot be written: attach then fails closed). */
  #launchConfigText(): string {
    if (this.#configText === undefined) {
      try {
        this.#configText = formatVmConfig(this.#spec);
      } catch {
        this.#configText = '';
      }
    }
    return this.#configText;
  }
}
