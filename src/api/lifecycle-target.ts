// Serves VmLifecycle objects through the control API: `sevsup run` hands it one, the daemon can
// hand it its registry. Owns: mapping a VM name to its lifecycle and its current launch's record.
// Must not: decide anything (the lifecycle does) or serve another launch's record: an owner asking
// for the measurement before this launch is measured must not get the previous one.
import type { LaunchRecord } from '../vm/record.js';
import { readRecordFile } from '../vm/record-store.js';
import type { VmLifecycle } from '../vm/lifecycle.js';
import type { ControlTarget } from './server.js';

/** `lookup` returns the lifecycle of a VM name, or undefined. */
export function lifecycleTarget(lookup: (vm: string) => VmLifecycle | undefined): ControlTarget {
  const find = (vm: string): VmLifecycle | undefined => lookup(vm);
  return {
    status: (vm) => find(vm)?.status(),
    measurement: async (vm): Promise<LaunchRecord | null> => {
      const path = find(vm)?.status().record ?? null;
      return path === null ? null : readRecordFile(path);
    },
    attest: async (vm, request) => {
      const lifecycle = find(vm);
      if (lifecycle === undefined) throw new Error(`lifecycleTarget: ${vm} vanished`);
      return lifecycle.attest(request);
    },
  };
}

/** The single-VM lookup `sevsup run` uses. */
export function singleLifecycle(lifecycle: VmLifecycle): (vm: string) => VmLifecycle | undefined {
  return (vm) => (vm === lifecycle.vm ? lifecycle : undefined);
}
