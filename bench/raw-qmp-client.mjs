// The benchmarks' baseline QMP client: what a careful one-off script would write (newline-framed
// JSON, ids matched in a Map) and nothing more: no validation, no timeouts, no logging.
// Owns: only benchmark comparisons. Must not: be used by src/ or tests.
import { createConnection } from 'node:net';

export class RawQmpClient {
  /** @param idPrefix ids are `${idPrefix}${n}` strings; undefined: plain numbers. */
  static async connect(path, idPrefix) {
    const socket = createConnection({ path });
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const raw = new RawQmpClient(socket, idPrefix);
    await raw.next(); // greeting
    await raw.call('qmp_capabilities');
    return raw;
  }

  constructor(socket, idPrefix) {
    this.socket = socket;
    this.idPrefix = idPrefix;
    this.buffer = '';
    this.waiting = new Map();
    this.queue = [];
    this.counter = 0;
    socket.setEncoding('utf8');
    socket.on('data', (text) => {
      this.buffer += text;
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (line.trim() === '') continue;
        const msg = JSON.parse(line);
        const resolve = 'id' in msg ? this.waiting.get(msg.id) : undefined;
        if (resolve) {
          this.waiting.delete(msg.id);
          resolve(msg);
        } else if (!('event' in msg)) {
          this.queue.shift()?.(msg);
        }
      }
    });
  }

  next() {
    return new Promise((resolve) => this.queue.push(resolve));
  }

  call(execute) {
    this.counter += 1;
    const id = this.idPrefix === undefined ? this.counter : this.idPrefix + this.counter;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (msg) => ('error' in msg ? reject(new Error(msg.error.desc)) : resolve(msg.return)));
      this.socket.write(`${JSON.stringify({ execute, id })}\n`);
    });
  }

  close() {
    this.socket.destroy();
  }
}
