// The hostile corpus of issue 9, against the real QEMU 7.2 (paused, held): each attack goes
// through the proxy and must be refused with its reason, and its side effect is checked on the
// host and in QEMU (files created or truncated, `qemu-img info`, `query-block`, QOM state, trace
// state, fd sets, the process). Where it is safe, the same input sent directly to QEMU shows the
// attack is real (the control), so a refusal here is not a command that would have failed anyway.
// Also: an exec-oob flood from two clients does not starve sevsup's own commands, and a client
// that sends a refused command and exits at once is still named in the audit line.
// Runs files one at a time (vitest integration project); stop() never leaves QEMU behind.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WireClient, errorDesc, type WireMessage } from '../../test/support/qmp-wire-client.js';
import { ACCEL, MISSING, QEMU_IMG, run, startGuest, type Guest } from './guest.js';

interface Attack {
  readonly what: string;
  readonly message: Record<string, unknown>;
  readonly reason: string;
}

const hmp = (line: string): Record<string, unknown> => ({ execute: 'human-monitor-command', arguments: { 'command-line': line } });

function attacks(out: string, victim: string, other: string): Attack[] {
  const file = (base: string): string => join(out, base);
  const tx = (...actions: unknown[]): Record<string, unknown> => ({ execute: 'transaction', arguments: { actions } });
  const dev = (args: Record<string, unknown>): Record<string, unknown> => ({ execute: 'device_add', arguments: args });
  const qomSet = (path: string, property: string, value: unknown): Record<string, unknown> => ({
    execute: 'qom-set',
    arguments: { path, property, value },
  });
  return [
    // 1. transaction runs each action with the verdict of its command alone.
    {
      what: 'tx drive-backup creates a host file',
      reason: 'host-access',
      message: tx({ type: 'drive-backup', data: { device: 'disk0', target: file('tx-backup.raw'), format: 'raw', sync: 'full' } }),
    },
    {
      what: 'tx drive-backup truncates another file',
      reason: 'host-access',
      message: tx({ type: 'drive-backup', data: { device: 'disk0', target: victim, format: 'raw', sync: 'full', mode: 'existing' } }),
    },
    {
      what: 'tx snapshot-sync makes another image the disk',
      reason: 'host-access',
      message: tx({
        type: 'blockdev-snapshot-sync',
        data: { 'node-name': 'disk0', 'snapshot-file': other, 'snapshot-node-name': 'ov', mode: 'existing', format: 'qcow2' },
      }),
    },
    {
      what: 'tx allowed action then drive-backup',
      reason: 'host-access',
      message: tx(
        { type: 'block-dirty-bitmap-add', data: { node: 'disk0', name: 'bm' } },
        { type: 'drive-backup', data: { device: 'disk0', target: file('tx-backup2.raw'), format: 'raw', sync: 'full' } },
      ),
    },
    {
      what: 'tx abort then drive-backup',
      reason: 'host-access',
      message: tx(
        { type: 'abort', data: {} },
        { type: 'drive-backup', data: { device: 'disk0', target: file('tx-backup3.raw'), format: 'raw', sync: 'full' } },
      ),
    },
    { what: 'tx unknown action type', reason: 'unknown', message: tx({ type: 'x-future-action', data: {} }) },
    { what: 'tx nested transaction', reason: 'unknown', message: tx({ type: 'transaction', data: { actions: [] } }) },
    { what: 'tx action without data object', reason: 'bad-message', message: tx({ type: 'drive-backup', data: 'x' }) },
    // 2. arguments that make QEMU open, create or rewrite a host path.
    {
      what: 'block-stream backing-file',
      reason: 'host-access',
      message: { execute: 'block-stream', arguments: { device: 'disk0', 'backing-file': '/etc/shadow' } },
    },
    {
      what: 'block-commit backing-file',
      reason: 'host-access',
      message: { execute: 'block-commit', arguments: { device: 'disk0', 'backing-file': '/etc/shadow' } },
    },
    { what: 'screendump', reason: 'screen', message: { execute: 'screendump', arguments: { filename: file('screen.ppm') } } },
    {
      what: 'display-update vnc unix socket',
      reason: 'host-access',
      message: { execute: 'display-update', arguments: { type: 'vnc', addresses: [{ type: 'unix', path: file('vnc.sock') }] } },
    },
    {
      what: 'drive-mirror target',
      reason: 'host-access',
      message: { execute: 'drive-mirror', arguments: { device: 'disk0', target: file('mirror.raw'), format: 'raw', sync: 'full' } },
    },
    {
      what: 'blockdev-snapshot-sync alone',
      reason: 'host-access',
      message: {
        execute: 'blockdev-snapshot-sync',
        arguments: { 'node-name': 'disk0', 'snapshot-file': file('snap.qcow2'), format: 'qcow2' },
      },
    },
    // 4. QEMU-side tracing and logging.
    {
      what: 'trace-event-set-state *',
      reason: 'tracing',
      message: { execute: 'trace-event-set-state', arguments: { name: '*', enable: true } },
    },
    {
      what: 'trace-event-set-state launch secret',
      reason: 'tracing',
      message: { execute: 'trace-event-set-state', arguments: { name: 'qmp_enter_sev_inject_launch_secret', enable: true } },
    },
    {
      what: 'exec-oob trace-event-set-state',
      reason: 'tracing',
      message: { 'exec-oob': 'trace-event-set-state', arguments: { name: '*', enable: true } },
    },
    { what: 'HMP trace-event', reason: 'tracing', message: hmp('trace-event * on') },
    { what: 'HMP log', reason: 'tracing', message: hmp('log all') },
    { what: 'HMP logfile', reason: 'tracing', message: hmp(`logfile ${file('qemu-debug.log')}`) },
    { what: 'HMP trace-file', reason: 'tracing', message: hmp(`trace-file set ${file('trace.bin')}`) },
    // 10. qom-set.
    { what: 'qom-set realized', reason: 'qom-property', message: qomSet('/machine/peripheral/vblk0', 'realized', false) },
    { what: 'qom-set romfile', reason: 'host-access', message: qomSet('/machine/peripheral/vblk0', 'romfile', '/etc/passwd') },
    { what: 'qom-set sev0 policy', reason: 'qom-property', message: qomSet('/objects/sev0', 'policy', 0) },
    { what: 'qom-set sev0 by partial path', reason: 'qom-property', message: qomSet('sev0', 'handle', 1) },
    {
      what: 'qom-set via confidential-guest-support link',
      reason: 'qom-property',
      message: qomSet('/machine/confidential-guest-support', 'policy', 0),
    },
    { what: 'qom-set RAM back-end dump', reason: 'qom-property', message: qomSet('/objects/pc.ram', 'dump', true) },
    { what: 'qom-set RAM back-end, doubled slashes', reason: 'qom-property', message: qomSet('//objects//pc.ram', 'merge', false) },
    { what: 'object-del of the RAM back-end', reason: 'qom-property', message: { execute: 'object-del', arguments: { id: 'pc.ram' } } },
    { what: 'object-del of the SEV object', reason: 'qom-property', message: { execute: 'object-del', arguments: { id: 'sev0' } } },
    // 11. fd passing, guest register state, drivers that open host files.
    { what: 'getfd', reason: 'fd-passing', message: { execute: 'getfd', arguments: { fdname: 'x' } } },
    { what: 'add-fd', reason: 'fd-passing', message: { execute: 'add-fd', arguments: {} } },
    { what: 'closefd', reason: 'fd-passing', message: { execute: 'closefd', arguments: { fdname: 'x' } } },
    { what: 'remove-fd', reason: 'fd-passing', message: { execute: 'remove-fd', arguments: { 'fdset-id': 0 } } },
    { what: 'HMP info lapic', reason: 'memory-dump', message: hmp('info lapic') },
    { what: 'HMP info pic', reason: 'memory-dump', message: hmp('info pic') },
    {
      what: 'guest-loader',
      reason: 'host-access',
      message: dev({ driver: 'guest-loader', id: 'gl', kernel: '/etc/passwd', addr: 1048576 }),
    },
    { what: 'usb-mtp rootdir', reason: 'host-access', message: dev({ driver: 'usb-mtp', id: 'mtp', rootdir: '/' }) },
    { what: 'usb-host', reason: 'host-access', message: dev({ driver: 'usb-host', id: 'uh', hostbus: 1, hostaddr: 1 }) },
    { what: 'u2f-passthru', reason: 'host-access', message: dev({ driver: 'u2f-passthru', id: 'u2f', hidraw: '/dev/hidraw0' }) },
    { what: 'vhost-vsock-pci', reason: 'host-access', message: dev({ driver: 'vhost-vsock-pci', id: 'vs', 'guest-cid': 3 }) },
    { what: 'vhost-scsi-pci', reason: 'host-access', message: dev({ driver: 'vhost-scsi-pci', id: 'vsc', wwpn: 'naa.500140512345678' }) },
    { what: 'e1000 romfile', reason: 'host-access', message: dev({ driver: 'e1000', id: 'nic9', romfile: '/etc/passwd' }) },
    { what: 'virtio-net vhostfd', reason: 'host-access', message: dev({ driver: 'virtio-net-pci', id: 'nic8', vhostfd: '0' }) },
  ];
}

