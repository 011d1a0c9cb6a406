// The control API over a real unix socket, with a plain in-test ControlTarget (no module mocks).
import { connect } from 'node:net';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SupervisorError } from '../../../src/errors.js';
import { callControl } from '../../../src/api/client.js';
import { MAX_BODY_BYTES, startControlServer, type ControlServer, type ControlTarget } from '../../../src/api/server.js';
import type { AttestRequest, VmStatus } from '../../../src/api/types.js';

let dir: string;
let server: ControlServer;
let socketPath: string;
let calls: AttestRequest[];
let attestError: unknown;

const STATUS: VmStatus = {
  vm: 'demo',
  state: 'held',
  platform: 'simulated',
  sev: true,
  pid: 1234,
  record: '/state/demo/measurements/x.json',
  holdDeadline: '2026-11-26T10:35:20.000Z',
  secretsInjected: 0,
  error: null,
};

const target: ControlTarget = {
  status: (vm) => (vm === 'demo' ? STATUS : undefined),
  measurement: async (vm) => (vm === 'demo' ? null : null),
  attest: async (vm, req) => {
    if (attestError !== undefined) throw attestError;
    calls.push(req);
    return { vm, action: req.action, state: 'running' };
  },
};

/** Raw HTTP exchange: status and parsed body. */
function raw(
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string | number> = {},
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-api-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  calls = [];
  attestError = undefined;
  socketPath = join(dir, 'control.sock');
  server = await startControlServer({ socketPath, target });
});
afterEach(async () => {
  await server.close();
});

