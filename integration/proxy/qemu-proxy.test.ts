// The QMP proxy in front of the real QEMU 7.2, with the guest paused and held for attestation
// (the window in which QEMU itself blocks nothing: no SEV migration blocker before `cont`).
// 1. Negotiation and request checks answer exactly as QEMU does (same input sent directly to a
//    second monitor; only harmless input goes there).
// 2. The corpus: every refused command as execute and exec-oob, the same through HMP (leading
//    spaces, tabs, aliases), duplicate keys either way, single quotes, unicode-escaped names, a
//    message split over many writes and several in one write, oversize and deep input: each gets
//    an error reply, and none has any effect (files absent, query-migrate empty, migration
//    capabilities and parameters unchanged, no snapshot in the image, still prelaunch).
// 3. Allowed commands behave through the proxy exactly as directly; a disk-only internal snapshot
//    works; events reach every client.
// Runs files one at a time (vitest integration project); stop() never leaves QEMU behind.
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QMP_COMMANDS } from '../../src/policy/qmp-policy.js';
import { WireClient, errorDesc, type WireMessage } from '../../test/support/qmp-wire-client.js';
import { ACCEL, MISSING, QEMU_IMG, run, startGuest, type Guest } from './guest.js';

const GDB_PORT = 47_123;

/** Messages that execute nothing in QEMU, before and after negotiation, sent both ways. */
const PRE_NEGOTIATION: readonly string[] = [
  '{"execute":"query-status","id":1}',
  '{"exec-oob":"yank","id":2}',
  '[1]',
  '{"execute":"qmp_capabilities","arguments":{"enable":["foo"]},"id":3}',
  '{"execute":"qmp_capabilities","arguments":{"enable":"oob"},"id":4}',
  '{"execute":"qmp_capabilities","arguments":{"x":1},"id":5}',
  '{"execute":"qmp_capabilities","arguments":{"enable":[1]},"id":6}',
  '{"execute":"qmp_capabilities","arguments":[],"id":7}',
  '{"execute":"qmp_capabilities","foo":1,"id":8}',
  '{"execute":"nonexist","id":9}',
  '{"id":10}',
  '{"execute":"qmp_capabilities","arguments":{"enable":["oob","oob"]},"id":{"a":[1,null]}}',
];
const POST_NEGOTIATION: readonly string[] = [
  '{"execute":"qmp_capabilities","id":11}',
  '{"execute":"qmp_capabilities","arguments":{"enable":["oob"]},"id":12}',
  '{"exec-oob":"qmp_capabilities","id":13}',
  '{"execute":"qmp_capabilities","arguments":{"y":1},"id":14}',
  '{"foo":1,"execute":1}',
  '{"x":1,"execute":1}',
  '{"execute":1,"arguments":[]}',
  '{"extra":1,"arguments":[]}',
  '{"a":1,"zz":2}',
  '{"zz":2,"a":1}',
  '{"arguments":5,"exec-oob":3}',
  '{"execute":"query-status","exec-oob":"x"}',
  '{"execute":"query-status","exec-oob":1}',
  '{"exec-oob":"query-status","arguments":[],"id":"q"}',
  '"just a string"',
  '42\n',
  'true\n',
];

/** Allowed commands: the same reply through the proxy as directly (ids restored). */
const ALLOWED: readonly Record<string, unknown>[] = [
  { execute: 'query-status', id: 'a' },
  { execute: 'query-sev', id: { k: [1, null] } },
  { execute: 'query-sev-launch-measure', id: 2 },
  { execute: 'qom-list', arguments: { path: '/machine' }, id: [3] },
  { execute: 'human-monitor-command', arguments: { 'command-line': 'info status' }, id: null },
  { execute: 'human-monitor-command', arguments: { 'command-line': ' \tinfo   status' } },
  { execute: 'query-version', id: 'v' },
  { execute: 'query-name' },
  { execute: 'query-block', id: 'b' },
  { execute: 'query-migrate', id: 'm' },
  { 'exec-oob': 'query-version', id: 'oob-not-supported' },
  { 'exec-oob': 'query-yank', id: 'oob-ok' },
  { execute: 'blockdev-set-active', id: 'not-in-7.2' },
  { execute: 'qom-get', arguments: { path: '/machine', property: 'nope' }, id: 'qom-error' },
  { execute: 'query-status', arguments: { x: 1 }, id: 'extra-arg' },
];

