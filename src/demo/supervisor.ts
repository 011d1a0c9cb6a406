// The supervisor `sevsup demo` drives, as a child process: `sevsup daemon` with a temporary config
// (the default), or `sevsup run --hold` for one guest (when the daemon is not available).
// Owns: how each is started and stopped, and how the demo addresses the guest through it (control
// API for status and the record, CLI flags for `sevsup attest` and `sevsup qmp`).
// Must not: decide the demo's steps or print (demo/demo.ts does).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { callControl, controlSocketPath } from '../api/client.js';
import type { VmStatus } from '../vm/types.js';
import { SupervisorError } from '../errors.js';
import { Background, pollUntil } from './processes.js';

export interface DemoPaths {
  readonly work: string;
  readonly vmDir: string;
  readonly runDir: string;
  readonly stateDir: string;
  readonly ownerDir: string;
  readonly tik: string;
  readonly tek: string;
}

export interface DemoSupervisor {
  readonly kind: 'daemon' | 'run';
  /** The command line as shown to the reader (program name first). */
  readonly shown: readonly string[];
  /** The supervisor's own config file (path and text), when it has one. */
  readonly config: { readonly path: string; readonly text: string } | null;
  /** The child, once started. */
  readonly process: Background;
  /** Flags that point `sevsup list/status` at the daemon; null for `sevsup run` (no daemon). */
  readonly daemonTarget: readonly string[] | null;
  /** Flags that point `sevsup attest` at this supervisor's control socket. */
  readonly attestTarget: readonly string[];
  /** Flags that point `sevsup qmp` at the guest's proxy socket (<run-dir>/<vm>/qmp.sock). */
  readonly qmpTarget: readonly string[];
  /** The guest's status (or another guest's, by name); null while the control socket does not answer. */
  status(vm?: string): Promise<VmStatus | null>;
  /** The measurement record as the control API serves it. */
  measurement(): Promise<unknown>;
  /** Resolves when the guest has stopped (its QEMU exited) and the supervisor noticed. */
  guestStopped(timeoutMs: number, signal: AbortSignal): Promise<void>;
  /** End the supervisor in order (SIGTERM, then SIGKILL after a grace). */
  shutdown(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SupervisorSpawn {
  /** node, and bin/sevsup. */
  readonly node: string;
  readonly sevsup: string;
  readonly vm: string;
  readonly paths: DemoPaths;
  /** The supervisor's environment (default: the demo's own). */
  readonly env?: NodeJS.ProcessEnv;
  /** The daemon's identity to the owner's attestation service (daemon config `host-id`). */
  readonly hostId?: string;
}

/** A supervisor that does not exit on SIGTERM within this long is killed. */
const SHUTDOWN_GRACE_MS = 30_000;
const POLL_MS = 100;

/** `sevsup run <vm> --platform sim --hold`: one guest, its control socket in <run>/<vm>/. */
export function startRunSupervisor(o: SupervisorSpawn): DemoSupervisor {
  const args = [
    'run',
    o.vm,
    '--vm-dir',
    o.paths.vmDir,
    '--platform',
    'sim',
    '--hold',
    '--run-dir',
    o.paths.runDir,
    '--state-dir',
    o.paths.stateDir,
    '--powerdown-timeout',
    '5',
  ];
  const child = new Background(o.node, [o.sevsup, ...args], o.env);
  const socketPath = controlSocketPath(o.paths.runDir, o.vm);
  const api = controlApi(socketPath, o.vm);
  return {
    kind: 'run',
    config: null,
    shown: ['sevsup', ...args],
    process: child,
    daemonTarget: null,
    attestTarget: ['--run-dir', o.paths.runDir],
    qmpTarget: ['--run-dir', o.paths.runDir],
    status: api.status,
    measurement: api.measurement,
    // `sevsup run` exits once its guest is gone.
    guestStopped: async (timeoutMs, signal) => {
      const exited = await withinTime(child.exited, timeoutMs, signal);
      if (exited === null)
        throw new SupervisorError(
          'SUP_ERR_LAUNCH_TIMEOUT',
          `sevsup run did not exit within ${timeoutMs / 1000} s after the guest powered off`,
        );
      if (exited.code !== 0) throw supervisorExit('sevsup run', exited, child.stderr);
    },
    shutdown: async () => {
      await child.stop('SIGTERM', SHUTDOWN_GRACE_MS);
      return child.exited;
    },
  };
}

/**
 * `sevsup daemon --config <work>/sevsup.conf`: the daemon with a private vm-dir, run dir and state
 * dir, the guest autostarted on the simulated platform.
 */
export async function startDaemonSupervisor(o: SupervisorSpawn): Promise<DemoSupervisor> {
  const config = join(o.paths.work, 'sevsup.conf');
  const socketPath = join(o.paths.runDir, 'sevsup.sock');
  const configText = [
    '# sevsup demo: a private daemon on the simulated SEV platform.',
    'platform: sim',
    `vm-dir: ${o.paths.vmDir}`,
    `run-dir: ${o.paths.runDir}`,
    `state-dir: ${o.paths.stateDir}`,
    `socket: ${socketPath}`,
    // Stop the guest when the demo stops the daemon (the default, keep, is for restarts).
    'on-shutdown: shutdown',
    ...(o.hostId === undefined ? [] : [`host-id: ${o.hostId}`]),
    'log-level: warn',
    '',
  ].join('\n');
  await writeFile(config, configText);
  const args = ['daemon', '--config', config];
  const child = new Background(o.node, [o.sevsup, ...args], o.env);
  const api = controlApi(socketPath, o.vm);
  return {
    kind: 'daemon',
    config: { path: config, text: configText },
    shown: ['sevsup', ...args],
    process: child,
    daemonTarget: ['--socket', socketPath],
    attestTarget: ['--socket', socketPath],
    qmpTarget: ['--run-dir', o.paths.runDir],
    status: api.status,
    measurement: api.measurement,
    guestStopped: async (timeoutMs, signal) => {
      const stopped = await pollUntil(
        async () => {
          if (!child.running) throw supervisorExit('sevsup daemon', await child.exited, child.stderr);
          const s = await api.status();
          return s !== null && (s.state === 'stopped' || s.state === 'failed') ? s : undefined;
        },
        { timeoutMs, intervalMs: POLL_MS, signal },
      );
      if (stopped === undefined)
        throw new SupervisorError('SUP_ERR_LAUNCH_TIMEOUT', `the daemon did not report the guest stopped within ${timeoutMs / 1000} s`);
      if (stopped.state === 'failed') throw guestFailed(stopped);
    },
    shutdown: async () => {
      await child.stop('SIGTERM', SHUTDOWN_GRACE_MS);
      return child.exited;
    },
  };
}

function controlApi(socketPath: string, vm: string): { status(other?: string): Promise<VmStatus | null>; measurement(): Promise<unknown> } {
  const path = `/v1/vms/${encodeURIComponent(vm)}`;
  return {
    status: async (other) => {
      const at = other === undefined ? path : `/v1/vms/${encodeURIComponent(other)}`;
      try {
        return (await callControl({ socketPath, method: 'GET', path: at, timeoutMs: 5_000 })) as VmStatus;
      } catch (error: unknown) {
        if (error instanceof SupervisorError && (error.code === 'SUP_ERR_API_UNREACHABLE' || error.code === 'SUP_ERR_VM_NOT_FOUND'))
          return null;
        throw error;
      }
    },
    measurement: () => callControl({ socketPath, method: 'GET', path: `${path}/measurement`, timeoutMs: 5_000 }),
  };
}

/**
 * Poll the guest's status until it is `state`.
 * @throws SUP_ERR_LAUNCH_TIMEOUT after `timeoutMs`; the guest's own error when it failed; a
 * description of the supervisor's exit (with its stderr) when it ended first.
 */
export async function waitForState(
  s: DemoSupervisor,
  state: string | readonly string[],
  timeoutMs: number,
  signal: AbortSignal,
): Promise<VmStatus> {
  const wanted: readonly string[] = typeof state === 'string' ? [state] : state;
  let last: VmStatus | null = null;
  const reached = await pollUntil(
    async () => {
      if (!s.process.running) throw supervisorExit(`sevsup ${s.kind}`, await s.process.exited, s.process.stderr);
      last = await s.status();
      if (last?.state === 'failed') throw guestFailed(last);
      return last !== null && wanted.includes(last.state) ? last : undefined;
    },
    { timeoutMs, intervalMs: POLL_MS, signal },
  );
  if (reached !== undefined) return reached;
  if (signal.aborted) throw new SupervisorError('SUP_ERR_USAGE', 'interrupted');
  const seen = last === null ? 'no answer on the control socket' : `state ${(last as VmStatus).state}`;
  throw new SupervisorError(
    'SUP_ERR_LAUNCH_TIMEOUT',
    `the guest did not reach state ${wanted.join(' or ')} within ${timeoutMs / 1000} s (${seen})`,
  );
}

function guestFailed(status: VmStatus): SupervisorError {
  const why = status.error === null ? 'no reason given' : `${status.error.message} [${status.error.code}]`;
  return new SupervisorError('SUP_ERR_LAUNCH_FAILED', `the guest failed: ${why}`, { details: { vm: status.vm } });
}

function supervisorExit(what: string, exit: { code: number | null; signal: NodeJS.Signals | null }, stderr: string): SupervisorError {
  const how = exit.signal === null ? `exit code ${exit.code ?? '?'}` : exit.signal;
  const tail = stderr.trim().split('\n').slice(-6).join('\n');
  return new SupervisorError('SUP_ERR_LAUNCH_FAILED', `${what} ended (${how})${tail === '' ? '' : `:\n${tail}`}`);
}

/** `promise`'s value, or null after `ms` or on abort; leaves no timer behind (it would keep the demo alive). */
async function withinTime<T>(promise: Promise<T>, ms: number, signal: AbortSignal): Promise<T | null> {
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await Promise.race([promise, delay(ms, null, { signal: stop.signal }).catch(() => null)]);
  } finally {
    stop.abort();
    signal.removeEventListener('abort', onAbort);
  }
}