describe('control API server', () => {
  it('listens with mode 0660 and removes the socket on close', async () => {
    expect((await stat(socketPath)).mode & 0o777).toBe(0o660);
    await server.close();
    await expect(stat(socketPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a second server on the same path', async () => {
    await expect(startControlServer({ socketPath, target })).rejects.toMatchObject({
      code: 'SUP_ERR_VM_STATE',
      message: `control socket ${socketPath} is already in use: another sevsup serves this VM`,
    });
  });

  it('serves status', async () => {
    expect(await raw('GET', '/v1/vms/demo')).toEqual({ status: 200, body: STATUS });
  });

  it('404s an unknown VM and an unknown route', async () => {
    expect(await raw('GET', '/v1/vms/other')).toEqual({
      status: 404,
      body: { code: 'SUP_ERR_VM_NOT_FOUND', message: 'no VM named "other" is served on this socket' },
    });
    expect(await raw('GET', '/v2/things')).toEqual({
      status: 404,
      body: { code: 'SUP_ERR_API_NOT_FOUND', message: 'no API route GET /v2/things' },
    });
    expect(await raw('GET', '/v1/vms/demo/attest')).toEqual({
      status: 404,
      body: { code: 'SUP_ERR_API_NOT_FOUND', message: 'no API route GET /v1/vms/demo/attest (use POST)' },
    });
    expect(await raw('GET', '/v1/vms/%E0%A4%A')).toEqual({
      status: 400,
      body: { code: 'SUP_ERR_API_BAD_REQUEST', message: 'request path segment %E0%A4%A is not valid percent-encoding' },
    });
  });

  it('says when there is no measurement record', async () => {
    expect(await raw('GET', '/v1/vms/demo/measurement')).toEqual({
      status: 409,
      body: { code: 'SUP_ERR_VM_STATE', message: 'VM demo has no measurement record (not an SEV guest, or not measured yet)' },
    });
  });

  it('passes a valid attest request to the target', async () => {
    const body = JSON.stringify({ action: 'inject-secret', packetHeader: 'AAAA', secret: 'QUJD', gpa: 8429568 });
    expect(await raw('POST', '/v1/vms/demo/attest', body)).toEqual({
      status: 200,
      body: { vm: 'demo', action: 'inject-secret', state: 'running' },
    });
    expect(calls).toEqual([{ action: 'inject-secret', packetHeader: 'AAAA', secret: 'QUJD', gpa: 8429568 }]);
  });

  it.each([
    ['{"action":', 'request body is not valid JSON (10 bytes)'],
    ['', 'request body is not valid JSON (0 bytes)'],
    ['[1]', 'attest request: the body must be a JSON object'],
    ['{"action":"cont"}', 'attest request: "action" must be "approve", "reject" or "inject-secret"'],
    ['{"action":"reject","force":true}', 'attest request: unexpected member "force" for action reject'],
    ['{"action":"approve","force":1}', 'attest request: "force" must be true when given'],
    ['{"action":"approve","peer":"uid=0"}', 'attest request: unexpected member "peer" for action approve'],
    ['{"action":"inject-secret","packetHeader":"AAAA","secret":"s3cr3t!!"}', 'attest request: "secret" must be non-empty base64'],
    ['{"action":"inject-secret","packetHeader":"","secret":"AAAA"}', 'attest request: "packetHeader" must be non-empty base64'],
    ['{"action":"inject-secret","packetHeader":"AAAA","secret":"AAAA","gpa":-1}', 'attest request: "gpa" must be a non-negative integer'],
    [
      '{"action":"inject-secret","packetHeader":"AAAA","secret":"AAAA","gpa":"0x100"}',
      'attest request: "gpa" must be a non-negative integer',
    ],
  ])('400s %s', async (body, message) => {
    expect(await raw('POST', '/v1/vms/demo/attest', body)).toEqual({ status: 400, body: { code: 'SUP_ERR_API_BAD_REQUEST', message } });
    expect(calls).toEqual([]);
  });

  it('passes force on, with the peer named by the server (never by the body)', async () => {
    expect(await raw('POST', '/v1/vms/demo/attest', '{"action":"approve","force":true}')).toMatchObject({ status: 200 });
    expect(calls).toEqual([{ action: 'approve', force: true, peer: expect.stringMatching(/^uid=\d+ pid=\d+ comm=|^unknown/) }]);
  });

  it('413s a body declared too large without reading it, and one that grows too large', async () => {
    const declared = await raw('POST', '/v1/vms/demo/attest', undefined, { 'content-length': MAX_BODY_BYTES + 1 });
    expect(declared).toEqual({
      status: 413,
      body: { code: 'SUP_ERR_API_TOO_LARGE', message: `request body is larger than ${MAX_BODY_BYTES} bytes` },
    });
    const chunked = await raw('POST', '/v1/vms/demo/attest', Buffer.alloc(MAX_BODY_BYTES + 10, 0x20), { 'transfer-encoding': 'chunked' });
    expect(chunked.status).toBe(413);
    expect(calls).toEqual([]);
  });

  it('maps the target refusal to its code and status', async () => {
    attestError = new SupervisorError('SUP_ERR_ATTEST_NOT_HELD', 'VM demo is running, not held for attestation');
    expect(await raw('POST', '/v1/vms/demo/attest', '{"action":"approve"}')).toEqual({
      status: 409,
      body: { code: 'SUP_ERR_ATTEST_NOT_HELD', message: 'VM demo is running, not held for attestation' },
    });
  });

  it('hides internal errors behind SUP_ERR_INTERNAL', async () => {
    attestError = new Error('secret-bearing internal detail');
    expect(await raw('POST', '/v1/vms/demo/attest', '{"action":"approve"}')).toEqual({
      status: 500,
      body: { code: 'SUP_ERR_INTERNAL', message: 'internal error in the control API' },
    });
  });

  it('survives garbage that is not HTTP, then still answers', async () => {
    await new Promise<void>((resolve) => {
      const s = connect(socketPath, () => s.end('\x00\x01garbage\r\n\r\n'));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
      s.resume();
    });
    expect((await raw('GET', '/v1/vms/demo')).status).toBe(200);
  });
});

describe('control API client', () => {
  it('returns the body of a success', async () => {
    expect(await callControl({ socketPath, method: 'GET', path: '/v1/vms/demo' })).toEqual(STATUS);
  });

  it('turns an error body back into the same SupervisorError', async () => {
    await expect(callControl({ socketPath, method: 'POST', path: '/v1/vms/demo/attest', body: { action: 'nope' } })).rejects.toMatchObject({
      code: 'SUP_ERR_API_BAD_REQUEST',
      message: 'attest request: "action" must be "approve", "reject" or "inject-secret"',
    });
  });

  it('says when nothing listens', async () => {
    const missing = join(dir, 'missing.sock');
    await expect(callControl({ socketPath: missing, method: 'GET', path: '/v1/vms/demo' })).rejects.toMatchObject({
      code: 'SUP_ERR_API_UNREACHABLE',
      message: `cannot reach the sevsup control socket ${missing}: no such socket (is the sevsup daemon running with this socket, or \`sevsup run\` for this VM with the same --run-dir?)`,
    });
  });
});