function argsFor(name: string, out: string): Record<string, unknown> {
  const file = (base: string): string => join(out, base);
  switch (name) {
    case 'migrate':
      return { uri: `exec:cat > ${file('migrate.bin')}` };
    case 'migrate-incoming':
      return { uri: `exec:cat ${file('incoming.bin')}` };
    case 'dump-guest-memory':
      return { paging: false, protocol: `file:${file('dump.elf')}` };
    case 'memsave':
      return { val: 0, size: 4096, filename: file('memsave.bin') };
    case 'pmemsave':
      return { val: 0, size: 4096, filename: file('pmemsave.bin') };
    case 'xen-save-devices-state':
      return { filename: file('xen.bin') };
    case 'xen-load-devices-state':
      return { filename: file('xen.bin') };
    case 'snapshot-save':
    case 'snapshot-load':
    case 'snapshot-delete':
      return { 'job-id': `${name}-job`, tag: 'vmsnap', vmstate: 'disk0', devices: ['disk0'] };
    case 'screendump':
      return { filename: file('screen.ppm') };
    case 'migrate-set-capabilities':
      return { capabilities: [{ capability: 'events', state: true }] };
    case 'migrate-set-parameters':
      return { 'max-bandwidth': 12345 };
    case 'client_migrate_info':
      return { protocol: 'spice', hostname: 'localhost' };
    case 'sev-inject-launch-secret':
      return { 'packet-header': '', secret: '' };
    default:
      return {};
  }
}

/** Files any refused command would have written. */
const OUTPUT_FILES = [
  'migrate.bin',
  'dump.elf',
  'memsave.bin',
  'pmemsave.bin',
  'xen.bin',
  'screen.ppm',
  'hmp-migrate.bin',
  'hmp-dump.elf',
  'hmp-memsave.bin',
  'hmp-pmemsave.bin',
  'split.bin',
  'batch1.bin',
  'batch2.bin',
  'dup1.bin',
  'dup2.bin',
  'dup3.bin',
  'single.bin',
  'uni1.bin',
  'uni2.bin',
  'uni3.bin',
  'big.bin',
  'deep.bin',
];

function hmpLines(out: string): string[] {
  const file = (base: string): string => join(out, base);
  return [
    'savevm hmp1',
    '   savevm hmp2',
    '\tsavevm hmp3',
    ' \t savevm hmp4',
    'loadvm hmp1',
    'delvm hmp1',
    `migrate -d exec:cat>${file('hmp-migrate.bin')}`,
    `  migrate exec:cat>${file('hmp-migrate.bin')}`,
    `dump-guest-memory ${file('hmp-dump.elf')}`,
    `memsave 0 4096 ${file('hmp-memsave.bin')}`,
    `\tpmemsave 0 4096 ${file('hmp-pmemsave.bin')}`,
    'c',
    'cont',
    '  c',
    '\tcont',
    'x /4x 0',
    'xp /4x 0',
    'sum 0 16',
    'gva2gpa 0',
    'gpa2hva 0',
    `gdbserver tcp::${GDB_PORT}`,
    'info mem',
    'info registers',
    'info tlb',
    '  info\tregisters',
    'migrate_set_parameter max-bandwidth 1',
    'migrate_set_capability events on',
    'snapshot_blkdev_internal disk0 hmpsnap',
    'p $pc',
    'print $pc',
    'q',
    'quit',
    ' \tq',
  ];
}

