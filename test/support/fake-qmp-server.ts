// A scripted QMP server on a real unix socket, standing in for QEMU's monitor in unit tests
// (qemu.qmp's null protocol, libvirt's qemumonitortestutils): it greets like QEMU 7.2, enforces
// capabilities negotiation, answers commands from handlers, and records what it received.
// Owns: only test behaviour. Must not: be imported by src/. An unexpected command is answered
// with CommandNotFound (as QEMU would) AND recorded, so a test can fail on it (undici's
// MockNotMatchedError): call `assertNoUnexpected()`.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpFramer } from '../../src/qmp/framing.js';

/** What a handler asks the fake to do, in order. */
export type FakeAction =
  /** Reply with the command's id. */
  | { readonly return: unknown }
  | { readonly error: { readonly class: string; readonly desc: string } }
  /** Reply with these exact bytes (no id added). */
  | { readonly raw: string | Buffer }
  /** Bytes written in separate writes, each after the client's loop had a turn to read. */
  | { readonly chunks: readonly (string | Buffer)[] }
  | { readonly event: string; readonly data?: Record<string, unknown> }
  /** Half-close (EOF) after what was written; `destroy`: reset the connection. */
  | { readonly close: true }
  | { readonly destroy: true };

export interface ReceivedCommand {
  readonly command: string;
  readonly oob: boolean;
  readonly arguments: Record<string, unknown> | undefined;
  readonly id: unknown;
  readonly raw: string;
  readonly connection: FakeConnection;
}

/** Return actions, or undefined to never answer (a wedged monitor). */
export type FakeHandler = (cmd: ReceivedCommand) => FakeAction | readonly FakeAction[] | undefined;

export interface FakeQmpServerOptions {
  /** Socket path; default `<fresh tmpdir>/qmp.sock` (removed by close()). */
  readonly path?: string;
  /** The greeting: false never greets; a string is sent verbatim. @default QEMU 7.2's, with `capabilities`. */
  readonly greeting?: false | string | Record<string, unknown>;
  /** @default ['oob'] */
  readonly capabilities?: readonly string[];
  /** Handlers by command name, over the defaults (qmp_capabilities, query-status, query-version, quit). */
  readonly handlers?: Readonly<Record<string, FakeHandler>>;
}

/** QEMU 7.2's version as it greets on Debian 12 (qemu-sev-facts §9). */
export const QEMU_72_VERSION = { qemu: { micro: 22, minor: 2, major: 7 }, package: 'Debian 1:7.2+dfsg-7+deb12u18+b3' };

let timestampSeconds = 1_700_000_000;

/** A QMP event as QEMU writes it (timestamps increase so tests can order them). */
export function eventMessage(event: string, data?: Record<string, unknown>): Record<string, unknown> {
  timestampSeconds += 1;
  const ts = { seconds: timestampSeconds, microseconds: 123 };
  return data === undefined ? { event, timestamp: ts } : { event, data, timestamp: ts };
}

/** One client connection to the fake. */
export class FakeConnection {
  readonly received: ReceivedCommand[] = [];
  negotiated = false;
  oob = false;
  readonly closed: Promise<void>;
  private readonly framer = new QmpFramer();

