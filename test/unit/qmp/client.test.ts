import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isSupervisorError, type SupervisorError } from '../../../src/errors.js';
import { createLogger } from '../../../src/log.js';
import { QmpClient, type QmpConnectOptions, type Runstate } from '../../../src/qmp/client.js';
import { eventMessage, FakeQmpServer, QEMU_72_VERSION } from '../../support/fake-qmp-server.js';

/** The runstate sequence of a session that connects and then ends (qemu.qmp GOOD_CONNECTION_STATES). */
const GOOD_CONNECTION_STATES: readonly Runstate[] = ['connecting', 'running', 'disconnecting', 'idle'];
const FAILED_CONNECT_STATES: readonly Runstate[] = ['connecting', 'idle'];

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startServer(options: ConstructorParameters<typeof FakeQmpServer>[0] = {}): Promise<FakeQmpServer> {
  const server = await FakeQmpServer.start(options);
  cleanups.push(() => server.close());
  return server;
}

interface Connected {
  client: QmpClient;
  states: Runstate[];
}

async function connect(server: FakeQmpServer, options: Partial<QmpConnectOptions> = {}): Promise<Connected> {
  const states: Runstate[] = [];
  const client = await QmpClient.connect({ path: server.path, onStateChange: (s) => states.push(s), ...options });
  cleanups.push(() => client.close());
  return { client, states };
}