/** Every refusal and every malformed input of the corpus, as the exact bytes to send. */
function corpus(out: string): { what: string; wire: string | readonly string[] }[] {
  const file = (base: string): string => join(out, base);
  const items: { what: string; wire: string | readonly string[] }[] = [];
  const refused = [...QMP_COMMANDS].filter(([, cls]) => cls.verdict === 'refused').map(([name]) => name);
  for (const member of ['execute', 'exec-oob']) {
    for (const name of refused)
      items.push({
        what: `${member} ${name}`,
        wire: JSON.stringify({ [member]: name, arguments: argsFor(name, out), id: `${member}:${name}` }),
      });
    items.push({ what: `${member} cont (held)`, wire: JSON.stringify({ [member]: 'cont', id: 'cont' }) });
  }
  for (const line of hmpLines(out)) {
    for (const member of ['execute', 'exec-oob']) {
      items.push({
        what: `${member} hmp ${JSON.stringify(line)}`,
        wire: JSON.stringify({ [member]: 'human-monitor-command', arguments: { 'command-line': line }, id: line }),
      });
    }
  }
  const mig = (base: string): string => JSON.stringify(`exec:cat > ${file(base)}`);
  items.push(
    {
      what: 'duplicate execute, dangerous last',
      wire: `{"execute":"query-status","execute":"migrate","arguments":{"uri":${mig('dup1.bin')}}}`,
    },
    {
      what: 'duplicate execute, dangerous first',
      wire: `{"execute":"migrate","execute":"query-status","arguments":{"uri":${mig('dup2.bin')}}}`,
    },
    {
      what: 'duplicate through an escape',
      wire: `{"execute":"query-status","exe\\u0063ute":"migrate","arguments":{"uri":${mig('dup3.bin')}}}`,
    },
    {
      what: 'duplicate hmp command-line',
      wire: `{"execute":"human-monitor-command","arguments":{"command-line":"info status","command-line":"savevm dup"}}`,
    },
    { what: 'single quotes', wire: `{'execute':'migrate','arguments':{'uri':'exec:cat > ${file('single.bin')}'}}` },
    { what: 'single-quoted hmp', wire: `{'execute':'human-monitor-command','arguments':{'command-line':'savevm sq'}}` },
    { what: 'unicode-escaped migrate', wire: `{"execute":"\\u006d\\u0069\\u0067rate","arguments":{"uri":${mig('uni1.bin')}},"id":"u1"}` },
    {
      what: 'unicode-escaped dump',
      wire: `{"execute":"dump\\u002dguest\\u002dmemory","arguments":{"paging":false,"protocol":"file:${file('uni2.bin')}"},"id":"u2"}`,
    },
    {
      what: 'unicode-escaped hmp line',
      wire: `{"execute":"human-monitor-command","arguments":{"command-line":"\\u0073avevm\\u0020u3"},"id":"u3"}`,
    },
    {
      what: 'unicode-escaped hmp name',
      wire: `{"execute":"human\\u002dmonitor\\u002dcommand","arguments":{"command-line":"\\u0009pmemsave 0 16 ${file('uni3.bin')}"},"id":"u4"}`,
    },
    { what: 'unicode-escaped exec-oob', wire: `{"exec\\u002doob":"migrate\\u002dpause","id":"u5"}` },
  );
  const split = JSON.stringify({ execute: 'migrate', arguments: { uri: `exec:cat > ${file('split.bin')}` }, id: 'split' });
  items.push({ what: 'split over many writes', wire: split.match(/[\s\S]{1,3}/g) ?? [split] });
  return items;
}

async function expectErrorReply(client: WireClient, what: string): Promise<WireMessage> {
  const reply = await client.next(10_000);
  expect(Object.hasOwn(reply, 'error'), `${what}: ${JSON.stringify(reply)}`).toBe(true);
  return reply;
}

