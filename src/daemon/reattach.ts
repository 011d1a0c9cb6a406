// Re-attaching after a daemon restart: the guests a previous daemon left (discover.ts found their
// state files) are supervised again, shown as unreachable (their monitor did not answer; `start`
// retries), or, for an unusable state file, found by command line and adopted or shown orphaned.
// Owns: those decisions and the registry entries they create for guests whose config is gone.
// Must not: launch a QEMU, judge QEMU's answers (vm/lifecycle.ts attach()), or publish events
// itself (the registry's daemonEvent does).
import { rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseVmConfig } from '../config/vm-config.js';
import type { VmSpec } from '../config/vm-spec.js';
import { SupervisorError } from '../errors.js';
import type { Logger } from '../log.js';
import { findQemuByCmdline } from '../process/adopt.js';
import { vmRunPaths, type VmPaths } from '../process/run-dir.js';
import type { VmLifecycle } from '../vm/lifecycle.js';
import type { RecordPlatform } from '../vm/record.js';
import { VM_STATE_SCHEMA, type PersistedVmState } from '../vm/state-file.js';
import { isTerminal } from '../vm/state.js';
import { readPidFile, removeStaleRunFiles, type UnreadableState } from './discover.js';
import { canonical, Guest, settled } from './guest-entry.js';

/** QEMU's stderr (appended per launch) in the guest's run dir: it outlives a daemon restart. */
export const QEMU_LOG_FILE = 'qemu.log';

/** What re-attaching needs of the registry (guests.ts). */
export interface ReattachContext {
  readonly runDir: string;
  readonly platform: RecordPlatform;
  readonly log: Logger;
  /** The registry's guests: a re-attached guest without a config is added (and removed) here. */
  readonly guests: Map<string, Guest>;
  /** A supervised lifecycle for the guest, wired as every other (the registry's). */
  supervise(guest: Guest, spec: VmSpec, paths: VmPaths): VmLifecycle;
  withDefaults(spec: VmSpec): VmSpec;
  daemonEvent(event: 'unreachable' | 'orphaned', vm: string): void;
}

/**
 * Re-attach one guest from its state file: supervise its QEMU again if it is the one recorded
 * (attach() checks start time and command line), else show it as unreachable or gone.
 */
export async function adoptPersisted(ctx: ReattachContext, persisted: PersistedVmState): Promise<void> {
  const known = ctx.guests.get(persisted.vm);
  let spec: VmSpec;
  try {
    spec = parseVmConfig(persisted.config, persisted.configSource);
  } catch (error: unknown) {
    ctx.log.error(
      { vm: persisted.vm, pid: persisted.pid, err: error },
      'cannot read the launch config in the state file; guest not re-attached',
    );
    return;
  }
  const guest = known ?? new Guest(persisted.vm, null);
  if (known === undefined) {
    // Its config file is gone: supervise it until it stops, then forget it.
    guest.removed = true;
    ctx.guests.set(persisted.vm, guest);
  }
  // QEMU's pid file must agree with the state file; either way attach() adopts only a process
  // whose start time and command line match (a reused pid is never taken for the guest).
  const pidFile = await readPidFile(ctx.runDir, persisted.vm);
  if (pidFile !== null && pidFile !== persisted.pid) {
    ctx.log.warn({ vm: persisted.vm, pidFile, pid: persisted.pid }, 'qemu.pid disagrees with state.json; checking the recorded process');
  }
  const lifecycle = ctx.supervise(guest, spec, vmRunPaths(ctx.runDir, persisted.vm));
  void lifecycle.attach(persisted).catch(() => undefined);
  await settled(lifecycle);
  const error = lifecycle.status().error;
  if (error !== null && error.code === 'SUP_ERR_VM_UNREACHABLE') {
    // Its QEMU runs but could not be talked to: left alone, shown as unreachable.
    guest.lifecycle = null;
    guest.unsupervised = {
      state: 'unreachable',
      pid: persisted.pid,
      error: new SupervisorError('SUP_ERR_VM_UNREACHABLE', error.message, { details: { vm: persisted.vm, pid: persisted.pid } }),
      persisted,
    };
    ctx.daemonEvent('unreachable', persisted.vm);
    return;
  }
  if (isTerminal(lifecycle.state)) await removeStaleRunFiles(ctx.runDir, persisted.vm);
  ctx.log.info({ vm: persisted.vm, was: persisted.state, state: lifecycle.state, pid: lifecycle.pid }, 're-attached after restart');
}

