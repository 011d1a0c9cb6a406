// The daemon's routes of the control API over a real unix socket with an in-test ControlTarget:
// the route table, body narrowing with exact messages, the NDJSON event stream (and cutting off a
// client that does not read), /metrics, latency callbacks, and what `sevsup run`'s socket lacks.
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { callControl } from '../../../src/api/client.js';
import { matchRoute } from '../../../src/api/routes.js';
import {
  MAX_EVENT_BACKLOG_BYTES,
  startControlServer,
  type ControlServer,
  type ControlTarget,
  type StreamEvent,
} from '../../../src/api/server.js';
import type { VmStatus } from '../../../src/api/types.js';
import { SupervisorError } from '../../../src/errors.js';

const STATUS: VmStatus = {
  vm: 'web',
  state: 'running',
  platform: 'simulated',
  sev: true,
  pid: 77,
  record: null,
  holdDeadline: null,
  secretsInjected: 0,
  error: null,
};

let dir: string;
let server: ControlServer | undefined;
const calls: unknown[] = [];
const listeners = new Set<(e: StreamEvent) => void>();
const answered: string[] = [];

const daemonTarget: ControlTarget = {
  status: (vm) => (vm === 'web' ? STATUS : undefined),
  measurement: async () => null,
  attest: async (vm, req) => ({ vm, action: req.action, state: 'running' }),
  list: () => ({ vms: [STATUS], configErrors: [{ file: '/etc/sevsup/vms/bad.conf', code: 'SUP_ERR_CONFIG_BAD_VALUE', message: 'bad' }] }),
  start: async (vm) => {
    calls.push(['start', vm]);
    return STATUS;
  },
  stop: async (vm, req) => {
    calls.push(['stop', vm, req]);
    return { ...STATUS, state: 'stopped', pid: null };
  },
  records: async () => [{ name: '2026-11-26T10-00-00.000Z', path: '/x.json' }],
  record: async () => null,
  snapshot: async (vm, req) => {
    if (req.vmstate) throw new SupervisorError('SUP_ERR_SNAPSHOT_VMSTATE');
    return { vm, name: req.name, via: 'qmp', disks: ['/srv/web.qcow2'] };
  },
  migrate: async () => {
    throw new SupervisorError('SUP_ERR_MIGRATE_SEV');
  },
  subscribe: (fn) => {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  metrics: async () => ({ contentType: 'text/plain; version=0.0.4', body: 'sevsup_guests{state="running"} 1\n' }),
};

function raw(socketPath: string, method: string, path: string, body?: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          body: (res.headers['content-type'] ?? '').startsWith('application/json') ? JSON.parse(text) : text,
        });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function serve(target: ControlTarget): Promise<string> {
  const socketPath = join(dir, `api-${Math.random().toString(36).slice(2)}.sock`);
  server = await startControlServer({ socketPath, target, onAnswered: (route) => answered.push(route) });
  return socketPath;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sapi-'));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  calls.length = 0;
  answered.length = 0;
  listeners.clear();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('matchRoute', () => {
  it.each([
    ['GET', '/v1/vms', { kind: 'list' }],
    ['GET', '/v1/vms/web', { kind: 'status', vm: 'web' }],
    ['POST', '/v1/vms/web/start', { kind: 'start', vm: 'web' }],
    ['POST', '/v1/vms/web/stop', { kind: 'stop', vm: 'web' }],
    ['GET', '/v1/vms/web/measurements', { kind: 'records', vm: 'web' }],
    ['GET', '/v1/vms/web/measurements/latest', { kind: 'record', vm: 'web', name: 'latest' }],
    ['POST', '/v1/vms/web/snapshot', { kind: 'snapshot', vm: 'web' }],
    ['POST', '/v1/vms/web/migrate', { kind: 'migrate', vm: 'web' }],
    ['GET', '/v1/events', { kind: 'events', vm: null }],
    ['GET', '/v1/events?vm=web', { kind: 'events', vm: 'web' }],
    ['GET', '/metrics', { kind: 'metrics' }],
    ['GET', '/v1/vms/a%20b', { kind: 'status', vm: 'a b' }],
  ])('%s %s', (method, url, route) => {
    expect(matchRoute(method, url)).toEqual(route);
  });

  it.each([
    ['GET', '/v1/vms/web/start', 'SUP_ERR_API_NOT_FOUND', 'no API route GET /v1/vms/web/start (use POST)'],
    ['POST', '/v1/vms', 'SUP_ERR_API_NOT_FOUND', 'no API route POST /v1/vms (use GET)'],
    ['GET', '/v1/vms/web/measurements/a/b', 'SUP_ERR_API_NOT_FOUND', 'no API route GET /v1/vms/web/measurements/a/b'],
    ['GET', '/v1/vms/web/reboot', 'SUP_ERR_API_NOT_FOUND', 'no API route GET /v1/vms/web/reboot'],
    ['GET', '/v1/events?vm=a&x=1', 'SUP_ERR_API_BAD_REQUEST', 'events query vm=a&x=1: only ?vm=NAME is supported'],
  ])('refuses %s %s', (method, url, code, message) => {
    expect(() => matchRoute(method, url)).toThrow(expect.objectContaining({ code, message }));
  });
});

describe('daemon routes', () => {
  it('lists, starts (empty body) and stops (force)', async () => {
    const socketPath = await serve(daemonTarget);
    expect(await raw(socketPath, 'GET', '/v1/vms')).toEqual({ status: 200, body: daemonTarget.list?.() });
    expect(await raw(socketPath, 'POST', '/v1/vms/web/start')).toEqual({ status: 200, body: STATUS });
    expect(await raw(socketPath, 'POST', '/v1/vms/web/stop', '{"force":true}')).toMatchObject({ status: 200, body: { state: 'stopped' } });
    expect(calls).toEqual([
      ['start', 'web'],
      ['stop', 'web', { force: true }],
    ]);
    expect(answered).toEqual(['list', 'start', 'stop']);
  });

  it('the client waits for a slow reply (it never half-closes the connection)', async () => {
    const socketPath = await serve({
      ...daemonTarget,
      start: async () => new Promise((resolve) => setTimeout(() => resolve(STATUS), 300)),
    });
    expect(await callControl({ socketPath, method: 'POST', path: '/v1/vms/web/start', body: {} })).toEqual(STATUS);
  });

  it.each([
    ['/v1/vms/web/stop', '{"force":"yes"}', 'stop request: "force" must be true or false'],
    ['/v1/vms/web/stop', '{"now":true}', 'stop request: unexpected member "now"'],
    [
      '/v1/vms/web/snapshot',
      '{"name":"1"}',
      'snapshot request: "name" must be a letter followed by up to 63 letters, digits, ".", "_" or "-"',
    ],
    [
      '/v1/vms/web/snapshot',
      '{"name":"a/../b"}',
      'snapshot request: "name" must be a letter followed by up to 63 letters, digits, ".", "_" or "-"',
    ],
    ['/v1/vms/web/snapshot', '{"name":"s","vmstate":1}', 'snapshot request: "vmstate" must be true or false'],
    ['/v1/vms/web/snapshot', '', 'request body is not valid JSON (0 bytes)'],
    ['/v1/vms/web/migrate', '{"target":""}', 'migrate request: "target" must be a non-empty string of at most 4096 printable characters'],
    [
      '/v1/vms/web/migrate',
      '{"target":"/a\\nb"}',
      'migrate request: "target" must be a non-empty string of at most 4096 printable characters',
    ],
  ])('400s POST %s %s', async (path, body, message) => {
    const socketPath = await serve(daemonTarget);
    expect(await raw(socketPath, 'POST', path, body)).toEqual({ status: 400, body: { code: 'SUP_ERR_API_BAD_REQUEST', message } });
  });

  it("maps the seed's refusals to 409 with their texts", async () => {
    const socketPath = await serve(daemonTarget);
    expect(await raw(socketPath, 'POST', '/v1/vms/web/snapshot', '{"name":"s1","vmstate":true}')).toEqual({
      status: 409,
      body: {
        code: 'SUP_ERR_SNAPSHOT_VMSTATE',
        message: 'Snapshots that include memory are not supported while memory is encrypted by AMD SEV.',
      },
    });
    expect(await raw(socketPath, 'POST', '/v1/vms/web/migrate', '{"target":"tcp:h:1"}')).toEqual({
      status: 409,
      body: { code: 'SUP_ERR_MIGRATE_SEV', message: 'VMs with AMD SEV are not live migratable!' },
    });
    expect(await raw(socketPath, 'POST', '/v1/vms/nope/start')).toMatchObject({ status: 404, body: { code: 'SUP_ERR_VM_NOT_FOUND' } });
  });

  it('serves past records and says when one does not exist', async () => {
    const socketPath = await serve(daemonTarget);
    expect(await raw(socketPath, 'GET', '/v1/vms/web/measurements')).toEqual({
      status: 200,
      body: { vm: 'web', records: [{ name: '2026-11-26T10-00-00.000Z', path: '/x.json' }] },
    });
    expect(await raw(socketPath, 'GET', '/v1/vms/web/measurements/nope')).toEqual({
      status: 404,
      body: { code: 'SUP_ERR_VM_NOT_FOUND', message: 'VM web has no measurement record named "nope"' },
    });
  });

  it('serves /metrics as text', async () => {
    const socketPath = await serve(daemonTarget);
    expect(await raw(socketPath, 'GET', '/metrics')).toEqual({ status: 200, body: 'sevsup_guests{state="running"} 1\n' });
  });

  it('streams events as NDJSON after a "subscribed" line, until the client leaves', async () => {
    const socketPath = await serve(daemonTarget);
    const lines: unknown[] = [];
    await new Promise<void>((resolve, reject) => {
      const req = request({ socketPath, method: 'GET', path: '/v1/events?vm=web' }, (res) => {
        expect(res.headers['content-type']).toBe('application/x-ndjson');
        let buffered = '';
        res.on('data', (c: Buffer) => {
          buffered += c.toString('utf8');
          const parts = buffered.split('\n');
          buffered = parts.pop() ?? '';
          for (const p of parts) lines.push(JSON.parse(p));
          if (lines.length === 1) for (const l of listeners) l({ event: 'held', vm: 'web', time: 't1' });
          if (lines.length === 2) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', reject);
      req.end();
    });
    expect(lines).toEqual([expect.objectContaining({ event: 'subscribed', vm: 'web' }), { event: 'held', vm: 'web', time: 't1' }]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(listeners.size).toBe(0);
  });

  it('cuts off an event client that does not read, and keeps answering others', async () => {
    const socketPath = await serve(daemonTarget);
    const req = request({ socketPath, method: 'GET', path: '/v1/events' });
    req.on('response', (res) => res.pause()); // never reads
    req.on('error', () => undefined);
    req.end();
    while (listeners.size === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const big = 'x'.repeat(64 * 1024);
    for (let i = 0; i < (MAX_EVENT_BACKLOG_BYTES / big.length) * 8 && listeners.size > 0; i += 1) {
      for (const l of [...listeners]) l({ event: 'noise', vm: null, time: big });
      await new Promise((resolve) => setImmediate(resolve));
    }
    // The server gave up on it (unsubscribed); a paused client only sees that once it reads.
    expect(listeners.size).toBe(0);
    req.destroy();
    expect(await callControl({ socketPath, method: 'GET', path: '/v1/vms/web' })).toEqual(STATUS);
  });

  it("`sevsup run`'s target (one guest) does not serve the daemon routes", async () => {
    const {
      list: _l,
      start: _s,
      stop: _t,
      records: _r,
      record: _c,
      snapshot: _n,
      migrate: _m,
      subscribe: _u,
      metrics: _x,
      ...runTarget
    } = daemonTarget;
    const socketPath = await serve(runTarget);
    expect(await raw(socketPath, 'GET', '/v1/vms')).toEqual({
      status: 404,
      body: {
        code: 'SUP_ERR_API_NOT_FOUND',
        message: "this socket does not serve list (it is `sevsup run`'s per-VM socket; the daemon's socket does)",
      },
    });
    expect(await raw(socketPath, 'GET', '/v1/vms/web')).toEqual({ status: 200, body: STATUS });
  });
});
