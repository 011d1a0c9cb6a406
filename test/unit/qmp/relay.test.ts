// QmpRelay on a real unix socket against FakeQmpServer: the handshake and its failures, the
// caller's message and id sent exactly, the raw reply returned, events kept apart, and the
// proxy going away. The CLI's use of it is covered in test/unit/cli/actions/qmp.test.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isSupervisorError } from '../../../src/errors.js';
import { QmpRelay, type RawMessage } from '../../../src/qmp/relay.js';
import { FakeQmpServer } from '../../support/fake-qmp-server.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startServer(options: ConstructorParameters<typeof FakeQmpServer>[0] = {}): Promise<FakeQmpServer> {
  const server = await FakeQmpServer.start(options);
  cleanups.push(() => server.close());
  return server;
}

async function open(server: FakeQmpServer): Promise<QmpRelay> {
  const relay = await QmpRelay.open(server.path);
  cleanups.push(async () => {
    relay.close();
    await relay.closed;
  });
  return relay;
}

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isSupervisorError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('QmpRelay', () => {
  it('negotiates, then sends the caller message with its own id and members exactly and returns the raw reply', async () => {
    const server = await startServer();
    const relay = await open(server);
    expect(server.received.map((c) => c.command)).toEqual(['qmp_capabilities']);
    const message = { execute: 'query-status', id: { mine: [7] }, 'x-extra': true };
    const reply = await relay.send(message);
    expect(reply).toEqual({ return: { status: 'prelaunch', singlestep: false, running: false }, id: { mine: [7] } });
    expect(JSON.parse(server.received[1]?.raw ?? '')).toEqual(message);
  });

  it('gives a message without an id one of its own, a new one each time', async () => {
    const server = await startServer();
    const relay = await open(server);
    const first = await relay.send({ execute: 'query-status' });
    const second = await relay.send({ execute: 'query-version' });
    expect(first['id']).toMatch(/^sevsup-cli-\d+$/);
    expect(second['id']).toMatch(/^sevsup-cli-\d+$/);
    expect(second['id']).not.toBe(first['id']);
    expect(server.received.slice(1).map((c) => c.id)).toEqual([first['id'], second['id']]);
  });

  it('returns an error reply raw, as any other reply', async () => {
    const server = await startServer({ handlers: { migrate: () => ({ error: { class: 'GenericError', desc: 'refused' } }) } });
    const relay = await open(server);
    expect(await relay.send({ execute: 'migrate', id: 3 })).toEqual({ error: { class: 'GenericError', desc: 'refused' }, id: 3 });
  });

  it('hands events to onEvent and not as the reply, also when one comes before the reply', async () => {
    const server = await startServer({
      handlers: { stop: () => [{ event: 'STOP' }, { return: {} }] },
    });
    const relay = await open(server);
    const events: RawMessage[] = [];
    relay.onEvent = (event) => events.push(event);
    expect(await relay.send({ execute: 'stop', id: 'a' })).toEqual({ return: {}, id: 'a' });
    expect(events.map((e) => e['event'])).toEqual(['STOP']);
  });

  it('an absent socket: SUP_ERR_API_UNREACHABLE at once with the path and the hint', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sevsup-relay-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'qmp.sock');
    expect(await failure(QmpRelay.open(path))).toEqual({
      code: 'SUP_ERR_API_UNREACHABLE',
      message: `cannot connect to the QMP proxy socket ${path}: ENOENT; is the guest running?`,
    });
  });

  it.each([
    ['a reply instead of a greeting', '{"return": {}}\r\n'],
    ['a malformed greeting', '{"QMP": {"version": 1}}\r\n'],
  ])('%s: SUP_ERR_QMP_GREETING', async (_what, greeting) => {
    const server = await startServer({ greeting });
    expect(await failure(QmpRelay.open(server.path))).toEqual({
      code: 'SUP_ERR_QMP_GREETING',
      message: `${server.path} did not greet like a QMP monitor`,
    });
  });

  it('a refused negotiation: SUP_ERR_QMP_NEGOTIATION', async () => {
    const server = await startServer({ handlers: { qmp_capabilities: () => ({ error: { class: 'GenericError', desc: 'no' } }) } });
    expect(await failure(QmpRelay.open(server.path))).toEqual({
      code: 'SUP_ERR_QMP_NEGOTIATION',
      message: 'the proxy refused capabilities negotiation',
    });
  });

  it('a proxy that closes during the handshake or before a reply: SUP_ERR_API_UNREACHABLE', async () => {
    const silent = await startServer({ handlers: { qmp_capabilities: () => ({ close: true }) } });
    expect(await failure(QmpRelay.open(silent.path))).toEqual({
      code: 'SUP_ERR_API_UNREACHABLE',
      message: 'the QMP proxy closed the connection',
    });
    const server = await startServer({ handlers: { quit: () => ({ close: true }) } });
    const relay = await open(server);
    expect(await failure(relay.send({ execute: 'quit' }))).toEqual({
      code: 'SUP_ERR_API_UNREACHABLE',
      message: 'the QMP proxy closed the connection',
    });
    await relay.closed;
  });
});