  constructor(
    readonly socket: Socket,
    private readonly server: FakeQmpServer,
  ) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {}); // resets by the client are part of the tests
    socket.on('data', (chunk: Buffer) => {
      for (const item of this.framer.push(chunk)) {
        if (item.kind === 'error') {
          this.write({ error: { class: 'GenericError', desc: `JSON parse error, ${item.message}` } });
          continue;
        }
        void this.server.dispatch(this, item.text);
      }
    });
  }

  /** Write a message (object → JSON + CRLF, as QEMU does) or raw bytes. */
  write(message: string | Buffer | Record<string, unknown>): void {
    if (this.socket.destroyed) return;
    this.socket.write(typeof message === 'string' || Buffer.isBuffer(message) ? message : `${JSON.stringify(message)}\r\n`);
  }

  /** Write each chunk separately, letting the event loop run (and the client read) in between. */
  async writeChunks(chunks: readonly (string | Buffer)[]): Promise<void> {
    for (const chunk of chunks) {
      this.write(chunk);
      await new Promise<void>((resolve) => setImmediate(resolve));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  sendEvent(event: string, data?: Record<string, unknown>): void {
    this.write(eventMessage(event, data));
  }

  /** EOF after pending writes. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  async perform(actions: readonly FakeAction[], cmd: ReceivedCommand | undefined): Promise<void> {
    for (const action of actions) {
      if ('return' in action) this.write(withId({ return: action.return }, cmd));
      else if ('error' in action) this.write(withId({ error: action.error }, cmd));
      else if ('raw' in action) this.write(action.raw);
      else if ('chunks' in action) await this.writeChunks(action.chunks);
      else if ('event' in action) this.sendEvent(action.event, action.data);
      else if ('close' in action) this.end();
      else this.destroy();
    }
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function withId(reply: Record<string, unknown>, cmd: ReceivedCommand | undefined): Record<string, unknown> {
  return cmd?.id === undefined ? reply : { ...reply, id: cmd.id };
}

const DEFAULT_HANDLERS: Readonly<Record<string, FakeHandler>> = {
  'query-status': () => ({ return: { status: 'prelaunch', singlestep: false, running: false } }),
  'query-version': () => ({ return: QEMU_72_VERSION }),
  quit: () => [{ return: {} }, { event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } }, { close: true }],
};

export class FakeQmpServer {
  readonly connections: FakeConnection[] = [];
  /** Commands no handler knew, in arrival order. */
  readonly unexpected: ReceivedCommand[] = [];
  private readonly handlers = new Map<string, FakeHandler>();
  private server: Server | undefined;
  private dir: string | undefined;
  private connectionWaiters: ((c: FakeConnection) => void)[] = [];
  private commandWaiters: { name: string; resolve: (c: ReceivedCommand) => void }[] = [];
  private pathValue: string | undefined;

  constructor(private readonly options: FakeQmpServerOptions = {}) {
    for (const [name, handler] of Object.entries({ ...DEFAULT_HANDLERS, ...options.handlers })) this.handlers.set(name, handler);
  }

  /** A fresh, listening server. */
  static async start(options: FakeQmpServerOptions = {}): Promise<FakeQmpServer> {
    const server = new FakeQmpServer(options);
    await server.listen();
    return server;
  }

  get path(): string {
    if (this.pathValue === undefined) throw new Error('FakeQmpServer: path is known after listen() or with options.path');
    return this.pathValue;
  }

  /** A path for the socket without listening yet (to test a socket that appears late). */
  async reservePath(): Promise<string> {
    if (this.pathValue === undefined) {
      if (this.options.path !== undefined) {
        this.pathValue = this.options.path;
      } else {
        this.dir = await mkdtemp(join(tmpdir(), 'sevsup-fake-qmp-'));
        this.pathValue = join(this.dir, 'qmp.sock');
      }
    }
    return this.pathValue;
  }

  async listen(): Promise<void> {
    const path = await this.reservePath();
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  /** Replace or add a handler. */
  handle(name: string, handler: FakeHandler): void {
    this.handlers.set(name, handler);
  }

  /** The next connection (or the first one, if it already came). */
  connection(index = 0): Promise<FakeConnection> {
    const existing = this.connections[index];
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve) => this.connectionWaiters.push((c) => (this.connections.indexOf(c) === index ? resolve(c) : undefined)));
  }

  /** Resolves when a command of that name arrives (or already did, unanswered or not). */
  command(name: string): Promise<ReceivedCommand> {
    for (const conn of this.connections) {
      const found = conn.received.find((c) => c.command === name);
      if (found) return Promise.resolve(found);
    }
    return new Promise((resolve) => this.commandWaiters.push({ name, resolve }));
  }

  /** All commands received, over all connections. */
  get received(): ReceivedCommand[] {
    return this.connections.flatMap((c) => c.received);
  }

  assertNoUnexpected(): void {
    if (this.unexpected.length > 0) {
      throw new Error(`FakeQmpServer: unexpected commands: ${this.unexpected.map((c) => c.command).join(', ')}`);
    }
  }

  async close(): Promise<void> {
    for (const conn of this.connections) conn.destroy();
    await Promise.all(this.connections.map((c) => c.closed));
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (this.dir !== undefined) await rm(this.dir, { recursive: true, force: true });
  }

  private accept(socket: Socket): void {
    const conn = new FakeConnection(socket, this);
    this.connections.push(conn);
    const greeting = this.options.greeting;
    if (greeting === undefined) {
      conn.write({ QMP: { version: QEMU_72_VERSION, capabilities: [...(this.options.capabilities ?? ['oob'])] } });
    } else if (greeting !== false) {
      conn.write(typeof greeting === 'string' ? greeting : greeting);
    }
    for (const waiter of this.connectionWaiters.splice(0)) waiter(conn);
  }

  /** @internal Called by a connection for each framed value. */
  async dispatch(conn: FakeConnection, text: string): Promise<void> {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      conn.write({ error: { class: 'GenericError', desc: 'JSON parse error' } });
      return;
    }
    if (!isRecord(msg)) {
      conn.write({ error: { class: 'GenericError', desc: 'QMP input must be a JSON object' } });
      return;
    }
    const record = msg;
    const oob = typeof record['exec-oob'] === 'string';
    const command = oob ? record['exec-oob'] : record['execute'];
    const args = record['arguments'];
    const cmd: ReceivedCommand = {
      command: typeof command === 'string' ? command : '',
      oob,
      arguments: isRecord(args) ? args : undefined,
      id: record['id'],
      raw: text,
      connection: conn,
    };
    conn.received.push(cmd);
    const matched = this.commandWaiters.filter((w) => w.name === cmd.command);
    this.commandWaiters = this.commandWaiters.filter((w) => w.name !== cmd.command);
    for (const w of matched) w.resolve(cmd);

    // QEMU's negotiation mode (qmp-spec): only qmp_capabilities until it succeeded.
    const custom = this.handlers.get(cmd.command);
    if (cmd.command === 'qmp_capabilities' && custom === undefined) {
      if (conn.negotiated) {
        await conn.perform(
          [{ error: { class: 'CommandNotFound', desc: 'Capabilities negotiation is already complete, command ignored' } }],
          cmd,
        );
        return;
      }
      conn.negotiated = true;
      const enable = cmd.arguments?.['enable'];
      conn.oob = Array.isArray(enable) && enable.includes('oob');
      await conn.perform([{ return: {} }], cmd);
      return;
    }
    if (!conn.negotiated && cmd.command !== 'qmp_capabilities') {
      await conn.perform(
        [{ error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" } }],
        cmd,
      );
      return;
    }
    if (custom === undefined) {
      this.unexpected.push(cmd);
      await conn.perform([{ error: { class: 'CommandNotFound', desc: `The command ${cmd.command} has not been found` } }], cmd);
      return;
    }
    const result = custom(cmd);
    if (result === undefined) return;
    await conn.perform(Array.isArray(result) ? result : [result as FakeAction], cmd);
  }
}
