// The QMP proxy end to end on real unix sockets: clients (WireClient, exact bytes) ↔ proxy ↔ a
// real QmpClient ↔ FakeQmpServer (stands in for QEMU and records what reached it). Covers the
// greeting, negotiation mode, ids, refusals never reaching the fake, framing (split and joined
// writes), bounds and repeated bad input, reply order and exec-oob, queued requests of a client
// that left, the upstream ending, 50 clients with one that never reads, event fan-out,
// backpressure, the client limit, socket permissions, audit lines with the peer's pid/uid, and a
// property: no input makes the proxy throw, hang or forward a refused command.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { QMP_COMMANDS, classifyCommand } from '../../../src/policy/qmp-policy.js';
import { decide } from '../../../src/proxy/decide.js';
import { DEFAULT_PROXY_LIMITS } from '../../../src/proxy/proxy-server.js';
import { QEMU_72_VERSION, type FakeHandler, type ReceivedCommand } from '../../support/fake-qmp-server.js';
import { HELD, startProxyRig, type Rig, type RigOptions } from '../../support/proxy-rig.js';
import { WireClient, errorDesc, member } from '../../support/qmp-wire-client.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const rig = (options: RigOptions = {}, register = (f: () => Promise<unknown>) => void cleanups.push(f)): Promise<Rig> =>
  startProxyRig(options, register);

async function client(r: Rig, oob = false): Promise<WireClient> {
  const { client: c } = await WireClient.negotiated(r.path, oob);
  cleanups.push(async () => c.destroy());
  return c;
}

async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A fake handler that answers only when the test says so. */
function deferred(): { handler: FakeHandler; answer: (value?: unknown) => void; arrived: () => boolean } {
  let pending: ReceivedCommand | undefined;
  return {
    handler: (cmd) => {
      pending = cmd;
      return undefined;
    },
    answer: (value = []) => {
      if (pending === undefined) throw new Error('the deferred command has not arrived');
      pending.connection.write({ return: value, id: pending.id });
    },
    arrived: () => pending !== undefined,
  };
}

describe('greeting and negotiation', () => {
  it("greets every client with QEMU's version and capabilities (oob only if the upstream has it)", async () => {
    const withOob = await rig();
    const a = await WireClient.connect(withOob.path);
    cleanups.push(async () => a.destroy());
    expect(await a.next()).toEqual({ QMP: { version: QEMU_72_VERSION, capabilities: ['oob'] } });

    const withoutOob = await rig({ oob: false });
    const b = await WireClient.connect(withoutOob.path);
    cleanups.push(async () => b.destroy());
    expect(await b.next()).toEqual({ QMP: { version: QEMU_72_VERSION, capabilities: [] } });
    expect(await b.command({ execute: 'qmp_capabilities', arguments: { enable: ['oob'] }, id: 1 })).toEqual({
      error: { class: 'GenericError', desc: 'Capability oob not available' },
      id: 1,
    });
  });

  it('answers everything but qmp_capabilities locally before negotiation, and sends no events until then', async () => {
    const r = await rig();
    const c = await WireClient.connect(r.path);
    cleanups.push(async () => c.destroy());
    await c.next();
    expect(await c.command({ execute: 'query-status', id: 1 })).toEqual({
      error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" },
      id: 1,
    });
    expect(await c.command({ 'exec-oob': 'query-yank', id: 2 })).toEqual({
      error: { class: 'GenericError', desc: "QMP input member 'exec-oob' is unexpected" },
      id: 2,
    });
    const conn = await r.fake.connection();
    conn.sendEvent('BEFORE');
    await r.upstream.execute('query-version'); // the event has passed through the upstream
    expect(await c.command({ execute: 'qmp_capabilities', arguments: { enable: ['oob'] }, id: 3 })).toEqual({ return: {}, id: 3 });
    conn.sendEvent('AFTER');
    expect((await c.nextEvent())['event']).toBe('AFTER');
    expect(c.events.map((e) => e['event'])).toEqual(['AFTER']);
    expect(r.forwarded().map((x) => x.command)).toEqual(['query-version']);
  });
});

