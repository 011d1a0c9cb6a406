// A QMP client at the byte level for proxy tests: writes exactly the bytes a test gives it (split,
// concatenated, malformed), and collects what comes back, replies and events apart, in order.
// Owns: only test behaviour. Must not: be imported by src/. Unlike QmpClient it never assigns
// ids, never validates, and never hides a reply, so tests see the proxy's wire output as is.
import { createConnection, type Socket } from 'node:net';
import { QmpFramer } from '../../src/qmp/framing.js';

export type WireMessage = Record<string, unknown>;

function isRecord(value: unknown): value is WireMessage {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A member of a wire object, without trusting its shape. */
export function member(value: unknown, key: string): unknown {
  return isRecord(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

/** `error.desc` of a reply, if it has one. */
export function errorDesc(reply: WireMessage): unknown {
  return member(reply['error'], 'desc');
}

interface Waiter {
  readonly want: 'reply' | 'event';
  readonly resolve: (message: WireMessage) => void;
  readonly reject: (error: Error) => void;
}

export class WireClient {
  /** Everything received, in order (greeting, replies, events). */
  readonly all: WireMessage[] = [];
  readonly events: WireMessage[] = [];
  /** Greeting and replies not yet taken by next(). */
  private readonly replies: WireMessage[] = [];
  private eventCursor = 0;
  private readonly waiters: Waiter[] = [];
  private readonly framer = new QmpFramer({ maxBytes: 64 * 1024 * 1024 });
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {}); // resets by the proxy are part of the tests
    socket.on('data', (chunk: Buffer) => {
      for (const item of this.framer.push(chunk)) {
        if (item.kind !== 'value') throw new Error(`proxy sent bad framing: ${item.message}`);
        const value: unknown = JSON.parse(item.text);
        if (!isRecord(value)) throw new Error(`proxy sent a non-object: ${item.text}`);
        this.all.push(value);
        if (Object.hasOwn(value, 'event')) this.events.push(value);
        else this.replies.push(value);
      }
      this.wake();
    });
    socket.once('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  static connect(path: string): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => resolve(new WireClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Connect, read the greeting, negotiate (with oob if asked); returns the greeting. */
  static async negotiated(path: string, oob = false): Promise<{ client: WireClient; greeting: WireMessage }> {
    const client = await WireClient.connect(path);
    const greeting = await client.next();
    const reply = await client.command(
      oob ? { execute: 'qmp_capabilities', arguments: { enable: ['oob'] } } : { execute: 'qmp_capabilities' },
    );
    if (!Object.hasOwn(reply, 'return')) throw new Error(`negotiation failed: ${JSON.stringify(reply)}`);
    return { client, greeting };
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** Write raw bytes as given. */
  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Write `JSON.stringify(message)` and a newline. */
  send(message: unknown): void {
    this.socket.write(`${JSON.stringify(message)}\n`);
  }

  /** Send and wait for the next reply (only right when nothing else is outstanding). */
  async command(message: unknown, timeoutMs?: number): Promise<WireMessage> {
    this.send(message);
    return this.next(timeoutMs);
  }

  /** The next greeting or reply; rejects when the connection ends first or after `timeoutMs`. */
  next(timeoutMs = 10_000): Promise<WireMessage> {
    return this.take('reply', timeoutMs);
  }

  /** The next event not yet taken. */
  nextEvent(timeoutMs = 10_000): Promise<WireMessage> {
    return this.take('event', timeoutMs);
  }

  /** `count` replies, in arrival order. */
  async nextN(count: number, timeoutMs = 10_000): Promise<WireMessage[]> {
    const out: WireMessage[] = [];
    for (let i = 0; i < count; i++) out.push(await this.next(timeoutMs));
    return out;
  }

  /** Stop reading (the kernel buffer fills, then the proxy's). */
  stopReading(): void {
    this.socket.pause();
  }

  close(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private available(want: 'reply' | 'event'): WireMessage | undefined {
    if (want === 'reply') return this.replies.shift();
    const event = this.events[this.eventCursor];
    if (event !== undefined) this.eventCursor += 1;
    return event;
  }

  private take(want: 'reply' | 'event', timeoutMs: number): Promise<WireMessage> {
    const ready = this.available(want);
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.ended) return Promise.reject(new Error(`connection closed; no further ${want}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no ${want} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        want,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.push(waiter);
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) {
      const message = this.available(waiter.want);
      if (message !== undefined) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(message);
      } else if (this.ended) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.reject(new Error(`connection closed; no further ${waiter.want}`));
      }
    }
  }
}
