// A QMP proxy in front of a FakeQmpServer for unit tests: fake (records what reaches "QEMU") ←
// a real QmpClient (the supervisor's upstream) ← startQmpProxy on a unix socket in a fresh
// directory. Owns: only test wiring. Must not: be imported by src/.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createLogger, type Logger } from '../../src/log.js';
import { QmpClient } from '../../src/qmp/client.js';
import type { DecideContext } from '../../src/proxy/decide.js';
import type { PeerInfo } from '../../src/proxy/peer-cred.js';
import { startQmpProxy, type ProxyLimits, type QmpProxy } from '../../src/proxy/proxy-server.js';
import { FakeQmpServer, type FakeHandler, type ReceivedCommand } from './fake-qmp-server.js';

/** The window this project guards most: SEV guest held for attestation (QEMU blocks nothing). */
export const HELD: DecideContext = { vmState: 'held', held: true, sev: true, allow: [], deny: [] };

const NO_PEER = (): Promise<PeerInfo> => Promise.resolve({ known: false, why: 'not looked up in this test' });

export interface Rig {
  readonly fake: FakeQmpServer;
  readonly upstream: QmpClient;
  readonly proxy: QmpProxy;
  /** The proxy socket. */
  readonly path: string;
  readonly dir: string;
  /** Parsed log lines of the proxy's logger (level debug). */
  readonly logs: Record<string, unknown>[];
  /** The same lines as written (JSON.parse would hide a key written twice). */
  readonly rawLogs: string[];
  /** Commands that reached the fake from the proxy (the upstream's own negotiation left out). */
  forwarded(): ReceivedCommand[];
}

export interface RigOptions {
  /** Whether the upstream negotiates oob. @default true */
  readonly oob?: boolean;
  readonly capabilities?: readonly string[];
  /** Fake handlers on top of query-status, query-version, quit, query-yank and qom-list. */
  readonly handlers?: Record<string, FakeHandler>;
  readonly limits?: Partial<ProxyLimits>;
  /** @default HELD */
  readonly context?: DecideContext;
  /** Use the real peer lookup (ss + /proc) instead of a stub. */
  readonly realPeerLookup?: boolean;
  readonly gid?: number;
  /** The upstream QmpClient's reply timeout. */
  readonly commandTimeoutMs?: number;
  /** Socket path relative to the rig's directory. @default 'qmp.sock' */
  readonly socket?: string;
}

export function logSink(level: 'debug' | 'info' = 'debug'): { logger: Logger; lines: Record<string, unknown>[]; raw: string[] } {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const logger = createLogger(
    { level },
    {
      write: (s: string) => {
        raw.push(s);
        lines.push(JSON.parse(s));
      },
    },
  );
  return { logger, lines, raw };
}

/** Start the rig; `register` receives the cleanups (run them in reverse order). */
export async function startProxyRig(options: RigOptions, register: (cleanup: () => Promise<unknown>) => void): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'sp-'));
  register(() => rm(dir, { recursive: true, force: true }));
  const fake = await FakeQmpServer.start({
    ...(options.capabilities ? { capabilities: options.capabilities } : {}),
    handlers: {
      'query-yank': () => ({ return: [] }),
      'qom-list': () => ({ return: [{ name: 'type', type: 'string' }] }),
      ...options.handlers,
    },
  });
  register(() => fake.close());
  const upstream = await QmpClient.connect({
    path: fake.path,
    oob: options.oob ?? true,
    ...(options.commandTimeoutMs === undefined ? {} : { commandTimeoutMs: options.commandTimeoutMs }),
  });
  register(() => upstream.close());
  const { logger, lines, raw } = logSink();
  const path = join(dir, options.socket ?? 'qmp.sock');
  await mkdir(dirname(path), { recursive: true });
  const proxy = await startQmpProxy({
    socketPath: path,
    vm: 'vm1',
    upstream,
    context: () => options.context ?? HELD,
    logger,
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.realPeerLookup === true ? {} : { lookupPeer: NO_PEER, peerAtAccept: () => null }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  });
  register(() => proxy.close());
  return { fake, upstream, proxy, path, dir, logs: lines, rawLogs: raw, forwarded: () => fake.received.slice(1) };
}
