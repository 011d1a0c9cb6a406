// Finding the guests a previous daemon left behind: every `<run-dir>/<vm>/state.json`. What each
// one means (adopt, or report as gone) is the lifecycle's attach(); this only lists them, and
// removes what is stale once a guest is known to be gone.
// Owns: the run-dir scan and the stale-file cleanup. Must not: signal or adopt processes, or
// delete anything but sockets and pid files in a VM's run dir (logs and the state file stay).
import { lstat, readFile, readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { vmRunPaths } from '../process/run-dir.js';
import { readVmStateFile, vmStateFilePath, type PersistedVmState } from '../vm/state-file.js';

/** A state file that exists but cannot be used: its guest may run unsupervised (the registry decides). */
export interface UnreadableState {
  readonly vm: string;
  readonly file: string;
  readonly reason: string;
}

/**
 * Every state file under `runDir`, by VM: the usable ones, and the ones that exist but are not
 * (truncated, corrupt, foreign, or describing another directory), each with why.
 */
export async function discoverGuests(runDir: string): Promise<{ found: PersistedVmState[]; unreadable: UnreadableState[] }> {
  let entries: string[];
  try {
    entries = await readdir(runDir);
  } catch {
    return { found: [], unreadable: [] };
  }
  const found: PersistedVmState[] = [];
  const unreadable: UnreadableState[] = [];
  for (const name of entries.sort()) {
    const dir = join(runDir, name);
    const info = await lstat(dir).catch(() => null);
    if (info === null || !info.isDirectory()) continue;
    const file = vmStateFilePath(dir);
    const read = await readVmStateFile(file);
    if (read.kind === 'none') continue;
    if (read.kind === 'bad') {
      unreadable.push({ vm: name, file, reason: read.reason });
      continue;
    }
    // A state file must describe the directory it is in: never adopt through a copied file.
    if (read.state.vm === name && read.state.monitorSocket === vmRunPaths(runDir, name).monitorSocket) found.push(read.state);
    else
      unreadable.push({
        vm: name,
        file,
        reason: `it describes VM ${JSON.stringify(read.state.vm)} at ${read.state.monitorSocket}, not this directory`,
      });
  }
  return { found, unreadable };
}

/**
 * Remove a gone guest's leftovers: its sockets, pid file and the simulator's private
 * directories. Safe to call only when its QEMU is known to be gone (attach() said so).
 */
export async function removeStaleRunFiles(runDir: string, vm: string): Promise<void> {
  const paths = vmRunPaths(runDir, vm);
  for (const file of [paths.proxySocket, paths.controlSocket, paths.monitorSocket, paths.pidFile]) {
    const info = await lstat(file).catch(() => null);
    if (info !== null && (info.isSocket() || (file === paths.pidFile && info.isFile()))) await unlink(file).catch(() => undefined);
  }
  const privateEntries = await readdir(paths.privateDir).catch(() => [] as string[]);
  for (const name of privateEntries) {
    if (name.startsWith('.sevsup-sim-')) await rm(join(paths.privateDir, name), { recursive: true, force: true });
  }
}

/** The pid in a guest's `qemu.pid` (QEMU's -pidfile; the simulator writes its own); null if none. */
export async function readPidFile(runDir: string, vm: string): Promise<number | null> {
  const text = await readFile(vmRunPaths(runDir, vm).pidFile, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  return /^\d+$/.test(text.trim()) && Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}