describe('negotiation deadline', () => {
  it('disconnects a client that never negotiates, and keeps one that did', async () => {
    const r = await rig({ limits: { negotiationTimeoutMs: 150 } });
    const idle = await WireClient.connect(r.path);
    const active = await WireClient.connect(r.path);
    cleanups.push(
      async () => idle.destroy(),
      async () => active.destroy(),
    );
    await idle.next();
    await active.next();
    expect(await active.command({ execute: 'qmp_capabilities', id: 1 })).toEqual({ return: {}, id: 1 });
    await idle.closed;
    expect(r.proxy.clientCount()).toBe(1);
    expect(await active.command({ execute: 'query-status', id: 2 })).toMatchObject({ id: 2, return: {} });
  });
});

describe('ids', () => {
  const IDS: unknown[] = [1, 0, -7, 2.5, 'x', '', 's1', null, false, [], [1, [2, 'a']], {}, { a: { b: [null, true] } }, 'é😀\u0000'];

  it('echoes every client id exactly (any JSON value); the upstream only ever sees its own ids', async () => {
    const r = await rig();
    const c = await client(r);
    for (const id of IDS) {
      expect(await c.command({ execute: 'query-status', id })).toEqual({
        return: { status: 'prelaunch', singlestep: false, running: false },
        id,
      });
      expect(await c.command({ execute: 'migrate', arguments: { uri: 'exec:true' }, id })).toEqual({
        error: { class: 'GenericError', desc: 'migrate refused by sevsup: migration' },
        id,
      });
    }
    const noId = await c.command({ execute: 'query-status' });
    expect(Object.hasOwn(noId, 'id')).toBe(false);
    const ids = r.forwarded().map((x) => x.id);
    expect(ids).toHaveLength(IDS.length + 1);
    for (const id of ids) expect(id).toMatch(/^s\d+$/);
  });

  it('forwards our re-serialisation only: no client id, no extra bytes, arguments as parsed', async () => {
    const r = await rig();
    const c = await client(r);
    c.write('  {"arguments" : {"path":"/machine","x":1.0e0}, "id":{"k":[1]},\n"execute":"qom-list"}');
    expect(await c.next()).toEqual({ return: [{ name: 'type', type: 'string' }], id: { k: [1] } });
    const [sent] = r.forwarded();
    expect(sent?.raw).toBe(`{"execute":"qom-list","arguments":{"path":"/machine","x":1},"id":"${String(sent?.id)}"}`);
  });
});

/** Refused inputs of every shape; none may reach the fake. */
const REFUSED_WIRE: readonly (readonly [string, string])[] = [
  ['migrate', '{"execute":"migrate","arguments":{"uri":"exec:cat>/dev/null"},"id":1}'],
  ['exec-oob migrate-pause', '{"exec-oob":"migrate-pause","id":2}'],
  ['dump-guest-memory', '{"execute":"dump-guest-memory","arguments":{"paging":false,"protocol":"file:/tmp/x"},"id":3}'],
  ['pmemsave', '{"execute":"pmemsave","arguments":{"val":0,"size":16,"filename":"/tmp/x"},"id":4}'],
  ['hmp savevm with spaces', '{"execute":"human-monitor-command","arguments":{"command-line":"   savevm t1"},"id":5}'],
  ['hmp migrate with a tab', '{"execute":"human-monitor-command","arguments":{"command-line":"\\tmigrate -d exec:true"},"id":6}'],
  ['hmp alias c while held', '{"execute":"human-monitor-command","arguments":{"command-line":"c"},"id":7}'],
  ['cont while held', '{"execute":"cont","id":8}'],
  ['name in unicode escapes', '{"execute":"\\u006d\\u0069grate","arguments":{"uri":"exec:true"},"id":9}'],
  ['snapshot-save', '{"execute":"snapshot-save","arguments":{"job-id":"j","tag":"t","vmstate":"d","devices":["d"]},"id":10}'],
  ['xen-save-devices-state', '{"execute":"xen-save-devices-state","arguments":{"filename":"/tmp/x"},"id":11}'],
  ['sev-inject-launch-secret', '{"execute":"sev-inject-launch-secret","arguments":{"packet-header":"","secret":""},"id":12}'],
];
const BAD_WIRE: readonly (readonly [string, string])[] = [
  ['duplicate key, dangerous last', '{"execute":"query-status","execute":"migrate","id":20}'],
  ['duplicate key, dangerous first', '{"execute":"migrate","execute":"query-status","id":21}'],
  ['duplicate via escape', '{"execute":"query-status","exe\\u0063ute":"migrate","id":22}'],
  ['single quotes', "{'execute':'migrate','id':23}"],
];

