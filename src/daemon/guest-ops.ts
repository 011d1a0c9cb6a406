// Guest operations beyond the launch: disk snapshots and the offline move, under the seed's rules
// ("only disallow live-migration and snapshots with vmstate -> allow offline migration and
// snapshots without vmstate"): a running SEV guest is never migrated, memory is never saved.
// Owns: those rules (pure: refuseSnapshot, refuseMigrate) and the offline work (qemu-img snapshots
// of a stopped guest's qcow2 disks; copying a stopped guest's config and disks to a directory).
// Must not: touch a guest that runs (the caller checks its state; online snapshots go through the
// lifecycle's own monitor session), or leave half a snapshot or half a copy behind on failure.
import { execFile } from 'node:child_process';
import { constants, fchmodSync } from 'node:fs';
import { copyFile, lstat, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { basename, isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import type { MigrateResult, SnapshotResult } from '../api/types.js';
import { formatVmConfig, VM_CONFIG_SUFFIX } from '../config/vm-config.js';
import type { DiskSpec, VmSpec } from '../config/vm-spec.js';
import { SupervisorError } from '../errors.js';
import { diskNodeName, type BackingLayer } from '../qemu/devices.js';
import { snapshotInternalTransaction } from '../qmp/commands.js';
import { DirHandleError, openDirNoFollow, type DirHandle } from '../util/dir-handle.js';
import { describeIoError, errnoOf } from '../util/io-error.js';
import { readDiskChains, type DiskChains } from '../vm/disk-chain.js';

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
    throw new SupervisorError(
      'SUP_ERR_SNAPSHOT_UNSUPPORTED',
      `VM ${spec.name}: sevsup takes disk-only snapshots; memory state is never saved`,
      {
        details: { vm: spec.name },
      },
    );
  }
  const disks = snapshotDisks(spec);
  if (disks.length === 0) {
    throw new SupervisorError(
      'SUP_ERR_SNAPSHOT_UNSUPPORTED',
      `VM ${spec.name} has no writable qcow2 disk: raw disks cannot hold internal snapshots`,
      {
        details: { vm: spec.name },
      },
    );
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
 * @throws SUP_ERR_SNAPSHOT_FAILED quoting qemu-img; SUP_ERR_DISK_READ, SUP_ERR_DISK_CHAIN_REFUSED
 *   (a disk's chain breaks the rules of vm/disk-chain.ts: qemu-img is not run).
 */
export async function snapshotOffline(
  spec: VmSpec,
  disks: readonly DiskSpec[],
  name: string,
  qemuImg = 'qemu-img',
): Promise<SnapshotResult> {
  // qemu-img opens the chain an image's header names (a json: or nbd: name included): it may run
  // only on images whose chain sevsup has checked, as before a start.
  await readDiskChains(spec);
  const done: DiskSpec[] = [];
  for (const disk of disks) {
    try {
      await run(qemuImg, ['snapshot', '-c', name, disk.file], { timeout: QEMU_IMG_TIMEOUT_MS });
      done.push(disk);
    } catch (error: unknown) {
      for (const taken of done)
        await run(qemuImg, ['snapshot', '-d', name, taken.file], { timeout: QEMU_IMG_TIMEOUT_MS }).catch(() => undefined);
      throw new SupervisorError(
        'SUP_ERR_SNAPSHOT_FAILED',
        `VM ${spec.name}: qemu-img could not snapshot disk${disk.index} (${disk.file}): ${toolError(error)}`,
        {
          details: { vm: spec.name, disk: disk.file },
          cause: error,
        },
      );
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
    throw new SupervisorError(
      'SUP_ERR_MIGRATE_RUNNING',
      `VM ${spec.name} is running: sevsup has no live migration; stop it first, then move it offline`,
      {
        details: { vm: spec.name },
      },
    );
  }
  if (!isAbsolute(target)) {
    throw new SupervisorError('SUP_ERR_MIGRATE_TARGET', `cannot migrate VM ${spec.name} to '${target}': ${offlineMoveHelp(spec.name)}`, {
      details: { vm: spec.name },
    });
  }
}

/** One file of the export: where it comes from, its name in the destination, what it is backed by. */
interface ExportFile {
  readonly from: string;
  readonly name: string;
  /** The exported name and format of the image below it, for qcow2 images with a backing. */
  readonly backing: { readonly name: string; readonly format: BackingLayer['format'] } | null;
}

/**
 * Pure: the files of an export, each disk then its backing chain (a base shared by two disks once),
 * with names unique in the destination and the backing each copy must name.
 */
export function exportPlan(spec: VmSpec, chains: DiskChains): { disks: { disk: DiskSpec; name: string }[]; files: ExportFile[] } {
  const files: ExportFile[] = [];
  const byPath = new Map<string, string>();
  const disks: { disk: DiskSpec; name: string }[] = [];
  for (const disk of spec.disks) {
    const chain = chains.get(disk.index) ?? [];
    const names = [
      `disk${disk.index}-${basename(disk.file)}`,
      ...chain.map((l, k) => byPath.get(l.file) ?? `disk${disk.index}-backing${k + 1}-${basename(l.file)}`),
    ];
    disks.push({ disk, name: names[0]! });
    const layers = [{ file: disk.file, format: disk.format }, ...chain];
    for (let k = 0; k < layers.length; k++) {
      const layer = layers[k]!;
      if (byPath.has(layer.file)) break; // the rest of this chain is already planned
      byPath.set(layer.file, names[k]!);
      const below = layers[k + 1];
      files.push({
        from: layer.file,
        name: names[k]!,
        backing: layer.format === 'qcow2' && below !== undefined ? { name: names[k + 1]!, format: below.format } : null,
      });
    }
  }
  return { disks, files };
}

/**
 * Copy a stopped guest's disks, with their whole backing chains, to `<targetDir>/<vm>/` and write
 * its config there with the disk paths pointing at the copies; each copy's backing reference is
 * rewritten to its copied base by a relative name, so the chain stays inside the directory wherever
 * it is moved. The source stays as it is.
 * No write can be redirected: the target is walked without following symlinks (a symlink in it is
 * refused), everything is written into a private (0700) temporary directory reached through its
 * open fd, never by path, with O_EXCL, and that directory is renamed into place at the end.
 * A chain that cannot be exported (vm/disk-chain.ts refuses it) is refused before anything is written.
 * @throws SUP_ERR_MIGRATE_FAILED (nothing is left behind), SUP_ERR_DISK_READ, SUP_ERR_DISK_CHAIN_REFUSED.
 */
export async function exportGuest(spec: VmSpec, targetDir: string, qemuImg = 'qemu-img'): Promise<MigrateResult> {
  const dest = join(targetDir, spec.name);
  const fail = (why: string, cause?: unknown): SupervisorError =>
    new SupervisorError('SUP_ERR_MIGRATE_FAILED', `cannot move VM ${spec.name} to ${dest}: ${why}`, {
      details: { vm: spec.name, target: dest },
      ...(cause === undefined ? {} : { cause }),
    });
  const plan = exportPlan(spec, await readDiskChains(spec));
  let parent: DirHandle;
  try {
    parent = openDirNoFollow(targetDir, { create: true, mode: 0o750 });
  } catch (error: unknown) {
    if (error instanceof DirHandleError)
      throw fail(`${error.message}; give a target whose every component is a real directory (no symlinks)`, error);
    throw fail(describeIoError(error), error);
  }
  let temp: string | null = null;
  try {
    if (await exists(parent.path(spec.name))) throw fail('it already exists; choose another directory or remove it');
    // mkdtemp: 0700, a fresh name nobody else can have planted.
    temp = basename(await mkdtemp(parent.path(`.${spec.name}.sevsup-export-`)));
    const work = parent.open(temp);
    try {
      for (const file of plan.files) {
        // FICLONE where the file system can (a reflink, instant); EXCL: never through what is there.
        await copyFile(file.from, work.path(file.name), constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
      }
      for (const file of plan.files) {
        if (file.backing === null) continue;
        // -u: only the header changes; the copy below it is identical to the source's base.
        await run(
          qemuImg,
          ['rebase', '-q', '-u', '-f', 'qcow2', '-b', file.backing.name, '-F', file.backing.format, work.pathForChild(file.name)],
          {
            timeout: QEMU_IMG_TIMEOUT_MS,
          },
        );
      }
      const exported: VmSpec = { ...spec, disks: plan.disks.map((d) => ({ ...d.disk, file: join(dest, d.name) })) };
      await writeFile(work.path(`${spec.name}${VM_CONFIG_SUFFIX}`), formatVmConfig(exported), { mode: 0o640, flag: 'wx' });
      fchmodSync(work.fd, 0o750);
    } finally {
      work.close();
    }
    // rename(2) never follows a symlink at the new name; a non-empty directory there makes it fail.
    await rename(parent.path(temp), parent.path(spec.name));
    temp = null;
  } catch (error: unknown) {
    if (temp !== null) await rm(parent.path(temp), { recursive: true, force: true }).catch(() => undefined);
    if (error instanceof SupervisorError) throw error;
    throw fail(errnoOf(error) === undefined ? toolError(error) : describeIoError(error), error);
  } finally {
    parent.close();
  }
  const config = join(dest, `${spec.name}${VM_CONFIG_SUFFIX}`);
  const disks = plan.files.map((f) => ({ from: f.from, to: join(dest, f.name) }));
  return {
    vm: spec.name,
    target: dest,
    config,
    disks,
    next: [
      `copy ${dest} to the new host (e.g. rsync -aS ${dest}/ newhost:${dest}/)`,
      `on the new host: put ${spec.name}${VM_CONFIG_SUFFIX} into the vm-dir (adjust firmware/kernel paths if they differ there), then systemctl reload sevsup`,
      `on the new host: sevsup start ${spec.name}; its owner attests the new launch as usual`,
      `here, once it runs there: remove ${spec.source} and systemctl reload sevsup (the disks here are left as they were)`,
    ],
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error: unknown) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw error;
  }
}

function toolError(error: unknown): string {
  const stderr = typeof error === 'object' && error !== null && 'stderr' in error ? String(error.stderr).trim() : '';
  if (stderr !== '') return stderr.split('\n').slice(-2).join('; ');
  return error instanceof Error ? error.message : String(error);
}
