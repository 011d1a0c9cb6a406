// Guest operations beyond the launch: disk snapshots and the offline move, under the seed's rules
// ("only disallow live-migration and snapshots with vmstate -> allow offline migration and
// snapshots without vmstate"): a running SEV guest is never migrated, memory is never saved.
// Owns: those rules (pure: refuseSnapshot, refuseMigrate) and the offline work (qemu-img snapshots
// of a stopped guest's qcow2 disks; copying a stopped guest's config and disks to a directory).
// Must not: touch a guest that runs (the caller checks its state; online snapshots go through the
// lifecycle's own monitor session), or leave half a snapshot or half a copy behind on failure.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import type { MigrateResult, SnapshotResult } from '../api/types.js';
import { formatVmConfig, VM_CONFIG_SUFFIX } from '../config/vm-config.js';
import type { DiskSpec, VmSpec } from '../config/vm-spec.js';
import { SupervisorError } from '../errors.js';
import { diskNodeName } from '../qemu/devices.js';
import { snapshotInternalTransaction } from '../qmp/commands.js';
import { describeIoError, errnoOf } from '../util/io-error.js';

const run = promisify(execFile);

/** qemu-img writes a snapshot's metadata only; a minute means a hung NFS mount, not work. */
export const QEMU_IMG_TIMEOUT_MS = 60_000;
/** The disks an internal snapshot applies to: writable qcow2 (raw cannot hold one). */
export function snapshotDisks(spec: VmSpec): DiskSpec[] {
  return spec.disks.filter((d) => d.format === 'qcow2' && !d.readonly);
}

/**
 * Pure: refuse a snapshot the guest cannot have; returns its disks otherwise.
 * @throws SUP_ERR_SNAPSHOT_VMSTATE (memory of an SEV guest, the seed's text),
 *   SUP_ERR_SNAPSHOT_UNSUPPORTED (memory of any guest; no qcow2 disk).
 */
export function refuseSnapshot(spec: VmSpec, vmstate: boolean): DiskSpec[] {
  if (vmstate && spec.sev !== undefined) throw new SupervisorError('SUP_ERR_SNAPSHOT_VMSTATE', undefined, { details: { vm: spec.name } });
  if (vmstate) {
    throw new SupervisorError('SUP_ERR_SNAPSHOT_UNSUPPORTED', `VM ${spec.name}: sevsup takes disk-only snapshots; memory state is never saved`, {
      details: { vm: spec.name },
    });
  }
  const disks = snapshotDisks(spec);
  if (disks.length === 0) {
    throw new SupervisorError('SUP_ERR_SNAPSHOT_UNSUPPORTED', `VM ${spec.name} has no writable qcow2 disk: raw disks cannot hold internal snapshots`, {
      details: { vm: spec.name },
    });
  }
  return disks;
}

/** What an online snapshot speaks through: the lifecycle's own monitor session. */
export interface GuestMonitor {
  monitorExecute(command: string, args?: Record<string, unknown>): Promise<unknown>;
}

/**
 * Snapshot every disk of a guest under supervision at once (all or none), on nodes `disk<N>`.
 * @throws SUP_ERR_QMP_EXECUTE when QEMU refuses; the monitor's own errors.
 */
export async function snapshotOnline(monitor: GuestMonitor, disks: readonly DiskSpec[], name: string): Promise<void> {
  const executor = { execute: (command: string, args?: Record<string, unknown>) => monitor.monitorExecute(command, args) };
  await snapshotInternalTransaction(executor, disks.map(diskNodeName), name);
}

/**
 * `qemu-img snapshot -c NAME FILE` on each disk of a stopped guest; on a failure the ones already
 * taken are deleted again, so the guest has the snapshot on every disk or on none.
 * @throws SUP_ERR_SNAPSHOT_FAILED quoting qemu-img.
 */
export async function snapshotOffline(spec: VmSpec, disks: readonly DiskSpec[], name: string, qemuImg = 'qemu-img'): Promise<SnapshotResult> {
  const done: DiskSpec[] = [];
  for (const disk of disks) {
    try {
      await run(qemuImg, ['snapshot', '-c', name, disk.file], { timeout: QEMU_IMG_TIMEOUT_MS });
      done.push(disk);
    } catch (error: unknown) {
      for (const taken of done) await run(qemuImg, ['snapshot', '-d', name, taken.file], { timeout: QEMU_IMG_TIMEOUT_MS }).catch(() => undefined);
      throw new SupervisorError('SUP_ERR_SNAPSHOT_FAILED', `VM ${spec.name}: qemu-img could not snapshot disk${disk.index} (${disk.file}): ${toolError(error)}`, {
        details: { vm: spec.name, disk: disk.file },
        cause: error,
      });
    }
  }
  return { vm: spec.name, name, via: 'qemu-img', disks: disks.map((d) => d.file) };
}