describe('refusals', () => {
  it.each(REFUSED_WIRE)('%s: an error with the id, audited, never forwarded', async (_what, wire) => {
    const r = await rig();
    const c = await client(r, true);
    c.write(wire);
    const reply = await c.next();
    expect(reply['error']).toMatchObject({ class: 'GenericError', desc: expect.stringMatching(/ refused by sevsup: [a-z-]+$/) });
    expect(reply['id']).toBe(JSON.parse(wire).id);
    await until('the audit line', () => r.logs.some((l) => l['msg'] === 'qmp command refused'));
    expect(r.forwarded()).toEqual([]);
    r.fake.assertNoUnexpected();
  });

  it.each(BAD_WIRE)('%s: a parse error without id, never forwarded', async (_what, wire) => {
    const r = await rig();
    const c = await client(r);
    c.write(wire);
    const reply = await c.next();
    expect(reply).toEqual({ error: { class: 'GenericError', desc: expect.stringMatching(/^JSON parse error, /) } });
    expect(await c.command({ execute: 'query-status', id: 'after' })).toMatchObject({ id: 'after' });
    expect(r.forwarded().map((x) => x.command)).toEqual(['query-status']);
  });

  it('logs each refusal with vm, command, reason code, vm state; counts refusals by reason', async () => {
    const r = await rig();
    const c = await client(r);
    await c.command({ execute: 'migrate', arguments: { uri: 'exec:true' } });
    await c.command({ execute: 'human-monitor-command', arguments: { 'command-line': 'savevm x' } });
    await c.command({ execute: 'memsave', arguments: { val: 0, size: 1, filename: '/x' } });
    await until('three audit lines', () => r.logs.filter((l) => l['msg'] === 'qmp command refused').length === 3);
    const lines = r.logs.filter((l) => l['msg'] === 'qmp command refused');
    expect(lines[0]).toMatchObject({
      level: 40,
      vm: 'vm1',
      component: 'qmp-proxy',
      code: 'SUP_ERR_PROXY_REFUSED',
      command: 'migrate',
      reason: 'migration',
      vmState: 'held',
      client: 1,
      peer: 'unknown',
    });
    expect(lines[1]).toMatchObject({ command: 'human-monitor-command', reason: 'snapshot-vmstate', hmp: { name: 'savevm', sub: null } });
    expect(r.proxy.refusals()).toEqual({ migration: 1, 'snapshot-vmstate': 1, 'memory-dump': 1 });
    expect(JSON.stringify(r.logs)).not.toContain('exec:true'); // arguments are never logged
  });
});

describe('framing and bounds', () => {
  it('reassembles a message split byte by byte, and answers several in one write in order', async () => {
    const r = await rig();
    const c = await client(r);
    for (const byte of Buffer.from('{"execute":"query-status","id":"split"}')) {
      c.write(Buffer.from([byte]));
      await tick();
    }
    expect(await c.next()).toMatchObject({ id: 'split', return: { status: 'prelaunch' } });
    c.write('{"execute":"query-status","id":1}{"execute":"migrate","id":2}\n{"execute":"query-version","id":3}[4]{"id":5}');
    const replies = await c.nextN(5);
    expect(replies.map((x) => x['id'])).toEqual([1, 2, 3, undefined, 5]);
    expect(replies.map((x) => ('return' in x ? 'return' : errorDesc(x)))).toEqual([
      'return',
      'migrate refused by sevsup: migration',
      'return',
      'QMP input must be a JSON object',
      "QMP input lacks member 'execute'",
    ]);
  });

  it('answers oversize and too-deep input with a parse error, goes on after one, and disconnects after repeated bad input', async () => {
    const r = await rig({ limits: { maxMessageBytes: 4096, maxDepth: 16, maxBadInput: 3 }, realPeerLookup: true });
    const c = await client(r);
    c.write(`{"execute":"query-status","arguments":{"x":"${'a'.repeat(10_000)}"},"id":1}`);
    expect(await c.next()).toEqual({ error: { class: 'GenericError', desc: expect.stringMatching(/^JSON parse error, .*(large|4096)/) } });
    c.write(`${'['.repeat(40)}${']'.repeat(40)}`);
    expect(await c.next()).toEqual({ error: { class: 'GenericError', desc: expect.stringMatching(/^JSON parse error, .*(deep|16)/) } });
    expect(await c.command({ execute: 'query-status', id: 'ok' })).toMatchObject({ id: 'ok' });
    c.write(`{'a':1}{"a":1,"a":2}${'{'.repeat(20)}`);
    const replies = await c.nextN(3);
    expect(replies.every((x) => Object.hasOwn(x, 'error') && !Object.hasOwn(x, 'id'))).toBe(true);
    await c.closed;
    expect(r.proxy.stats()).toMatchObject({ badInput: 5, dropped: { 'bad-input': 1 }, clients: 0 });
    await until('the disconnect line', () => r.logs.some((l) => l['code'] === 'SUP_ERR_PROXY_BAD_INPUT'));
    // Who it was is looked up before the connection is closed.
    expect(r.logs.find((l) => l['code'] === 'SUP_ERR_PROXY_BAD_INPUT')).toMatchObject({ client: 1, count: 3, peerPid: process.pid });
    expect(r.forwarded().map((x) => x.command)).toEqual(['query-status']);
  });
});