/**
 * A state file that exists but cannot be used. Said loudly; then its QEMU is looked for by
 * command line (only this VM's QEMU names its private monitor socket). Exactly one such process
 * that started before sevsup last wrote the file, with a config to supervise it by, is adopted
 * as a guest that ran (QEMU's `prelaunch` still fails it closed: a hold cannot be restored);
 * anything less certain is shown as `orphaned`, with why, and left alone.
 */
export async function adoptUnreadable(ctx: ReattachContext, bad: UnreadableState): Promise<void> {
  const { vm, file, reason } = bad;
  ctx.log.error({ vm, file, reason }, `state file of VM ${vm} is unusable: ${reason}; looking for its QEMU by command line`);
  const paths = vmRunPaths(ctx.runDir, vm);
  const written = await stat(file).then(
    (s) => s.mtime,
    () => null,
  );
  const candidates = findQemuByCmdline(paths.monitorSocket);
  const guest = ctx.guests.get(vm) ?? new Guest(vm, null);
  if (!ctx.guests.has(vm)) {
    guest.removed = true;
    ctx.guests.set(vm, guest);
  }
  const aside = `${file}.unreadable`;
  if (candidates.length === 0) {
    // Nothing runs for it: keep the bad file for inspection, out of the next daemon's way.
    await rename(file, aside).catch(() => undefined);
    await removeStaleRunFiles(ctx.runDir, vm);
    if (guest.spec === null) ctx.guests.delete(vm);
    ctx.log.warn({ vm, file: aside }, 'no QEMU of this VM is running; the unusable state file was moved aside');
    return;
  }
  const orphan = (why: string): void => {
    const pid = candidates.length === 1 ? (candidates[0]?.pid ?? null) : null;
    const error = new SupervisorError(
      'SUP_ERR_VM_ORPHANED',
      `VM ${vm}: its state file ${file} is unusable (${reason}), and ${why}; sevsup left it alone. ` +
        `Stop that QEMU by hand (pids: ${candidates.map((c) => c.pid).join(', ')}), or fix the file and restart the daemon`,
      { details: { vm, file, pids: candidates.map((c) => c.pid) } },
    );
    guest.unsupervised = { state: 'orphaned', pid, error, persisted: null };
    ctx.log.error({ vm, pids: candidates.map((c) => c.pid), why }, 'guest orphaned: its QEMU runs unsupervised');
    ctx.daemonEvent('orphaned', vm);
  };
  const [only] = candidates;
  if (candidates.length > 1 || only === undefined) return orphan(`${candidates.length} processes name its monitor socket`);
  if (written === null || only.startedAt.getTime() > written.getTime() + 1000) {
    return orphan(`process ${only.pid} started after sevsup last wrote the file, so nothing proves it is the guest's QEMU`);
  }
  if (guest.spec === null || guest.removed) return orphan(`there is no config for it to be supervised by`);
  const spec = ctx.withDefaults(guest.spec);
  await rename(file, aside).catch(() => undefined);
  ctx.log.warn({ vm, pid: only.pid, file: aside }, 'adopting the QEMU its command line and start time name, with the current config');
  await adoptPersisted(ctx, {
    schema: VM_STATE_SCHEMA,
    vm,
    // A guest that ran: QEMU's own status decides running or paused (prelaunch fails closed).
    state: 'paused',
    platform: ctx.platform,
    sev: spec.sev !== undefined,
    pid: only.pid,
    startTime: only.startTime,
    monitorSocket: paths.monitorSocket,
    stderrFile: join(paths.dir, QEMU_LOG_FILE),
    record: null,
    holdDeadline: null,
    secretsInjected: 0,
    ran: true,
    config: canonical(spec),
    configSource: spec.source,
    error: null,
    updatedAt: new Date().toISOString(),
  });
}
