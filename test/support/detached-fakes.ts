// Test wiring for lifecycles in daemon mode: the fake QEMU they spawn is detached and outlives its
// lifecycle on purpose, so tests remember its pids and end what is left after each test.
// Owns: only that bookkeeping. Must not: be imported by src/.
import { fileURLToPath } from 'node:url';
import { isPidAlive, waitForPidExit } from '../../src/process/pid.js';

export const FAKE_QEMU = fileURLToPath(new URL('../fixtures/bin/fake-qemu.mjs', import.meta.url));

/** Pids of detached fakes a test started; `endAll()` SIGKILLs the survivors and waits for them. */
export class DetachedPids {
  readonly #pids = new Set<number>();

  add(pid: number): void {
    this.#pids.add(pid);
  }

  async endAll(): Promise<void> {
    for (const pid of this.#pids) {
      if (isPidAlive(pid)) process.kill(pid, 'SIGKILL');
      await waitForPidExit(pid, { timeoutMs: 5000 });
    }
    this.#pids.clear();
  }
}