describe('ordering, disconnects and the upstream', () => {
  it('keeps in-band replies in order (local answers included) while exec-oob overtakes', async () => {
    const slow = deferred();
    const r = await rig({ handlers: { 'query-block': slow.handler } });
    const c = await client(r, true);
    c.write(
      '{"execute":"query-block","id":1}{"execute":"migrate","id":2}{"execute":"query-status","id":3}{"exec-oob":"query-yank","id":4}',
    );
    expect(await c.next()).toEqual({ return: [], id: 4 });
    await until('query-block upstream', slow.arrived);
    // One in-band request of a client at a time: query-status waits behind query-block.
    expect(r.forwarded().map((x) => `${x.oob ? 'oob:' : ''}${x.command}`)).toEqual(['query-block', 'oob:query-yank']);
    slow.answer(['disk']);
    expect((await c.nextN(3)).map((x) => x['id'])).toEqual([1, 2, 3]);
  });

  it("drops a client's queued requests unsent when it disconnects (as QEMU does)", async () => {
    const slow = deferred();
    const r = await rig({ handlers: { 'query-block': slow.handler } });
    const c = await client(r);
    c.write('{"execute":"query-block","id":1}{"execute":"query-status","id":2}{"execute":"query-version","id":3}');
    await until('query-block upstream', slow.arrived);
    c.destroy();
    await until('the proxy to notice', () => r.proxy.clientCount() === 0);
    slow.answer();
    const other = await client(r);
    expect(await other.command({ execute: 'qom-list', arguments: { path: '/' }, id: 'x' })).toMatchObject({ id: 'x' });
    expect(r.forwarded().map((x) => x.command)).toEqual(['query-block', 'qom-list']);
  });

  it('when the upstream ends: the request in flight gets an error with its id, clients are closed, the socket removed', async () => {
    const slow = deferred();
    const r = await rig({ handlers: { 'query-block': slow.handler } });
    const c = await client(r);
    const idle = await client(r);
    c.send({ execute: 'query-block', id: 'inflight' });
    await until('query-block upstream', slow.arrived);
    (await r.fake.connection()).destroy();
    expect(await c.next()).toEqual({
      error: { class: 'GenericError', desc: "sevsup: the connection to QEMU's monitor was lost; the command may or may not have run" },
      id: 'inflight',
    });
    await Promise.all([c.closed, idle.closed, r.proxy.closed]);
    expect(existsSync(r.path)).toBe(false);
  });

  it('answers a request QEMU does not answer in time with an error, and goes on', async () => {
    const r = await rig({ handlers: { 'query-block': () => undefined }, commandTimeoutMs: 100 });
    const c = await client(r);
    expect(await c.command({ execute: 'query-block', id: 'slow' })).toEqual({
      error: { class: 'GenericError', desc: 'sevsup: QEMU did not reply in time; the command may still complete' },
      id: 'slow',
    });
    expect(await c.command({ execute: 'query-status', id: 'next' })).toMatchObject({ return: { status: 'prelaunch' }, id: 'next' });
  });

  it('close() disconnects clients and removes the socket, leaving the upstream usable', async () => {
    const r = await rig();
    const c = await client(r);
    await r.proxy.close();
    await c.closed;
    expect(existsSync(r.path)).toBe(false);
    expect(await r.upstream.execute('query-version')).toEqual(QEMU_72_VERSION);
  });
});

