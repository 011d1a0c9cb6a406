// The QMP monitor socket the simulated platform serves at the caller's path, in QEMU's place:
// a server for one client at a time (later ones wait, as in a QEMU chardev's backlog), each client
// bridged to a fresh session on the real QEMU's private monitor, so each gets QEMU's own greeting.
// Owns: sockets, framing, the in-band queue (QEMU answers one in-band command at a time), OOB
// routing by id, and reply delays (slow-qmp). Must not: decide about commands (qmp-interceptor.ts).
import { createServer, type Server, type Socket } from 'node:net';
import { unlink } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { QmpFramer } from '../../qmp/framing.js';
import { formatQemuJson, parseQemuJson } from './qmp-json.js';
import { QmpInterceptor, type InterceptorHooks, type Plan, type QmpObject, type SharedState } from './qmp-interceptor.js';
import type { SevGuestSim } from './sev-state.js';
import { connectQemuSocket } from '../../qmp/socket-connect.js';
import { isRecord } from '../../util/is-record.js';

/** How long a client waits for QEMU's private monitor to appear: QEMU creates it before machine init. */
const UPSTREAM_CONNECT_TIMEOUT_MS = 30_000;

export interface MonitorServerOptions {
  /** The path the caller gave QEMU (`-chardev socket,path=…,server=on`). */
  readonly publicPath: string;
  /** The real QEMU's monitor socket in the sim's private directory. */
  readonly upstreamPath: string;
  readonly guest: SevGuestSim;
  readonly hooks: InterceptorHooks;
  /** Delay before each reply is written (the slow-qmp fault); 0 for none. */
  readonly replyDelayMs: number;
  readonly isQemuAlive: () => boolean;
  /** Called after a RESUME event was passed on (the guest started running). */
  readonly onResume: () => void;
}

/** One client bridged to one QEMU monitor session. */
class Bridge {
  private upstream: Socket | null = null;
  private readonly interceptor: QmpInterceptor;
  private readonly queue: Plan[] = [];
  private inFlight: Extract<Plan, { kind: 'forward' }> | null = null;
  private busy = false;
  private readonly pendingOob = new Set<string>();
  /** Replies are written in order, each after the configured delay. */
  private writeChain: Promise<void> = Promise.resolve();
  private closed = false;
  private finished = false;

  constructor(
    private readonly client: Socket,
    private readonly o: MonitorServerOptions,
    shared: SharedState,
    private readonly done: () => void,
  ) {
    this.interceptor = new QmpInterceptor(o.guest, shared, o.hooks);
  }

  async start(): Promise<void> {
    const fromClient = new QmpFramer();
    this.client.on('data', (chunk: Buffer) => {
      for (const item of fromClient.push(chunk)) {
        if (item.kind === 'error') {
          this.queue.push({ kind: 'local', reply: { error: { class: 'GenericError', desc: `JSON parse error, ${item.message}` } } });
          continue;
        }
        const plan = this.interceptor.plan(item.text);
        if (plan.kind === 'oob' && this.upstream !== null) {
          this.pendingOob.add(plan.idKey);
          this.upstream.write(`${plan.text}\n`);
        } else this.queue.push(plan);
      }
      this.pump();
    });
    this.client.on('close', () => this.close());
    this.client.on('error', () => this.close());
    const upstream = await this.connectUpstream();
    if (upstream === null) {
      this.close();
      return;
    }
    this.upstream = upstream;
    const fromQemu = new QmpFramer();
    upstream.on('data', (chunk: Buffer) => {
      for (const item of fromQemu.push(chunk)) if (item.kind === 'value') this.fromQemu(item.text);
    });
    upstream.on('close', () => {
      // QEMU went away: whatever it said last still reaches the client, then the client is closed.
      void this.writeChain.then(() => this.client.end());
      this.closed = true;
    });
    upstream.on('error', () => undefined);
    this.pump();
  }

