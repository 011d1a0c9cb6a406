// The per-guest state file `<run-dir>/<vm>/state.json`: what a restarted daemon needs to find a
// detached QEMU again and restore the guest's state without touching it (which process, which
// monitor, held or running, the hold deadline, this launch's record, the config it was launched
// with). Written atomically (temp, fsync, rename) at every lifecycle transition.
// Owns: the file's schema, its narrowing from `unknown`, and its reading and writing.
// Must not: hold secrets (it is 0600 anyway) or decide what a state means on re-attach (lifecycle.ts).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import { errnoOf } from '../util/io-error.js';
import type { RecordPlatform } from './record.js';
import { isVmState, type VmState } from './state.js';

export const VM_STATE_FILE = 'state.json';
export const VM_STATE_SCHEMA = 'sevsup.vm-state/v1';
const FILE_MODE = 0o600;
/** A state file is ~2 KiB (most of it the config text); anything far larger is not ours. */
const MAX_STATE_BYTES = 256 * 1024;

export interface PersistedVmState {
  readonly schema: typeof VM_STATE_SCHEMA;
  readonly vm: string;
  readonly state: VmState;
  readonly platform: RecordPlatform;
  readonly sev: boolean;
  /** QEMU's (or the simulator's) pid; null before spawn. */
  readonly pid: number | null;
  /** Its start time from /proc/<pid>/stat: with the pid, it names one process. */
  readonly startTime: number | null;
  /** QEMU's private monitor socket; its command line names it (the identity check). */
  readonly monitorSocket: string;
  /** Where QEMU's stderr goes; null when it is a pipe (`sevsup run`). */
  readonly stderrFile: string | null;
  /** This launch's measurement record, once written. */
  readonly record: string | null;
  /** ISO time a held guest is rejected at; null unless held. */
  readonly holdDeadline: string | null;
  readonly secretsInjected: number;
  /** True once sevsup resumed the guest: it has executed guest code. */
  readonly ran: boolean;
  /** Canonical text (formatVmConfig) of the config this launch used; changes apply at next start. */
  readonly config: string;
  /** The config file it came from, for messages. */
  readonly configSource: string;
  readonly error: { readonly code: string; readonly message: string } | null;
  readonly updatedAt: string;
}

export function vmStateFilePath(vmDir: string): string {
  return join(vmDir, VM_STATE_FILE);
}

/** Replace the state file atomically and durably. Rejects with the Node error (ENOSPC, …). */
export async function writeVmState(path: string, state: PersistedVmState): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`, { mode: FILE_MODE, overwrite: true });
}

/** What is at a state file's path: nothing, a state file of ours, or something else (and why). */
export type VmStateRead =
  | { readonly kind: 'none' }
  | { readonly kind: 'ok'; readonly state: PersistedVmState }
  | { readonly kind: 'bad'; readonly reason: string };

/**
 * The state file at `path`; null when there is none, or when it is not a state file of ours
 * (unreadable, too large, not JSON, wrong schema): a restarted daemon then does not adopt anything.
 */
export async function readVmState(path: string): Promise<PersistedVmState | null> {
  const read = await readVmStateFile(path);
  return read.kind === 'ok' ? read.state : null;
}

/** The state file at `path`, with the reason when it exists but is not a usable state file. */
export async function readVmStateFile(path: string): Promise<VmStateRead> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > MAX_STATE_BYTES)
      return { kind: 'bad', reason: `it is ${bytes.length} bytes, more than a state file can be (${MAX_STATE_BYTES})` };
    text = bytes.toString('utf8');
  } catch (error: unknown) {
    const code = errnoOf(error);
    return code === 'ENOENT' ? { kind: 'none' } : { kind: 'bad', reason: `it cannot be read (${code ?? String(error)})` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error: unknown) {
    const what =
      text.trim() === ''
        ? 'it is empty'
        : `it is not JSON, truncated or corrupt (${error instanceof Error ? error.message : String(error)})`;
    return { kind: 'bad', reason: what };
  }
  const state = parseVmState(value);
  return state === null
    ? { kind: 'bad', reason: `it is not a ${VM_STATE_SCHEMA} file (a member is missing or of the wrong type)` }
    : { kind: 'ok', state };
}

/** Narrow a decoded state file; null when any member is missing or of the wrong type. */
export function parseVmState(value: unknown): PersistedVmState | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const v: Record<string, unknown> = { ...value };
  const str = (k: string): string | null => {
    const x = v[k];
    return typeof x === 'string' ? x : null;
  };
  const nullableStr = (k: string): string | null | undefined => (v[k] === null ? null : (str(k) ?? undefined));
  const nullableInt = (k: string): number | null | undefined => {
    const x = v[k];
    if (x === null) return null;
    return typeof x === 'number' && Number.isSafeInteger(x) && x > 0 ? x : undefined;
  };

  const vm = str('vm');
  const state = v['state'];
  const platform = v['platform'];
  const monitorSocket = str('monitorSocket');
  const config = str('config');
  const configSource = str('configSource');
  const updatedAt = str('updatedAt');
  const pid = nullableInt('pid');
  const startTime = nullableInt('startTime');
  const stderrFile = nullableStr('stderrFile');
  const record = nullableStr('record');
  const holdDeadline = nullableStr('holdDeadline');
  const secretsInjected = v['secretsInjected'];
  const error = parseError(v['error']);
  if (
    v['schema'] !== VM_STATE_SCHEMA ||
    vm === null ||
    !isVmState(state) ||
    (platform !== 'hardware' && platform !== 'simulated') ||
    typeof v['sev'] !== 'boolean' ||
    typeof v['ran'] !== 'boolean' ||
    monitorSocket === null ||
    config === null ||
    configSource === null ||
    updatedAt === null ||
    pid === undefined ||
    startTime === undefined ||
    stderrFile === undefined ||
    record === undefined ||
    holdDeadline === undefined ||
    typeof secretsInjected !== 'number' ||
    !Number.isSafeInteger(secretsInjected) ||
    secretsInjected < 0 ||
    error === undefined
  ) {
    return null;
  }
  return {
    schema: VM_STATE_SCHEMA,
    vm,
    state,
    platform,
    sev: v['sev'],
    pid,
    startTime,
    monitorSocket,
    stderrFile,
    record,
    holdDeadline,
    secretsInjected,
    ran: v['ran'],
    config,
    configSource,
    error,
    updatedAt,
  };
}

function parseError(value: unknown): PersistedVmState['error'] | undefined {
  if (value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) return undefined;
  const e: Record<string, unknown> = { ...value };
  return typeof e['code'] === 'string' && typeof e['message'] === 'string' ? { code: e['code'], message: e['message'] } : undefined;
}