/** A pino logger writing parsed lines into an array. */
function logSink(level: 'trace' | 'debug' | 'warn' = 'trace'): {
  logger: ReturnType<typeof createLogger>;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

async function rejection(promise: Promise<unknown>): Promise<SupervisorError> {
  try {
    await promise;
  } catch (error) {
    if (isSupervisorError(error)) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('QmpClient: connect and negotiate', () => {
  it('reads the greeting, negotiates, runs, and goes through the exact runstate sequence', async () => {
    const server = await startServer();
    const { client, states } = await connect(server);
    expect(client.state).toBe('running');
    expect(client.greeting).toEqual({ QMP: { version: QEMU_72_VERSION, capabilities: ['oob'] } });
    expect(client.oob).toBe(false);
    expect(server.received.map((c) => c.raw)).toEqual(['{"execute":"qmp_capabilities","id":"s1"}']);
    await client.close();
    expect(states).toEqual(GOOD_CONNECTION_STATES);
    expect(await client.closed).toBeUndefined();
  });

  it('enables oob when asked for and offered', async () => {
    const server = await startServer();
    const { client } = await connect(server, { oob: true });
    expect(client.oob).toBe(true);
    expect(server.received[0]?.arguments).toEqual({ enable: ['oob'] });
  });

  it('does not enable oob when QEMU does not offer it', async () => {
    const server = await startServer({ capabilities: [] });
    const { client } = await connect(server, { oob: true });
    expect(client.oob).toBe(false);
    expect(server.received[0]?.arguments).toBeUndefined();
  });

  it('a negotiation error is SUP_ERR_QMP_NEGOTIATION and leaves the client idle', async () => {
    const server = await startServer({
      handlers: { qmp_capabilities: () => ({ error: { class: 'GenericError', desc: 'nope' } }) },
    });
    const states: Runstate[] = [];
    const err = await rejection(QmpClient.connect({ path: server.path, onStateChange: (s) => states.push(s) }));
    expect(err.code).toBe('SUP_ERR_QMP_NEGOTIATION');
    expect(err.message).toBe('qmp_capabilities failed (GenericError): nope');
    expect(err.details).toEqual({ class: 'GenericError', desc: 'nope' });
    expect(states).toEqual(FAILED_CONNECT_STATES);
  });

  it('something other than a greeting first is SUP_ERR_QMP_GREETING', async () => {
    const server = await startServer({ greeting: '{"return": {}}\r\n' });
    const err = await rejection(QmpClient.connect({ path: server.path }));
    expect(err.code).toBe('SUP_ERR_QMP_GREETING');
    expect(err.message).toBe(`expected the QMP greeting from ${server.path}, got a return message`);
  });

  it('garbage instead of a greeting is SUP_ERR_QMP_GREETING caused by SUP_ERR_QMP_PROTOCOL', async () => {
    const server = await startServer({ greeting: 'garbage\n' });
    const err = await rejection(QmpClient.connect({ path: server.path }));
    expect(err.code).toBe('SUP_ERR_QMP_GREETING');
    expect(err.message).toBe(`no valid QMP greeting on ${server.path}: bad QMP data from ${server.path}: invalid token 'garbage'`);
    expect(isSupervisorError(err.cause) && err.cause.code).toBe('SUP_ERR_QMP_PROTOCOL');
  });

  it('a malformed greeting is SUP_ERR_QMP_GREETING naming what is wrong', async () => {
    const server = await startServer({ greeting: { QMP: { version: { qemu: { major: 7 } }, capabilities: [] } } });
    const err = await rejection(QmpClient.connect({ path: server.path }));
    expect(err.code).toBe('SUP_ERR_QMP_GREETING');
    expect(err.message).toBe("QMP greeting is malformed: 'version.qemu' lacks integer major, minor, micro");
  });

  it('no greeting within the deadline is SUP_ERR_QMP_GREETING', async () => {
    const server = await startServer({ greeting: false });
    const states: Runstate[] = [];
    const err = await rejection(QmpClient.connect({ path: server.path, connectTimeoutMs: 100, onStateChange: (s) => states.push(s) }));
    expect(err.code).toBe('SUP_ERR_QMP_GREETING');
    expect(err.message).toBe(`no QMP greeting from ${server.path} within 100 ms`);
    expect(states).toEqual(FAILED_CONNECT_STATES);
    // The client hung up on the fake.
    await (await server.connection()).closed;
  });

  it('EOF before the greeting is SUP_ERR_QMP_GREETING with the EOF as cause', async () => {
    const server = await startServer({ greeting: false });
    const pending = rejection(QmpClient.connect({ path: server.path }));
    (await server.connection()).end();
    const err = await pending;
    expect(err.code).toBe('SUP_ERR_QMP_GREETING');
    expect(err.message).toBe(`no valid QMP greeting on ${server.path}: QEMU closed the QMP connection ${server.path}`);
  });

  it('waits for a socket that appears late (ENOENT retried with backoff)', async () => {
    const server = new FakeQmpServer();
    cleanups.push(() => server.close());
    const path = await server.reservePath();
    const states: Runstate[] = [];
    const connecting = QmpClient.connect({ path, onStateChange: (s) => states.push(s) });
    setTimeout(() => void server.listen(), 30);
    const client = await connecting;
    cleanups.push(() => client.close());
    expect(states).toEqual(['connecting', 'running']);
  });

  it('gives up at once with SUP_ERR_QMP_CONNECT when the QEMU process exits first', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sevsup-qmp-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const child = spawn(process.execPath, ['-e', 'setTimeout(()=>{},300)'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    cleanups.push(() => exited);
    const states: Runstate[] = [];
    // The 60 s deadline is beyond the test's timeout: this only passes if the client gives up when
    // the process exits, and the message below (not the deadline's) says that is why it gave up.
    const err = await rejection(
      QmpClient.connect({
        path: join(dir, 'never.sock'),
        connectTimeoutMs: 60_000,
        isAlive: () => child.exitCode === null && child.signalCode === null,
        onStateChange: (s) => states.push(s),
      }),
    );
    expect(err.code).toBe('SUP_ERR_QMP_CONNECT');
    expect(err.message).toBe(`QEMU exited before its QMP socket ${join(dir, 'never.sock')} accepted a connection`);
    expect(err.details).toEqual({ path: join(dir, 'never.sock') });
    expect(err.cause).toMatchObject({ code: 'ENOENT' });
    expect(states).toEqual(FAILED_CONNECT_STATES);
  });

  it('a socket that accepts but never greets while the QEMU process exits: SUP_ERR_QMP_CONNECT, not the deadline', async () => {
    const server = await startServer({ greeting: false });
    const child = spawn(process.execPath, ['-e', 'setTimeout(()=>{},300)'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    cleanups.push(() => exited);
    const states: Runstate[] = [];
    const err = await rejection(
      QmpClient.connect({
        path: server.path,
        connectTimeoutMs: 60_000,
        isAlive: () => child.exitCode === null && child.signalCode === null,
        onStateChange: (s) => states.push(s),
      }),
    );
    expect(err.code).toBe('SUP_ERR_QMP_CONNECT');
    expect(err.message).toBe(`QEMU exited before completing the QMP handshake on ${server.path}`);
    expect(err.details).toEqual({ path: server.path });
    expect(states).toEqual(FAILED_CONNECT_STATES);
    await (await server.connection()).closed;
  });

  it('EOF during the handshake of a QEMU that is gone is SUP_ERR_QMP_CONNECT', async () => {
    const server = await startServer({ greeting: false });
    let alive = true;
    const pending = rejection(QmpClient.connect({ path: server.path, isAlive: () => alive }));
    const conn = await server.connection();
    alive = false;
    conn.end();
    const err = await pending;
    expect(err.code).toBe('SUP_ERR_QMP_CONNECT');
    // Whichever is seen first, the liveness poll or the EOF, the answer is the same.
    expect(err.message).toBe(`QEMU exited before completing the QMP handshake on ${server.path}`);
  });

  it('an `exited` promise stops the retrying the moment it settles', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sevsup-qmp-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    let exit!: () => void;
    const exited = new Promise<void>((resolve) => (exit = resolve));
    const pending = rejection(QmpClient.connect({ path: join(dir, 'never.sock'), connectTimeoutMs: 60_000, exited }));
    setTimeout(exit, 20);
    const err = await pending;
    expect(err.code).toBe('SUP_ERR_QMP_CONNECT');
    expect(err.message).toBe(`QEMU exited before its QMP socket ${join(dir, 'never.sock')} accepted a connection`);
  });

  it('a socket that never appears times out with SUP_ERR_QMP_CONNECT', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sevsup-qmp-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'never.sock');
    const err = await rejection(QmpClient.connect({ path, connectTimeoutMs: 80 }));
    expect(err.code).toBe('SUP_ERR_QMP_CONNECT');
    expect(err.message).toBe(`QMP socket ${path} not accepting connections after 80 ms (ENOENT)`);
    expect(err.details).toEqual({ path, timeoutMs: 80, errno: 'ENOENT' });
  });

  it('a non-retryable error fails at once (ENOTDIR)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sevsup-qmp-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'file'), '');
    const path = join(dir, 'file', 'qmp.sock');
    const err = await rejection(QmpClient.connect({ path, connectTimeoutMs: 60_000 }));
    expect(err.code).toBe('SUP_ERR_QMP_CONNECT');
    expect(err.message).toBe(`cannot connect to QMP socket ${path}: connect ENOTDIR ${path}`);
    expect(err.details).toEqual({ path, errno: 'ENOTDIR' });
  });

  it('an abort during connect rejects with the reason, unwrapped, and ends idle', async () => {
    const server = await startServer({ greeting: false });
    const controller = new AbortController();
    const states: Runstate[] = [];
    const pending = QmpClient.connect({ path: server.path, signal: controller.signal, onStateChange: (s) => states.push(s) });
    await server.connection();
    const reason = new Error('operator cancelled');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(states).toEqual(FAILED_CONNECT_STATES);
  });
});

describe('QmpClient: commands and replies', () => {
  it('execute returns `return`; ids come from the reserved namespace', async () => {
    const server = await startServer();
    const { client } = await connect(server);
    expect(await client.execute('query-status')).toEqual({ status: 'prelaunch', singlestep: false, running: false });
    expect(await client.execute('query-version')).toEqual(QEMU_72_VERSION);
    expect(server.received.map((c) => c.id)).toEqual(['s1', 's2', 's3']);
  });

  it('an error reply rejects SUP_ERR_QMP_EXECUTE with class and desc in the details', async () => {
    const server = await startServer({
      handlers: {
        'query-sev-launch-measure': () => ({ error: { class: 'GenericError', desc: 'SEV launch measurement is not available' } }),
      },
    });
    const { client } = await connect(server);
    const err = await rejection(client.execute('query-sev-launch-measure'));
    expect(err.code).toBe('SUP_ERR_QMP_EXECUTE');
    expect(err.message).toBe("QMP command 'query-sev-launch-measure' failed (GenericError): SEV launch measurement is not available");
    expect(err.details).toEqual({
      command: 'query-sev-launch-measure',
      class: 'GenericError',
      desc: 'SEV launch measurement is not available',
    });
    expect(client.state).toBe('running');
  });

  it('request() returns the raw reply without our id and never throws for QMP errors', async () => {
    const server = await startServer({ handlers: { 'x-boom': () => ({ error: { class: 'CommandNotFound', desc: 'no' } }) } });
    const { client } = await connect(server, { oob: true });
    expect(await client.request({ execute: 'x-boom' })).toEqual({ error: { class: 'CommandNotFound', desc: 'no' } });
    expect(await client.request({ execute: 'query-status', arguments: {} })).toEqual({
      return: { status: 'prelaunch', singlestep: false, running: false },
    });
    server.handle('yank', () => ({ return: {} }));
    expect(await client.request({ 'exec-oob': 'yank', arguments: { instances: [] } })).toEqual({ return: {} });
    expect(server.received.at(-1)?.raw).toBe('{"exec-oob":"yank","arguments":{"instances":[]},"id":"s4"}');
  });

  it('request() refuses a message without exactly one of execute/exec-oob', async () => {
    const server = await startServer();
    const { client } = await connect(server);
    const err = await rejection(client.request({ execute: 'a', 'exec-oob': 'b' }));
    expect(err.code).toBe('SUP_ERR_INTERNAL');
    expect(err.message).toBe("a QMP command needs exactly one of 'execute' and 'exec-oob' as a string");
  });

  it('handles a reply split at every byte boundary, UTF-8 included', async () => {
    const desc = 'ünïcødé ✓ 😀 } ] "';
    const server = await startServer();
    const { client } = await connect(server);
    const template = JSON.stringify({ return: { desc }, id: 'ID' });
    const length = Buffer.byteLength(template.replace('ID', 's99'));
    for (let k = 0; k <= length; k++) {
      server.handle('split', (cmd) => {
        const bytes = Buffer.from(`${JSON.stringify({ return: { desc }, id: cmd.id })}\r\n`);
        return { chunks: [bytes.subarray(0, k), bytes.subarray(k)] };
      });
      expect(await client.execute('split')).toEqual({ desc });
    }
  });

  it('handles several messages in one read, events between replies', async () => {
    const server = await startServer();
    const { client } = await connect(server);
    server.handle('multi', (cmd) => ({
      raw: [eventMessage('STOP'), { return: 1, id: cmd.id }, eventMessage('RESUME', { x: 1 })].map((m) => JSON.stringify(m)).join(''),
    }));
    const events = client.events();
    expect(await client.execute('multi')).toBe(1);
    expect((await events.next()).value?.event).toBe('STOP');
    const resume = await events.next();
    expect(resume.value).toMatchObject({ event: 'RESUME', data: { x: 1 } });
  });

  it('drops a reply with an unknown id and logs it at warn', async () => {
    const { logger, lines } = logSink('warn');
    const server = await startServer();
    const { client } = await connect(server, { logger });
    server.handle('q', () => [
      { raw: '{"return": {"stale": true}, "id": "s4242"}\r\n' },
      { raw: '{"return": 7, "id": {"a": 1}}\r\n' },
      { return: 2 },
    ]);
    expect(await client.execute('q')).toBe(2);
    expect(lines.map((l) => [l['level'], l['msg'], l['id'], l['component']])).toEqual([
      [40, 'dropping QMP reply with unknown id', 's4242', 'qmp'],
      [40, 'dropping QMP reply with unknown id', '{"a":1}', 'qmp'],
    ]);
    expect(client.state).toBe('running');
  });

  it('times out a command with SUP_ERR_QMP_TIMEOUT; the late reply is dropped quietly', async () => {
    const { logger, lines } = logSink('debug');
    const server = await startServer({ handlers: { slow: () => undefined } });
    const { client } = await connect(server, { logger, commandTimeoutMs: 50 });
    const err = await rejection(client.execute('slow'));
    expect(err.code).toBe('SUP_ERR_QMP_TIMEOUT');
    expect(err.message).toBe("QMP command 'slow' got no reply within 50 ms");
    expect(err.details).toEqual({ command: 'slow', id: 's2', timeoutMs: 50 });
    const slow = await server.command('slow');
    slow.connection.write({ return: 'late', id: slow.id });
    expect(await client.execute('query-status', undefined, { timeoutMs: 0 })).toMatchObject({ running: false });
    expect(lines.filter((l) => l['id'] === 's2').map((l) => l['msg'])).toEqual([
      'dropping late QMP reply to a timed-out or abandoned command',
    ]);
    expect(lines.some((l) => l['level'] === 40)).toBe(false);
  });

  it('an aborted call rejects with the reason; the session goes on', async () => {
    const server = await startServer({ handlers: { slow: () => undefined } });
    const { client } = await connect(server);
    const controller = new AbortController();
    const pending = client.execute('slow', undefined, { signal: controller.signal });
    await server.command('slow');
    controller.abort(new Error('enough'));
    await expect(pending).rejects.toThrow('enough');
    expect(await client.execute('query-status')).toMatchObject({ status: 'prelaunch' });
  });
});

describe('QmpClient: failures end the session', () => {
  it('a disconnect fails every pending call with SUP_ERR_QMP_INTERRUPTED caused by the root cause', async () => {
    const server = await startServer({ handlers: { a: () => undefined, b: () => undefined } });
    const { client, states } = await connect(server);
    const a = rejection(client.execute('a'));
    const b = rejection(client.execute('b'));
    const conn = (await server.command('b')).connection;
    conn.end();
    const [ea, eb] = await Promise.all([a, b]);
    expect(ea.code).toBe('SUP_ERR_QMP_INTERRUPTED');
    expect(ea.message).toBe(`QMP command 'a' interrupted: QEMU closed the QMP connection ${server.path}`);
    expect(ea.details).toEqual({ command: 'a', id: 's2' });
    expect(eb.details).toEqual({ command: 'b', id: 's3' });
    const cause = await client.closed;
    expect(ea.cause).toBe(cause);
    expect(eb.cause).toBe(cause);
    expect(isSupervisorError(cause) && cause.code).toBe('SUP_ERR_QMP_INTERRUPTED');
    expect(states).toEqual(GOOD_CONNECTION_STATES);
  });

  it('is sticky after failure: commands reject SUP_ERR_QMP_STATE with state, required and the cause', async () => {
    const server = await startServer();
    const { client } = await connect(server);
    (await server.connection()).destroy();
    const cause = await client.closed;
    const err = await rejection(client.execute('query-status'));
    expect(err.code).toBe('SUP_ERR_QMP_STATE');
    expect(err.message).toBe(`cannot send a QMP command: QMP session is idle, not running (ended: ${cause?.message ?? ''})`);
    expect(err.details).toEqual({ state: 'idle', required: 'running', action: 'send a QMP command' });
    expect(err.cause).toBe(cause);
  });

  it('an error reply without id is a fatal protocol error (nothing id-less is ever pending)', async () => {
    const server = await startServer({
      handlers: { dup: () => ({ raw: '{"error": {"class": "GenericError", "desc": "JSON parse error, duplicate key"}}\r\n' }) },
    });
    const { client, states } = await connect(server);
    const err = await rejection(client.execute('dup'));
    expect(err.code).toBe('SUP_ERR_QMP_INTERRUPTED');
    const cause = await client.closed;
    expect(isSupervisorError(cause) && cause.code).toBe('SUP_ERR_QMP_PROTOCOL');
    expect(cause?.message).toBe(`QMP error without id from ${server.path} (GenericError): JSON parse error, duplicate key`);
    expect(err.cause).toBe(cause);
    expect(states).toEqual(GOOD_CONNECTION_STATES);
  });

  it('garbage from QEMU is a fatal protocol error', async () => {
    const server = await startServer({ handlers: { g: () => ({ raw: '@@@\n' }) } });
    const { client } = await connect(server);
    const err = await rejection(client.execute('g'));
    expect(err.code).toBe('SUP_ERR_QMP_INTERRUPTED');
    const cause = await client.closed;
    expect(cause?.message).toBe(`bad QMP data from ${server.path}: stray '@'`);
    expect(isSupervisorError(cause) && cause.details).toEqual({ reason: 'bad-input' });
  });

  it('a message that is not a QMP message is a fatal protocol error', async () => {
    const server = await startServer({
      handlers: { w: (cmd) => ({ raw: `{"return": 1, "error": {"class": "a", "desc": "b"}, "id": "${String(cmd.id)}"}` }) },
    });
    const { client } = await connect(server);
    await rejection(client.execute('w'));
    expect((await client.closed)?.message).toBe("QMP message has both 'return' and 'error'");
  });

  it('oversize input is a fatal protocol error', async () => {
    const server = await startServer({ handlers: { big: () => ({ return: 'x'.repeat(5000) }) } });
    const { client } = await connect(server, { maxMessageBytes: 4096 });
    await rejection(client.execute('big'));
    const cause = await client.closed;
    expect(cause?.message).toBe(`bad QMP data from ${server.path}: JSON value larger than 4096 bytes`);
    expect(isSupervisorError(cause) && cause.details).toEqual({ reason: 'too-large' });
  });

  it('close() interrupts pending calls; closed resolves with undefined', async () => {
    const server = await startServer({ handlers: { slow: () => undefined } });
    const { client, states } = await connect(server);
    const pending = rejection(client.execute('slow'));
    await server.command('slow');
    await client.close();
    const err = await pending;
    expect(err.code).toBe('SUP_ERR_QMP_INTERRUPTED');
    expect(err.message).toBe(`QMP command 'slow' interrupted: QMP session ${server.path} closed by the client`);
    expect(await client.closed).toBeUndefined();
    expect(states).toEqual(GOOD_CONNECTION_STATES);
    await client.close(); // idempotent
    expect(states).toEqual(GOOD_CONNECTION_STATES);
  });

  it('EOF after a successful quit is a clean end', async () => {
    const server = await startServer();
    const { client, states } = await connect(server);
    const events = client.events();
    expect(await client.execute('quit')).toEqual({});
    expect(await client.closed).toBeUndefined();
    const seen: string[] = [];
    for await (const e of events) seen.push(e.event);
    expect(seen).toEqual(['SHUTDOWN']);
    expect(states).toEqual(GOOD_CONNECTION_STATES);
  });
});

describe('QmpClient: events', () => {
  it('every listener gets its own copy; names filter; iterators end when the session ends', async () => {
    const server = await startServer();
    const { client } = await connect(server);
    const all = client.events();
    const stops = client.events({ names: ['STOP'] });
    const seen: unknown[] = [];
    const unsubscribe = client.onEvent((e) => {
      seen.push(e);
      (e.data as Record<string, unknown>)['mutated'] = true;
    });
    const conn = await server.connection();
    conn.sendEvent('RESUME', { n: 1 });
    conn.sendEvent('STOP', { n: 2 });
    const first = await all.next();
    expect(first.value).toMatchObject({ event: 'RESUME', data: { n: 1 } });
    expect(first.value?.data).toEqual({ n: 1 });
    const stop = await stops.next();
    expect(stop.value?.data).toEqual({ n: 2 });
    expect(seen).toHaveLength(2);
    unsubscribe();
    conn.sendEvent('STOP', { n: 3 });
    expect((await all.next()).value?.data).toEqual({ n: 2 });
    expect((await all.next()).value?.data).toEqual({ n: 3 });
    expect(seen).toHaveLength(2);
    const pendingNext = stops.next();
    expect((await pendingNext).value?.data).toEqual({ n: 3 });
    const ending = stops.next();
    await client.close();
    expect(await ending).toEqual({ value: undefined, done: true });
    expect(await all.next()).toEqual({ value: undefined, done: true });
    expect(await client.events().next()).toEqual({ value: undefined, done: true });
  });

  it('a listener that falls behind gets its buffered events, then SUP_ERR_QMP_EVENT_OVERFLOW', async () => {
    const server = await startServer();
    const { client } = await connect(server);
    const slow = client.events({ maxBuffered: 2 });
    const conn = await server.connection();
    for (const name of ['A', 'B', 'C', 'D']) conn.sendEvent(name);
    expect(await client.execute('query-status')).toMatchObject({ running: false });
    expect((await slow.next()).value?.event).toBe('A');
    expect((await slow.next()).value?.event).toBe('B');
    const err = await rejection(slow.next());
    expect(err.code).toBe('SUP_ERR_QMP_EVENT_OVERFLOW');
    expect(err.message).toBe('QMP event listener fell behind: 2 events unread, C and later events lost');
    expect(await slow.next()).toEqual({ value: undefined, done: true });
  });

  it('a listener that throws is logged and does not disturb others', async () => {
    const { logger, lines } = logSink('warn');
    const server = await startServer();
    const { client } = await connect(server, { logger });
    client.onEvent(() => {
      throw new Error('listener bug');
    });
    const events = client.events();
    (await server.connection()).sendEvent('STOP');
    expect((await events.next()).value?.event).toBe('STOP');
    expect(lines.map((l) => [l['msg'], l['event']])).toEqual([['QMP event listener threw', 'STOP']]);
  });
});

describe('QmpClient: trace logging', () => {
  it('logs traffic at trace with --> and <--, secrets of sev-inject-launch-secret redacted', async () => {
    const { logger, lines } = logSink('trace');
    const server = await startServer({ handlers: { 'sev-inject-launch-secret': () => ({ return: {} }) } });
    const { client } = await connect(server, { logger });
    await client.execute('sev-inject-launch-secret', { 'packet-header': 'SECRETHDR', secret: 'SECRETDATA', gpa: 4096 });
    const traffic = lines.filter((l) => l['msg'] === '-->' || l['msg'] === '<--').map((l) => `${String(l['msg'])} ${String(l['qmp'])}`);
    expect(traffic).toEqual([
      `<-- ${JSON.stringify({ QMP: { version: QEMU_72_VERSION, capabilities: ['oob'] } })}`,
      '--> {"execute":"qmp_capabilities","id":"s1"}',
      '<-- {"return":{},"id":"s1"}',
      '--> {"execute":"sev-inject-launch-secret","arguments":{"packet-header":"[redacted]","secret":"[redacted]","gpa":4096},"id":"s2"}',
      '<-- {"return":{},"id":"s2"}',
    ]);
    expect(JSON.stringify(lines)).not.toContain('SECRET');
    // The secret did reach QEMU.
    expect(server.received.at(-1)?.arguments).toEqual({ 'packet-header': 'SECRETHDR', secret: 'SECRETDATA', gpa: 4096 });
  });
});

describe('QmpClient.fromStream', () => {
  it('runs the same handshake on a given stream', async () => {
    const server = await startServer();
    const { createConnection } = await import('node:net');
    const socket = createConnection({ path: server.path });
    await new Promise((resolve) => socket.once('connect', resolve));
    const client = await QmpClient.fromStream(socket);
    cleanups.push(() => client.close());
    expect(await client.execute('query-status')).toMatchObject({ status: 'prelaunch' });
    server.assertNoUnexpected();
  });
});
