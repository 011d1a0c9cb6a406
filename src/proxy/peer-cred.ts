// Who is on the other end of a proxy client's unix socket, for the audit log and per-peer limits.
// Owns: finding the peer's processes and their uid/gid. Must not: block or slow the proxy (the
// fallback lookup is asynchronous, one at a time, time-bounded) or decide anything from its answer.
//
// First choice, at accept (peerCredAtAccept): SO_PEERCRED through the optional `sockopt` addon (prebuilt
// N-API, ints only: it returns the first int of struct ucred, the pid the kernel recorded at
// connect()), then that process's uid/gid/comm read from /proc at once. A client that sends a
// refused command and closes is still named: the pid was fixed before it sent a byte. (The addon
// mallocs its 4-byte result and never frees it: 4 bytes per accepted connection, accepted.)
// Fallback when the addon cannot load (lookupUnixPeer), what Linux offers without getsockopt:
//  1. our end's inode: readlink /proc/self/fd/<fd> ("socket:[N]"); the fd comes from the socket's
//     libuv handle, read with runtime checks (it is not a documented Node API);
//  2. the peer end's inode: sock_diag's UNIX_DIAG_PEER, which iproute2's `ss -x` prints as the
//     peer "port" (/proc/net/unix has no peer column);
//  3. the processes holding the peer inode (`ss -p` scans /proc/<pid>/fd), and their effective
//     uid/gid from /proc/<pid>/status.
// Honest limits: this names the processes holding the peer socket at lookup time, not the
// credentials at connect() that SO_PEERCRED would give. A socket inherited by or passed to another
// process names every holder; a client that exited names none; a non-root supervisor sees only
// its own user's processes; without iproute2 the answer is "unavailable" with the reason.
import { execFile } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { errnoOf } from '../util/io-error.js';

export interface PeerProcess {
  readonly pid: number;
  /** Effective uid/gid (what SO_PEERCRED reports); null when /proc/<pid> could not be read. */
  readonly uid: number | null;
  readonly gid: number | null;
  readonly comm: string;
}

export type PeerInfo =
  | {
      readonly known: true;
      /** How it was learnt: SO_PEERCRED at accept, or `ss` (which also gives the peer's inode). */
      readonly via: 'so_peercred' | 'ss';
      readonly inode?: number;
      readonly processes: readonly PeerProcess[];
    }
  | { readonly known: false; readonly why: string };

export interface PeerLookupOptions {
  /** @default 'ss' (from PATH) */
  readonly ss?: string;
  /** Bound on one `ss` run. @default 2000 */
  readonly timeoutMs?: number;
}

/** `ss -xp` prints every unix socket on the host: a few hundred bytes each; 16 MiB is ~50k sockets. */
const SS_MAX_OUTPUT = 16 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 2_000;

/** One unix socket line of `ss -xpnH`: its inode, its peer's inode, the processes holding it. */
export interface SsUnixSocket {
  readonly inode: number;
  readonly peer: number;
  readonly processes: readonly { readonly pid: number; readonly comm: string }[];
}

// Netid State Recv-Q Send-Q Local-Address Port Peer-Address Port [users:((...))]; addresses are
// paths or '*' (paths may hold spaces, so they are matched lazily between the numeric columns).
const SS_LINE = /^u_\S+\s+\S+\s+\d+\s+\d+\s+.*?\s(\d+)\s+.*?\s(\d+)(?:\s+users:\((.*)\))?\s*$/;
const SS_USER = /\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=\d+\)/g;

/** Parse `ss -xpnH` output (pure; exported for tests). */
export function parseSsUnix(text: string): Map<number, SsUnixSocket> {
  const sockets = new Map<number, SsUnixSocket>();
  for (const line of text.split('\n')) {
    const match = SS_LINE.exec(line);
    if (match === null) continue;
    const inode = Number(match[1]);
    const processes: { pid: number; comm: string }[] = [];
    for (const user of (match[3] ?? '').matchAll(SS_USER)) processes.push({ pid: Number(user[2]), comm: user[1] ?? '' });
    sockets.set(inode, { inode, peer: Number(match[2]), processes });
  }
  return sockets;
}

/** The OS file descriptor behind a connected unix socket, when libuv's handle shows it. */
export function socketFd(socket: Socket): number | null {
  const handle: unknown = Reflect.get(socket, '_handle');
  if (typeof handle !== 'object' || handle === null || !('fd' in handle)) return null;
  const fd = handle.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : null;
}

/**
 * Our end's inode, read at once: the fd number is only ours while the socket is open, and a
 * later read could find another socket that reused it.
 */
function socketInode(fd: number): number | null {
  let target: string;
  try {
    target = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
  const match = /^socket:\[(\d+)\]$/.exec(target);
  return match === null ? null : Number(match[1]);
}

function runSs(ss: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(ss, ['-xpnH'], { timeout: timeoutMs, maxBuffer: SS_MAX_OUTPUT, encoding: 'utf8' }, (error, stdout) => {
      if (error) reject(error);
      else resolve(stdout);
    });
  });
}