describe('many clients', () => {
  it('50 clients get every event and their replies while a client that never reads is dropped; the supervisor is not delayed', async () => {
    const r = await rig({ limits: { maxOutputBytes: 64 * 1024 } });
    const stuck = await client(r);
    stuck.stopReading();
    const clients = await Promise.all(Array.from({ length: 50 }, () => client(r)));
    const conn = await r.fake.connection();
    // Events arrive in bursts (as QEMU's do), each far below the output bound; only a client
    // that never reads accumulates past it. Commands from every client and from the supervisor
    // run while the events flow.
    const EVENTS = 300;
    const BURST = 20;
    const blob = 'x'.repeat(2048);
    for (let n = 0; n < EVENTS; n += BURST) {
      for (let k = n; k < n + BURST; k++) conn.sendEvent('TEST_EVENT', { n: k, blob });
      const replies = await Promise.all(clients.map((c, i) => c.command({ execute: 'query-status', id: `${n}-${i}` })));
      expect(replies.map((x) => x['id'])).toEqual(clients.map((_c, i) => `${n}-${i}`));
      expect(await r.upstream.execute('query-status')).toMatchObject({ status: 'prelaunch' });
      await until('the burst at every client', () => clients.every((c) => c.events.length === n + BURST), 30_000);
    }
    for (const c of clients) expect(c.events.map((e) => member(e['data'], 'n'))).toEqual([...Array(EVENTS).keys()]);
    expect(r.proxy.stats()).toMatchObject({ clients: 50, dropped: { slow: 1 } });
    expect(r.logs.some((l) => l['msg'] === 'qmp proxy client is not reading; disconnected' && l['client'] === 1)).toBe(true);
  });

  it('sends events to negotiated clients only', async () => {
    const r = await rig();
    const a = await client(r);
    const b = await WireClient.connect(r.path);
    cleanups.push(async () => b.destroy());
    await b.next();
    const conn = await r.fake.connection();
    conn.sendEvent('ONE');
    await a.nextEvent();
    await b.command({ execute: 'qmp_capabilities' });
    conn.sendEvent('TWO');
    expect((await b.nextEvent())['event']).toBe('TWO');
    expect(b.events.map((e) => e['event'])).toEqual(['TWO']);
    expect((await a.nextEvent())['event']).toBe('TWO');
  });

  it('applies backpressure instead of disconnecting a client that pipelines many requests', async () => {
    const r = await rig({ limits: { maxQueued: 8 } });
    const c = await client(r);
    const N = 500;
    c.write(Array.from({ length: N }, (_v, i) => JSON.stringify({ execute: i % 3 === 0 ? 'migrate' : 'query-status', id: i })).join(''));
    const replies = await c.nextN(N, 20_000);
    expect(replies.map((x) => x['id'])).toEqual([...Array(N).keys()]);
    expect(r.proxy.stats().dropped).toEqual({
      slow: 0,
      'bad-input': 0,
      'too-many-clients': 0,
      'peer-limit': 0,
      idle: 0,
      'negotiation-timeout': 0,
    });
  });

  it('stops reading a client once its queued requests reach maxQueuedBytes, not only maxQueued', async () => {
    const slow = deferred();
    const r = await rig({ handlers: { 'query-status': slow.handler } });
    const c = await client(r);
    c.send({ execute: 'query-status', id: 'first' });
    await until('the first request upstream', slow.arrived);
    // 48 requests of 256 KiB each (a big id): 12 MiB, under maxQueued (64) but far over maxQueuedBytes.
    const big = 'x'.repeat(256 * 1024);
    const total = 48 * (big.length + 40);
    for (let i = 0; i < 48; i++) c.write(`${JSON.stringify({ execute: 'query-status', id: `${i}${big}` })}\n`);
    // Wait until the proxy has read all it will: our pending bytes stop changing for 200 ms.
    for (
      let previous = -1, pending = c.socket.writableLength;
      pending !== previous;
      previous = pending, pending = c.socket.writableLength
    ) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // Accepted by the proxy (and the kernel's socket buffers): what left our own buffer.
    const accepted = total - c.socket.writableLength;
    expect(accepted).toBeLessThan(DEFAULT_PROXY_LIMITS.maxQueuedBytes + 4 * 1024 * 1024);
  });

  it('refuses connections beyond maxClients', async () => {
    const r = await rig({ limits: { maxClients: 2 } });
    await client(r);
    await client(r);
    const third = await WireClient.connect(r.path);
    await third.closed;
    expect(third.all).toEqual([]);
    expect(r.proxy.stats().dropped['too-many-clients']).toBe(1);
  });
});