/** Files the attacks would have created. */
const CREATED = [
  'tx-backup.raw',
  'tx-backup2.raw',
  'tx-backup3.raw',
  'screen.ppm',
  'vnc.sock',
  'mirror.raw',
  'snap.qcow2',
  'qemu-debug.log',
  'trace.bin',
];

async function traceStates(guest: Guest): Promise<Map<string, string>> {
  const events = (await guest.upstream.execute('trace-event-get-state', { name: '*' })) as { name: string; state: string }[];
  return new Map(events.map((e) => [e.name, e.state]));
}

async function peripherals(guest: Guest): Promise<string[]> {
  const list = (await guest.upstream.execute('qom-list', { path: '/machine/peripheral' })) as { name: string }[];
  return list.map((p) => p.name).sort();
}

describe.skipIf(MISSING !== undefined)(
  `the hostile corpus of issue 9 against real QEMU (${ACCEL})${MISSING ? ` (skipped: ${MISSING} missing)` : ''}`,
  () => {
    let guest: Guest;
    let victim: string;
    let other: string;
    const VICTIM_TEXT = '{"measurement":"another guest\'s record"}\n';
    let before: {
      block: unknown;
      fdsets: unknown;
      peripherals: string[];
      ramDump: unknown;
      traces: Map<string, string>;
      diskInfo: string;
      otherInfo: string;
    };

    beforeAll(async () => {
      guest = await startGuest();
      victim = join(guest.out, 'victim.json');
      other = join(guest.dir, 'other.qcow2');
      await writeFile(victim, VICTIM_TEXT);
      expect((await run(QEMU_IMG, ['create', '-q', '-f', 'qcow2', other, '16M'])).code).toBe(0);
      before = {
        block: await guest.upstream.execute('query-block'),
        fdsets: await guest.upstream.execute('query-fdsets'),
        peripherals: await peripherals(guest),
        ramDump: await guest.upstream.execute('qom-get', { path: '/objects/pc.ram', property: 'dump' }),
        traces: await traceStates(guest),
        diskInfo: (await run(QEMU_IMG, ['info', '-U', guest.disk])).stdout,
        otherInfo: (await run(QEMU_IMG, ['info', '-U', other])).stdout,
      };
    });
    afterAll(async () => {
      await guest?.stop();
    });

    it('refuses every attack with its reason', async () => {
      const client = (await WireClient.negotiated(guest.proxyPath, true)).client;
      try {
        for (const attack of attacks(guest.out, victim, other)) {
          const reply: WireMessage = await client.command({ ...attack.message, id: attack.what });
          expect(reply, attack.what).toMatchObject({ id: attack.what });
          expect(String(errorDesc(reply)), attack.what).toMatch(new RegExp(` refused by sevsup: ${attack.reason}$`));
        }
      } finally {
        client.destroy();
      }
    });

    it('none of it had any effect on the host or in QEMU', async () => {
      for (const base of CREATED) expect(existsSync(join(guest.out, base)), base).toBe(false);
      expect(await readFile(victim, 'utf8')).toBe(VICTIM_TEXT);
      expect(await guest.upstream.execute('query-block')).toEqual(before.block);
      expect((await run(QEMU_IMG, ['info', '-U', guest.disk])).stdout).toBe(before.diskInfo);
      expect((await run(QEMU_IMG, ['info', '-U', other])).stdout).toBe(before.otherInfo);
      expect(before.diskInfo).not.toContain('backing file');
      expect(await guest.upstream.execute('query-fdsets')).toEqual(before.fdsets);
      expect(await peripherals(guest)).toEqual(before.peripherals);
      expect(await guest.upstream.execute('qom-get', { path: '/machine/peripheral/vblk0', property: 'realized' })).toBe(true);
      expect(await guest.upstream.execute('qom-get', { path: '/objects/pc.ram', property: 'dump' })).toEqual(before.ramDump);
      expect(await traceStates(guest)).toEqual(before.traces);
      expect([...before.traces.values()].filter((state) => state === 'enabled')).toEqual([]);
      expect(await guest.upstream.execute('query-jobs')).toEqual([]);
      expect(await guest.upstream.execute('query-status')).toMatchObject({ status: 'prelaunch', running: false });
      expect(guest.child.exitCode).toBeNull();
    });

    it('controls: the same input sent directly to QEMU does what it was refused for', async () => {
      const direct = (await WireClient.negotiated(guest.directPath)).client;
      try {
        // A transaction with drive-backup creates a host file as QEMU's user.
        const target = join(guest.out, 'control-backup.raw');
        const reply = await direct.command({
          execute: 'transaction',
          arguments: {
            actions: [{ type: 'drive-backup', data: { device: 'disk0', 'job-id': 'ctl', target, format: 'raw', sync: 'full' } }],
          },
        });
        expect(reply, JSON.stringify(reply)).toHaveProperty('return');
        expect((await stat(target)).isFile()).toBe(true);
        await direct.command({ execute: 'block-job-cancel', arguments: { device: 'ctl', force: true } });
        // trace-event-set-state turns a trace point on; off again at once.
        const name = 'qmp_enter_query_status';
        expect(await direct.command({ execute: 'trace-event-set-state', arguments: { name, enable: true } })).toHaveProperty('return');
        expect((await traceStates(guest)).get(name)).toBe('enabled');
        expect(await direct.command({ execute: 'trace-event-set-state', arguments: { name, enable: false } })).toHaveProperty('return');
        expect((await traceStates(guest)).get(name)).toBe('disabled');
      } finally {
        direct.destroy();
      }
    });

    it("an exec-oob flood from two clients leaves sevsup's own commands answered", async () => {
      const flooders = [
        (await WireClient.negotiated(guest.proxyPath, true)).client,
        (await WireClient.negotiated(guest.proxyPath, true)).client,
      ];
      // Far past the proxy's queue limit (64 per client), so backpressure is on from the start; the
      // check below proves the flood still in flight when sevsup's own commands were all answered.
      const N = 1000;
      try {
        const burst = Array.from({ length: N }, (_v, i) =>
          JSON.stringify({ 'exec-oob': 'yank', arguments: { instances: [] }, id: i }),
        ).join('');
        for (const c of flooders) c.write(burst);
        // The supervisor's own commands, meanwhile, with the default reply timeout.
        for (let i = 0; i < 20; i++) expect(await guest.upstream.execute('query-status')).toMatchObject({ status: 'prelaunch' });
        // Greeting and capabilities reply, then fewer than N answers: each flood is still going.
        for (const c of flooders) expect(c.all.length).toBeLessThan(2 + N);
        for (const c of flooders) {
          const replies = await c.nextN(N, 120_000);
          expect(
            replies.every((r) => Object.hasOwn(r, 'return')),
            'every yank answered',
          ).toBe(true);
        }
      } finally {
        for (const c of flooders) c.destroy();
      }
      expect(guest.proxy.stats().forwarded).toBeGreaterThanOrEqual(2 * N);
    });

    it('names a client that sends a refused command and exits at once', async () => {
      const script = `
      const s = require('node:net').createConnection(process.argv[1], () => {
        s.write('{"execute":"qmp_capabilities"}{"execute":"trace-event-set-state","arguments":{"name":"*","enable":true}}', () => process.exit(0));
      });`;
      const child = spawn(process.execPath, ['-e', script, guest.proxyPath], { stdio: 'ignore' });
      await new Promise((resolve) => child.once('exit', resolve));
      const deadline = Date.now() + 10_000;
      const mine = (): Record<string, unknown> | undefined =>
        guest.logs.find((l) => l['msg'] === 'qmp command refused' && l['peerPid'] === child.pid);
      while (mine() === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(mine(), JSON.stringify(guest.logs.slice(-5))).toMatchObject({
        command: 'trace-event-set-state',
        reason: 'tracing',
        peerUid: process.geteuid?.(),
      });
      expect([...(await traceStates(guest)).values()].filter((state) => state === 'enabled')).toEqual([]);
    });
  },
);
