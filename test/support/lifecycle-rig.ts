// Test helper: what every lifecycle test launches, in one place. The fake QEMU
// (test/fixtures/bin/fake-qemu.mjs) spawned by the real launcher with a scenario and a command log,
// the real argv builder, and the simulated host caps; and the commands the fake received.
import { readFile } from 'node:fs/promises';
import { isSupervisorError, type SupervisorError } from '../../src/errors.js';
import { SIMULATED_HOST_CAPS } from '../../src/host/simulated.js';
import { launchQemu } from '../../src/process/launcher.js';
import { buildQemuArgv } from '../../src/qemu/argv.js';
import type { VmLifecycle } from '../../src/vm/lifecycle.js';
import type { LifecycleOptions } from '../../src/vm/lifecycle-options.js';
import type { LifecycleEventRecord } from '../../src/vm/types.js';
import { FAKE_QEMU } from './detached-fakes.js';

/** The lifecycle options that launch the fake QEMU running `scenario`, logging what it receives to `commandLog`. */
export function fakeQemuLaunch(
  scenario: object,
  commandLog: string,
): Pick<LifecycleOptions, 'caps' | 'platform' | 'binary' | 'argv' | 'deps'> {
  return {
    caps: SIMULATED_HOST_CAPS,
    platform: 'simulated',
    binary: FAKE_QEMU,
    argv: buildQemuArgv,
    deps: { launch: (o) => launchQemu({ ...o, env: { FAKE_QEMU_SCENARIO: JSON.stringify(scenario), FAKE_QEMU_LOG: commandLog } }) },
  };
}

/** The QMP commands the fake QEMU received, in order (none before it started). */
export async function fakeQemuCommands(commandLog: string): Promise<string[]> {
  return (await readFile(commandLog, 'utf8').catch(() => ''))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { execute: string }).execute);
}

/** A lifecycle under test and the events it emitted so far. */
export interface WatchedLifecycle {
  readonly lifecycle: VmLifecycle;
  readonly events: readonly LifecycleEventRecord[];
}

/** The SupervisorError start() failed with (the test fails if it did not). */
export async function startFailure(h: WatchedLifecycle): Promise<SupervisorError> {
  try {
    await h.lifecycle.start();
  } catch (error) {
    if (isSupervisorError(error)) return error;
    throw error;
  }
  throw new Error('expected start() to fail');
}

/** The first `event` emitted, now or later. */
export function waitFor(h: WatchedLifecycle, event: string): Promise<LifecycleEventRecord> {
  return new Promise((resolve) => {
    const found = h.events.find((e) => e.event === event);
    if (found !== undefined) return resolve(found);
    const off = h.lifecycle.onEvent((e) => {
      if (e.event === event) {
        off();
        resolve(e);
      }
    });
  });
}

export function names(events: readonly LifecycleEventRecord[]): string[] {
  return events.map((e) => e.event);
}