describe('fair slots, idle clients and out-of-band floods (issue 9 #6 #8)', () => {
  it('refuses a peer (uid, by SO_PEERCRED) beyond maxClientsPerPeer while others still get slots', async () => {
    const r = await rig({ limits: { maxClientsPerPeer: 2 }, realPeerLookup: true });
    await client(r);
    await client(r);
    const third = await WireClient.connect(r.path);
    await third.closed;
    expect(third.all).toEqual([]);
    expect(r.proxy.stats().dropped['peer-limit']).toBe(1);
    expect(r.proxy.clientCount()).toBe(2);
    await until('the log line', () => r.logs.some((l) => l['msg'] === 'qmp proxy peer holds too many connections; connection refused'));
    expect(r.logs.find((l) => l['peerKey'] !== undefined)).toMatchObject({ peerKey: `uid:${process.geteuid?.()}`, peerPid: process.pid });
  });

  it('closes a negotiated client that sends nothing for idleTimeoutMs, keeps one that does', async () => {
    const r = await rig({ limits: { idleTimeoutMs: 400 } });
    const idle = await client(r);
    const busy = await client(r);
    const keepAlive = setInterval(() => busy.send({ execute: 'query-status' }), 100);
    try {
      await idle.closed;
      expect(r.proxy.stats().dropped.idle).toBe(1);
      expect(busy.socket.destroyed).toBe(false);
      expect(r.proxy.clientCount()).toBe(1);
    } finally {
      clearInterval(keepAlive);
    }
  });

  it('keeps at most maxOobInFlight exec-oob requests upstream however many a client sends', async () => {
    const inFlight: ReceivedCommand[] = [];
    const r = await rig({ limits: { maxOobInFlight: 2 }, handlers: { yank: (cmd) => void inFlight.push(cmd) } });
    const a = await client(r, true);
    const b = await client(r, true);
    const N = 200;
    for (const c of [a, b])
      c.write(Array.from({ length: N }, (_v, i) => JSON.stringify({ 'exec-oob': 'yank', arguments: { instances: [] }, id: i })).join(''));
    await until('two requests upstream', () => inFlight.length === 2);
    await new Promise((resolve) => setTimeout(resolve, 200));
    // One per client (each lane is serial), two in all, the rest wait in the proxy.
    expect(inFlight).toHaveLength(2);
    // The supervisor's own command is not behind them.
    expect(await r.upstream.request({ execute: 'query-status' })).toMatchObject({ return: { status: 'prelaunch' } });
    let answered = 0;
    while (answered < 2 * N) {
      await until('the next request upstream', () => inFlight.length > answered);
      const cmd = inFlight[answered];
      if (cmd === undefined) throw new Error('no request');
      cmd.connection.write({ return: {}, id: cmd.id });
      answered += 1;
    }
    const replies = [...(await a.nextN(N, 20_000)), ...(await b.nextN(N, 20_000))];
    expect(replies.every((x) => 'return' in x)).toBe(true);
    expect(a.all.filter((x) => 'id' in x).map((x) => x['id'])).toEqual([...Array(N).keys()]);
  });

  it("holds proxy commands back while one of sevsup's own awaits its reply", async () => {
    const slow = deferred();
    const r = await rig({ handlers: { 'query-sev': slow.handler, yank: () => ({ return: {} }) } });
    const c = await client(r, true);
    const own = r.upstream.execute('query-sev');
    await until('the supervisor command upstream', slow.arrived);
    c.send({ execute: 'query-status', id: 'p' });
    c.send({ 'exec-oob': 'yank', arguments: { instances: [] }, id: 'o' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(r.forwarded().map((x) => x.command)).toEqual(['query-sev']);
    slow.answer({ enabled: false });
    await own;
    await c.nextN(2);
    expect(
      r
        .forwarded()
        .map((x) => x.command)
        .sort(),
    ).toEqual(['query-sev', 'query-status', 'yank']);
  });

  it('writes at most a burst of refusal lines per window and counts every refusal', async () => {
    const r = await rig();
    const c = await client(r);
    const N = 1000;
    c.write(
      Array.from({ length: N }, (_v, i) =>
        JSON.stringify({ execute: 'pmemsave', arguments: { val: 0, size: 1, filename: '/x' }, id: i }),
      ).join(''),
    );
    await c.nextN(N, 20_000);
    await tick();
    expect(r.proxy.refusals()['memory-dump']).toBe(N);
    expect(r.logs.filter((l) => l['msg'] === 'qmp command refused').length).toBeLessThanOrEqual(100);
    await r.proxy.close();
    expect(r.logs.find((l) => l['kind'] === 'refused')).toMatchObject({
      suppressed: N - 100,
      msg: `${N - 100} similar qmp proxy lines suppressed`,
    });
  });

  it('never writes a log line with the same key twice', async () => {
    const r = await rig({ limits: { negotiationTimeoutMs: 100, maxBadInput: 1 } });
    const never = await WireClient.connect(r.path);
    await never.closed;
    const c = await client(r);
    await c.command({ execute: 'migrate', arguments: { uri: 'exec:true' } });
    c.write('{"execute":tru}');
    await c.closed;
    await until('the drop lines', () => r.logs.filter((l) => String(l['msg']).includes('disconnected')).length === 2);
    for (const line of r.rawLogs) {
      const keys = [...line.matchAll(/[{,]"([^"]+)":/g)].map((m) => m[1]);
      const top = keys.filter((k, i) => keys.indexOf(k) !== i);
      expect(top, line).toEqual([]);
    }
  });
});

describe('the socket and the audit trail', () => {
  it('creates the socket with mode 0660 and the configured group, leaving no staging file', async () => {
    const root = process.getuid?.() === 0;
    const r = await rig(root ? { gid: 4242 } : {});
    const st = await stat(r.path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    if (root) expect(st.gid).toBe(4242);
    expect(existsSync(`${r.path}~`)).toBe(false);
  });

  it("logs the peer process's pid and uid (another process) with each refusal", async () => {
    const r = await rig({ realPeerLookup: true });
    const script = `
      const s = require('node:net').createConnection(process.argv[1]);
      let buf = '';
      s.on('data', (d) => {
        buf += d;
        const lines = buf.split('\\r\\n');
        if (lines.length === 2) s.write('{"execute":"qmp_capabilities"}');
        if (lines.length === 3) s.write('{"execute":"pmemsave","arguments":{"val":0,"size":1,"filename":"/x"},"id":1}');
        if (lines.length === 4) process.stdout.write(lines[2]);
      });
      process.stdin.on('end', () => process.exit(0));
      process.stdin.resume();`;
    const child = spawn(process.execPath, ['-e', script, r.path], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await until('the refusal at the child', () => out.includes('refused by sevsup'));
    await until('the audit line', () => r.logs.some((l) => l['msg'] === 'qmp command refused'));
    const line = r.logs.find((l) => l['msg'] === 'qmp command refused');
    expect(line).toMatchObject({
      command: 'pmemsave',
      reason: 'memory-dump',
      peerPid: child.pid,
      peerUid: process.geteuid?.(),
      peerGid: process.getegid?.(),
      peerComm: 'node',
    });
    child.stdin.end();
  });

  it('names a client that sends a refused command and exits at once (issue 9 #12)', async () => {
    const r = await rig({ realPeerLookup: true });
    const script = `
      const s = require('node:net').createConnection(process.argv[1]);
      s.once('data', () => {
        s.write('{"execute":"qmp_capabilities"}{"execute":"pmemsave","arguments":{"val":0,"size":1,"filename":"/x"}}', () => process.exit(0));
      });`;
    // The client waits for the greeting, as QMP clients do. (One that closes before the proxy's
    // greeting is written can make that write fail with EPIPE, and Node then discards what the client
    // sent unread: those bytes are never parsed, so never forwarded either.)
    const child = spawn(process.execPath, ['-e', script, r.path], { stdio: 'ignore' });
    await new Promise((resolve) => child.once('exit', resolve));
    await until('the audit line', () => r.logs.some((l) => l['msg'] === 'qmp command refused'));
    expect(r.logs.find((l) => l['msg'] === 'qmp command refused')).toMatchObject({
      command: 'pmemsave',
      peerPid: child.pid,
      peerUid: process.geteuid?.(),
    });
  });
});

describe('property: no input makes the proxy throw, hang or forward a refused command', () => {
  let r: Rig;
  const local: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    r = await rig(
      {
        handlers: { quit: () => ({ return: {} }), 'human-monitor-command': () => ({ return: '' }) },
        limits: { maxMessageBytes: 2048, maxDepth: 8 },
      },
      (f) => void local.push(f),
    );
  });
  afterAll(async () => {
    for (const f of local.splice(0).reverse()) await f();
  });

  const escapeAll = (s: string): string => [...s].map((ch) => `\\u${(ch.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`).join('');
  const name = fc.oneof(
    fc.constantFrom(...QMP_COMMANDS.keys()),
    fc.constantFrom('migrate', 'savevm', 'cont', 'human-monitor-command'),
    fc.string({ maxLength: 12 }),
  );
  const hmpLine = fc.tuple(
    fc.constantFrom('', ' ', '\t', '  \t'),
    fc.constantFrom('savevm', 'migrate', 'c', 'cont', 'info status', 'info mem', 'x', 'pmemsave', 'info', 'quit', 'q'),
    fc.string({ maxLength: 8 }),
  );
  const message = fc
    .record({
      member: fc.constantFrom('execute', 'exec-oob'),
      name,
      hmp: fc.option(hmpLine),
      id: fc.option(fc.jsonValue({ maxDepth: 2 })),
      style: fc.constantFrom('plain', 'escaped', 'dup-first', 'dup-last', 'single'),
    })
    .map(({ member, name: n, hmp, id, style }) => {
      const args = hmp === null ? '' : `,"arguments":{"command-line":${JSON.stringify(hmp.join(''))}}`;
      const idPart = id === null ? '' : `,"id":${JSON.stringify(id)}`;
      const quoted = style === 'escaped' ? `"${escapeAll(n)}"` : JSON.stringify(n);
      if (style === 'dup-first') return `{"${member}":"migrate","${member}":${quoted}${args}${idPart}}`;
      if (style === 'dup-last') return `{"${member}":${quoted},"${member}":"migrate"${args}${idPart}}`;
      if (style === 'single') return `{'${member}':'${n.replace(/['\\]/g, '')}'${args}${idPart}}`;
      return `{"${member}":${quoted}${args}${idPart}}`;
    });
  const piece = fc.oneof(
    { weight: 3, arbitrary: message.map((m) => Buffer.from(m)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
  );
  const stream = fc.record({
    negotiate: fc.boolean(),
    pieces: fc.array(piece, { maxLength: 12 }),
    cuts: fc.array(fc.nat(), { maxLength: 6 }),
  });

  it('random streams over a real socket', async () => {
    await fc.assert(
      fc.asyncProperty(stream, async ({ negotiate, pieces, cuts }) => {
        const c = await WireClient.connect(r.path);
        try {
          await c.next();
          if (negotiate) c.write('{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}');
          const bytes = Buffer.concat(pieces);
          const points = [...new Set(cuts.map((n) => (bytes.length === 0 ? 0 : n % bytes.length)))].sort((a, b) => a - b);
          let from = 0;
          for (const to of [...points, bytes.length]) {
            if (to > from) c.write(bytes.subarray(from, to));
            from = to;
            await tick();
          }
          // Not hung: the proxy still answers this client (if it kept it) and a new one.
          if (!c.isClosed) {
            // 0xFF resets QMP framing (qmp-spec), ending any value the stream left open.
            c.write(
              Buffer.concat([
                Buffer.from([0xff]),
                Buffer.from('\n{"execute":"qmp_capabilities"}{"execute":"query-status","id":"sentinel"}'),
              ]),
            );
            await until('the sentinel reply or a disconnect', () => c.isClosed || c.all.some((m) => m['id'] === 'sentinel'), 5_000);
          }
        } finally {
          c.destroy();
        }
        const probe = await WireClient.negotiated(r.path);
        expect(await probe.client.command({ execute: 'query-status', id: 'probe' }, 5_000)).toMatchObject({ id: 'probe' });
        probe.client.destroy();
        for (const sent of r.forwarded()) {
          const request = {
            [sent.oob ? 'exec-oob' : 'execute']: sent.command,
            ...(sent.arguments === undefined ? {} : { arguments: sent.arguments }),
          };
          expect(classifyCommand(sent.command).verdict, sent.raw).toBe('allowed');
          expect(decide(request, HELD).allow, sent.raw).toBe(true);
        }
      }),
      { numRuns: 120, interruptAfterTimeLimit: 12_000 },
    );
    expect(r.forwarded().length).toBeGreaterThan(0);
  }, 30_000);
});