/** A process's effective uid/gid from the text of /proc/<pid>/status ("" when unreadable). */
function fromStatus(pid: number, comm: string, status: string): PeerProcess {
  // "Uid:\treal\teffective\tsaved\tfs"
  const field = (name: string): number | null => {
    const match = new RegExp(`^${name}:\\s+\\d+\\s+(\\d+)`, 'm').exec(status);
    return match === null ? null : Number(match[1]);
  };
  return { pid, uid: field('Uid'), gid: field('Gid'), comm };
}

async function credentialsOf(pid: number, comm: string): Promise<PeerProcess> {
  return fromStatus(pid, comm, await readFile(`/proc/${pid}/status`, 'utf8').catch(() => ''));
}

/** Linux's SOL_SOCKET and SO_PEERCRED (asm-generic/socket.h; the same on x86-64 and arm64). */
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

type GetSockOpt = (socket: Socket, level: number, name: number) => number;
let sockopt: GetSockOpt | null | undefined;

/** The addon's getsockopt, loaded once; null when it is missing or has no build for this host. */
function loadGetsockopt(): GetSockOpt | null {
  if (sockopt !== undefined) return sockopt;
  try {
    const mod: unknown = createRequire(import.meta.url)('sockopt');
    const fn: unknown = typeof mod === 'object' && mod !== null ? Reflect.get(mod, 'getsockopt') : undefined;
    sockopt = typeof fn === 'function' ? (fn as GetSockOpt) : null;
  } catch {
    sockopt = null;
  }
  return sockopt;
}

function readSmall(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The connecting process (SO_PEERCRED's pid) and its uid/gid/comm, read synchronously: call it in
 * the accept callback. null when SO_PEERCRED is unavailable here (no addon, not Linux, pid 0 for a
 * peer in another pid namespace): use lookupUnixPeer then. The uid/gid are the process's now (read
 * microseconds after connect); null when it has already exited.
 */
export function peerCredAtAccept(socket: Socket): PeerInfo | null {
  if (process.platform !== 'linux') return null;
  const get = loadGetsockopt();
  if (get === null || socketFd(socket) === null) return null;
  let pid: number;
  try {
    pid = get(socket, SOL_SOCKET, SO_PEERCRED);
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const comm = readSmall(`/proc/${pid}/comm`).trim();
  return { known: true, via: 'so_peercred', processes: [fromStatus(pid, comm, readSmall(`/proc/${pid}/status`))] };
}

/** Lookups run one at a time process-wide: a burst of refusals never forks a burst of `ss`. */
let queue: Promise<unknown> = Promise.resolve();

/**
 * The processes on the other end of `socket` (a connection the proxy accepted). Never throws:
 * anything that prevents an answer is `{known: false, why}`.
 */
export function lookupUnixPeer(socket: Socket, options: PeerLookupOptions = {}): Promise<PeerInfo> {
  if (process.platform !== 'linux')
    return Promise.resolve({ known: false, why: `peer lookup needs Linux /proc (platform ${process.platform})` });
  const fd = socket.destroyed ? null : socketFd(socket);
  if (fd === null) return Promise.resolve({ known: false, why: 'the connection is already closed' });
  const own = socketInode(fd);
  if (own === null) return Promise.resolve({ known: false, why: `cannot read /proc/self/fd/${fd}` });
  const run = async (): Promise<PeerInfo> => {
    // Queued behind other lookups: a client that has gone meanwhile costs no `ss` run, so a
    // connect-refuse-disconnect loop cannot grow the queue faster than it drains.
    if (socket.destroyed) return { known: false, why: 'the connection closed before the lookup ran' };
    let output: string;
    try {
      output = await runSs(options.ss ?? 'ss', options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    } catch (error) {
      return {
        known: false,
        why:
          errnoOf(error) === 'ENOENT'
            ? "iproute2's ss is not installed"
            : `ss failed: ${error instanceof Error ? error.message : String(error)}`,
      };
    }
    const sockets = parseSsUnix(output);
    const peerInode = sockets.get(own)?.peer;
    if (peerInode === undefined || peerInode === 0) return { known: false, why: 'the connection is no longer listed by ss' };
    const holders = sockets.get(peerInode)?.processes ?? [];
    if (holders.length === 0) {
      return { known: false, why: 'no visible process holds the peer socket (it exited, or belongs to another user)' };
    }
    return { known: true, via: 'ss', inode: peerInode, processes: await Promise.all(holders.map((h) => credentialsOf(h.pid, h.comm))) };
  };
  const result = queue.then(run, run);
  queue = result.catch(() => undefined);
  return result.catch((error: unknown) => ({
    known: false,
    why: `peer lookup failed: ${error instanceof Error ? error.message : String(error)}`,
  }));
}

/** Flat log fields for a PeerInfo: `peerPid`, `peerUid`, `peerGid`, `peerComm` (+ `peerOthers`). */
export function peerLogFields(peer: PeerInfo): Record<string, unknown> {
  if (!peer.known) return { peer: 'unknown', peerUnknownWhy: peer.why };
  const [first, ...others] = peer.processes;
  if (first === undefined) return { peer: 'unknown' };
  const fields: Record<string, unknown> = { peerPid: first.pid, peerUid: first.uid, peerGid: first.gid, peerComm: first.comm };
  if (others.length > 0) fields['peerOthers'] = others;
  return fields;
}
