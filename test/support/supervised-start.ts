// A real lifecycle from superviseGuest (as `sevsup run` and the daemon build it) whose preflight
// and launcher are spies, for the tests of what superviseGuest checks before anything is read or
// spawned: start() is run to its end and what it reached is reported, never assumed.
// Owns: that set-up. Must not: decide what a test expects.
import { join } from 'node:path';
import type { VmSpec } from '../../src/config/vm-spec.js';
import { SupervisorError } from '../../src/errors.js';
import { superviseGuest } from '../../src/guest/supervised.js';
import { SIMULATED_HOST_CAPS } from '../../src/host/simulated.js';
import { createLogger } from '../../src/log.js';
import { vmRunPaths } from '../../src/process/run-dir.js';
import type { VmState } from '../../src/vm/state.js';
import type { Preflight } from '../../src/vm/preflight.js';

/** The preflight spy: records each call's VM name, then stops the launch with a marker error (nothing further runs). */
export function preflightSpy(): { calls: string[]; preflight: (s: VmSpec) => Promise<Preflight> } {
  const calls: string[] = [];
  return {
    calls,
    preflight: async (s) => {
      calls.push(s.name);
      throw new SupervisorError('SUP_ERR_KERNEL_READ', 'preflight reached (test marker)');
    },
  };
}

/** start() of `spec` under superviseGuest in `dir` (VM vm1); resolves to what it threw, the launches attempted and the end state. */
export async function startSupervised(o: {
  readonly spec: VmSpec;
  readonly platform: 'hardware' | 'simulated';
  readonly binary: string;
  readonly dir: string;
  readonly preflight: (s: VmSpec) => Promise<Preflight>;
}): Promise<{ error: unknown; launches: number; state: VmState }> {
  let launches = 0;
  const { lifecycle, closeProxy } = superviseGuest({
    spec: o.spec,
    caps: SIMULATED_HOST_CAPS,
    platform: o.platform,
    binary: o.binary,
    runDir: join(o.dir, 'run'),
    stateDir: join(o.dir, 'state'),
    paths: vmRunPaths(join(o.dir, 'run'), 'vm1'),
    logger: createLogger({ level: 'silent' }),
    deps: {
      preflight: o.preflight,
      launch: async () => {
        launches += 1;
        throw new Error('must not spawn');
      },
    },
  });
  const error = await lifecycle.start().then(
    () => null,
    (e: unknown) => e,
  );
  await closeProxy();
  return { error, launches, state: lifecycle.state };
}