async function sendPieces(client: WireClient, wire: string | readonly string[]): Promise<void> {
  if (typeof wire === 'string') {
    client.write(wire);
    return;
  }
  for (const piece of wire) {
    client.write(piece);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Run `messages` on a fresh connection (no negotiation unless a message does it); all replies. */
async function exchange(path: string, messages: readonly string[], negotiate: boolean): Promise<WireMessage[]> {
  const client = await WireClient.connect(path);
  try {
    const replies: WireMessage[] = [await client.next()];
    if (negotiate) replies.push(await client.command({ execute: 'qmp_capabilities', arguments: { enable: ['oob'] } }));
    for (const message of messages) {
      client.write(message);
      replies.push(await client.next());
    }
    return replies;
  } finally {
    client.destroy();
    await client.closed;
  }
}

function tcpRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe.skipIf(MISSING !== undefined)(
  `the QMP proxy against real QEMU (${ACCEL})${MISSING ? ` (skipped: ${MISSING} missing)` : ''}`,
  () => {
    let guest: Guest;
    let before: { capabilities: unknown; parameters: unknown };

    beforeAll(async () => {
      guest = await startGuest();
      before = {
        capabilities: await guest.upstream.execute('query-migrate-capabilities'),
        parameters: await guest.upstream.execute('query-migrate-parameters'),
      };
    });
    afterAll(async () => {
      await guest?.stop();
    });

    it('greets and negotiates exactly as QEMU, and checks requests with the same texts', async () => {
      const viaProxy = await exchange(guest.proxyPath, [...PRE_NEGOTIATION, ...POST_NEGOTIATION], false);
      const direct = await exchange(guest.directPath, [...PRE_NEGOTIATION, ...POST_NEGOTIATION], false);
      expect(viaProxy).toEqual(direct);
      expect(viaProxy[0]).toEqual({ QMP: guest.upstream.greeting.QMP });
    });

    it('refuses the whole corpus, each with an error reply', async () => {
      const client = await WireClient.connect(guest.proxyPath);
      await client.next();
      await client.command({ execute: 'qmp_capabilities', arguments: { enable: ['oob'] } });
      const items = corpus(guest.out);
      for (const { what, wire } of items) {
        await sendPieces(client, wire);
        const reply = await expectErrorReply(client, what);
        const desc = String(errorDesc(reply));
        expect(desc, what).toMatch(/ refused by sevsup: [a-z-]+$|^JSON parse error, /);
        // Three malformed messages in a row end the connection: keep this one with a good one.
        if (desc.startsWith('JSON parse error')) expect(await client.command({ execute: 'query-status' })).toHaveProperty('return');
      }

      // Several in one write: every one answered, in order.
      const batch = [
        { execute: 'migrate', arguments: { uri: `exec:cat > ${join(guest.out, 'batch1.bin')}` }, id: 'b1' },
        { execute: 'pmemsave', arguments: { val: 0, size: 16, filename: join(guest.out, 'batch2.bin') }, id: 'b2' },
        { execute: 'query-status', id: 'b3' },
        { 'exec-oob': 'migrate-recover', arguments: { uri: 'exec:true' }, id: 'b4' },
        { execute: 'human-monitor-command', arguments: { 'command-line': '\tsavevm b5' }, id: 'b5' },
      ];
      client.write(batch.map((m) => JSON.stringify(m)).join(''));
      const replies = await client.nextN(batch.length);
      expect(replies.map((r) => r['id']).sort()).toEqual(['b1', 'b2', 'b3', 'b4', 'b5']);
      expect(replies.filter((r) => Object.hasOwn(r, 'return')).map((r) => r['id'])).toEqual(['b3']);

      // Oversize and deep input: a parse error each (a good message in between keeps the client).
      const mig = (base: string): string => `exec:cat > ${join(guest.out, base)}`;
      client.write(JSON.stringify({ execute: 'migrate', arguments: { uri: mig('big.bin'), pad: 'a'.repeat(2 * 1024 * 1024) } }));
      expect(await expectErrorReply(client, 'oversize')).toEqual({
        error: { class: 'GenericError', desc: expect.stringMatching(/^JSON parse error, /) },
      });
      expect(await client.command({ execute: 'query-status', id: 'alive' })).toMatchObject({ id: 'alive' });
      client.write(`{"execute":"migrate","arguments":{"uri":${JSON.stringify(mig('deep.bin'))},"x":${'['.repeat(200)}${']'.repeat(200)}}}`);
      expect(await expectErrorReply(client, 'deep')).toEqual({
        error: { class: 'GenericError', desc: expect.stringMatching(/^JSON parse error, /) },
      });
      expect(await client.command({ execute: 'query-status', id: 'still' })).toMatchObject({
        id: 'still',
        return: { status: 'prelaunch' },
      });
      client.destroy();
    });

    it('none of it had any effect', async () => {
      for (const base of OUTPUT_FILES) expect(existsSync(join(guest.out, base)), base).toBe(false);
      expect(await guest.upstream.execute('query-migrate')).toEqual({});
      expect(await guest.upstream.execute('query-migrate-capabilities')).toEqual(before.capabilities);
      expect(await guest.upstream.execute('query-migrate-parameters')).toEqual(before.parameters);
      expect(await guest.upstream.execute('query-jobs')).toEqual([]);
      expect(await guest.upstream.execute('query-status')).toMatchObject({ status: 'prelaunch', running: false });
      const snapshots = await run(QEMU_IMG, ['snapshot', '-U', '-l', guest.disk]);
      expect(snapshots).toEqual({ code: 0, stdout: '', stderr: '' });
      expect(await tcpRefused(GDB_PORT)).toBe(true);
      expect(guest.child.exitCode).toBeNull();
      // Every refusal was audited with its reason code and this process as the peer.
      const refusals = Object.values(guest.proxy.refusals()).reduce((a, b) => a + b, 0);
      expect(refusals).toBeGreaterThan(150);
      // Past a burst per window the lines are counted instead, and the count is logged when the
      // window ends (proxy-server LOG_BURST/LOG_WINDOW_MS): every refusal is accounted for.
      const accounted = (): number =>
        guest.logs.filter((l) => l['msg'] === 'qmp command refused').length +
        guest.logs.filter((l) => l['kind'] === 'refused').reduce((sum, l) => sum + Number(l['suppressed']), 0);
      const deadline = Date.now() + 20_000;
      while (accounted() < refusals && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(accounted()).toBe(refusals);
      const lines = guest.logs.filter((l) => l['msg'] === 'qmp command refused');
      expect(lines[0]).toMatchObject({ vm: 'vm1', code: 'SUP_ERR_PROXY_REFUSED', vmState: 'held', peerPid: process.pid });
    });

    it('answers allowed commands through the proxy exactly as QEMU does directly', async () => {
      const texts = ALLOWED.map((m) => JSON.stringify(m));
      const viaProxy = await exchange(guest.proxyPath, texts, true);
      const direct = await exchange(guest.directPath, texts, true);
      expect(viaProxy).toEqual(direct);
      expect(viaProxy[6]).toEqual({ return: 'VM status: paused (prelaunch)\r\n', id: null });
    });

    it('takes a disk-only internal snapshot through the proxy (and qemu-img sees it)', async () => {
      const { client } = await WireClient.negotiated(guest.proxyPath);
      expect(
        await client.command({ execute: 'blockdev-snapshot-internal-sync', arguments: { device: 'disk0', name: 'disk-only' }, id: 's' }),
      ).toEqual({ return: {}, id: 's' });
      client.destroy();
      const list = await run(QEMU_IMG, ['snapshot', '-U', '-l', guest.disk]);
      expect(list.stdout).toMatch(/^1\s+disk-only\s+0 B\s/m);
      expect(list.stdout.trim().split('\n')).toHaveLength(3);
    });

    it('delivers events to every negotiated client (RESET from system_reset; the guest stays paused)', async () => {
      const clients = await Promise.all([1, 2, 3].map(() => WireClient.negotiated(guest.proxyPath)));
      const [first] = clients;
      expect(await first?.client.command({ execute: 'system_reset', id: 'r' })).toEqual({ return: {}, id: 'r' });
      for (const { client } of clients) {
        expect(await client.nextEvent()).toMatchObject({ event: 'RESET', data: { guest: false, reason: 'host-qmp-system-reset' } });
        client.destroy();
      }
      expect(await guest.upstream.execute('query-status')).toMatchObject({ status: 'prelaunch' });
    });
  },
);