  private async connectUpstream(): Promise<Socket | null> {
    try {
      const socket = await connectQemuSocket(
        { path: this.o.upstreamPath, isAlive: () => !this.closed && this.o.isQemuAlive() },
        UPSTREAM_CONNECT_TIMEOUT_MS,
      );
      if (!this.closed) return socket;
      socket.destroy();
    } catch {
      // QEMU died, the relay closed, or the socket never appeared: the caller treats all alike.
    }
    return null;
  }

  private fromQemu(text: string): void {
    const parsed = parseQemuJson(text);
    const msg = parsed.ok && isRecord(parsed.value) ? parsed.value : null;
    if (msg !== null && Object.hasOwn(msg, 'event')) {
      this.client.write(`${text}\r\n`);
      if (msg['event'] === 'RESUME') this.o.onResume();
      return;
    }
    if (msg === null || Object.hasOwn(msg, 'QMP')) {
      this.deliver(text, false);
      return;
    }
    const idKey = Object.hasOwn(msg, 'id') ? formatQemuJson(msg['id']) : null;
    if (idKey !== null && this.pendingOob.delete(idKey)) {
      this.deliver(text, true);
      return;
    }
    const request = this.inFlight;
    this.inFlight = null;
    let out = text;
    if (request?.transform) {
      const replaced = request.transform(msg as QmpObject);
      if (replaced !== null) out = formatQemuJson(replaced);
    }
    this.deliver(out, true, () => {
      this.busy = false;
      this.pump();
    });
  }

  /** Write `text` to the client after the reply delay (greetings and events are not delayed). */
  private deliver(text: string, isReply: boolean, then?: () => void): void {
    this.writeChain = this.writeChain.then(async () => {
      if (isReply && this.o.replyDelayMs > 0) await delay(this.o.replyDelayMs);
      if (!this.client.destroyed) this.client.write(`${text}\r\n`);
      then?.();
    });
  }

  private pump(): void {
    if (this.busy || this.upstream === null || this.closed) return;
    const next = this.queue.shift();
    if (next === undefined) return;
    this.busy = true;
    if (next.kind === 'local') {
      this.deliver(formatQemuJson(next.reply), true, () => {
        this.busy = false;
        this.pump();
      });
    } else if (next.kind === 'oob') {
      // An OOB request that arrived before the upstream was connected.
      this.pendingOob.add(next.idKey);
      this.upstream.write(`${next.text}\n`);
      this.busy = false;
      this.pump();
    } else {
      this.inFlight = next;
      this.upstream.write(`${next.text}\n`);
    }
  }

  close(): void {
    this.closed = true;
    this.upstream?.destroy();
    this.client.destroy();
    if (this.finished) return;
    this.finished = true;
    this.done();
  }
}

export class MonitorServer {
  private server: Server | null = null;
  private readonly waiting: Socket[] = [];
  private active: Bridge | null = null;
  private readonly shared: SharedState = { blockedJobs: new Set() };

  constructor(private readonly o: MonitorServerOptions) {}

  /** Listen at the public path, replacing a stale socket as QEMU does. */
  async listen(): Promise<void> {
    await unlink(this.o.publicPath).catch(() => undefined);
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.publicPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  private accept(socket: Socket): void {
    // Until its turn a waiting client is not read, like a connection still in QEMU's backlog.
    socket.pause();
    socket.on('error', () => undefined);
    socket.once('close', () => {
      const i = this.waiting.indexOf(socket);
      if (i >= 0) this.waiting.splice(i, 1);
    });
    this.waiting.push(socket);
    this.next();
  }

  private next(): void {
    if (this.active !== null) return;
    const socket = this.waiting.shift();
    if (socket === undefined) return;
    const bridge = new Bridge(socket, this.o, this.shared, () => {
      if (this.active === bridge) this.active = null;
      this.next();
    });
    this.active = bridge;
    void bridge.start();
    socket.resume();
  }

  /** Stop listening and drop every client (Node removes the socket file). Idempotent. */
  async close(): Promise<void> {
    for (const s of this.waiting.splice(0)) s.destroy();
    this.active?.close();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