/** What to do instead of a URI: the offline move, step by step. */
export function offlineMoveHelp(vm: string): string {
  return (
    `sevsup moves a stopped guest offline: 'sevsup migrate ${vm} /ABSOLUTE/DIR' copies its config and disks to DIR/${vm}/; ` +
    `copy that directory to the new host, put ${vm}${VM_CONFIG_SUFFIX} into its vm-dir, send its daemon SIGHUP and start the guest there; ` +
    `then remove the config here (docs/daemon.md, "Moving a stopped guest")`
  );
}

/**
 * Pure: refuse a migration. A guest with a QEMU is never moved (an SEV one with the seed's text);
 * a stopped one only to a local directory.
 * @throws SUP_ERR_MIGRATE_SEV, SUP_ERR_MIGRATE_RUNNING, SUP_ERR_MIGRATE_TARGET
 */
export function refuseMigrate(spec: VmSpec, active: boolean, target: string): void {
  if (active && spec.sev !== undefined) throw new SupervisorError('SUP_ERR_MIGRATE_SEV', undefined, { details: { vm: spec.name } });
  if (active) {
    throw new SupervisorError('SUP_ERR_MIGRATE_RUNNING', `VM ${spec.name} is running: sevsup has no live migration; stop it first, then move it offline`, {
      details: { vm: spec.name },
    });
  }
  if (!isAbsolute(target)) {
    throw new SupervisorError('SUP_ERR_MIGRATE_TARGET', `cannot migrate VM ${spec.name} to '${target}': ${offlineMoveHelp(spec.name)}`, {
      details: { vm: spec.name },
    });
  }
}

/**
 * Copy a stopped guest's disks to `<targetDir>/<vm>/` and write its config there with the disk
 * paths pointing at the copies. The source stays as it is. Refuses an existing destination.
 * @throws SUP_ERR_MIGRATE_FAILED (the partial copy is removed).
 */
export async function exportGuest(spec: VmSpec, targetDir: string): Promise<MigrateResult> {
  const dest = join(targetDir, spec.name);
  const fail = (why: string, cause?: unknown): SupervisorError =>
    new SupervisorError('SUP_ERR_MIGRATE_FAILED', `cannot move VM ${spec.name} to ${dest}: ${why}`, {
      details: { vm: spec.name, target: dest },
      ...(cause === undefined ? {} : { cause }),
    });
  const moved = spec.disks.map((d) => ({ disk: d, to: join(dest, `disk${d.index}-${basename(d.file)}`) }));
  // The destination itself is created here, exclusively (mkdir(2) neither follows nor reuses what
  // is there): a directory or symlink planted in a shared target dir is refused, never written into.
  try {
    await mkdir(targetDir, { recursive: true, mode: 0o750 });
    await mkdir(dest, { mode: 0o750 });
  } catch (error: unknown) {
    if (errnoOf(error) === 'EEXIST') {
      throw fail('it already exists; choose another directory or remove it');
    }
    throw fail(describeIoError(error), error);
  }
  try {
    // FICLONE where the file system can (a reflink, instant); a plain copy elsewhere.
    for (const m of moved) await copyFile(m.disk.file, m.to, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
    const exported: VmSpec = { ...spec, disks: moved.map((m) => ({ ...m.disk, file: m.to })) };
    await writeFile(join(dest, `${spec.name}${VM_CONFIG_SUFFIX}`), formatVmConfig(exported), { mode: 0o640, flag: 'wx' });
  } catch (error: unknown) {
    await rm(dest, { recursive: true, force: true });
    throw fail(describeIoError(error), error);
  }
  const config = join(dest, `${spec.name}${VM_CONFIG_SUFFIX}`);
  return {
    vm: spec.name,
    target: dest,
    config,
    disks: moved.map((m) => ({ from: m.disk.file, to: m.to })),
    next: [
      `copy ${dest} to the new host (e.g. rsync -aS ${dest}/ newhost:${dest}/)`,
      `on the new host: put ${spec.name}${VM_CONFIG_SUFFIX} into the vm-dir (adjust firmware/kernel paths if they differ there), then systemctl reload sevsup`,
      `on the new host: sevsup start ${spec.name}; its owner attests the new launch as usual`,
      `here, once it runs there: remove ${spec.source} and systemctl reload sevsup (the disks here are left as they were)`,
    ],
  };
}

function toolError(error: unknown): string {
  const stderr = typeof error === 'object' && error !== null && 'stderr' in error ? String(error.stderr).trim() : '';
  if (stderr !== '') return stderr.split('\n').slice(-2).join('; ');
  return error instanceof Error ? error.message : String(error);
}
