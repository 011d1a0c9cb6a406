// The daemon's control API under abuse, as a real process: malformed JSON, an unknown guest, the
// wrong state, an oversized body, bytes that are not HTTP, a client that sends half a request and
// stalls, and 200 concurrent requests. Each gets its coded error; the daemon stays up; the held
// guest stays held; other requests are unaffected.
import { connect } from 'node:net';
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { MAX_BODY_BYTES } from '../../src/api/server.js';
import { DEBIAN_OVMF, SIM, missingPrerequisite, simStatus } from '../run/harness.js';
import { daemonScope, writeVm } from './harness.js';

const missing = missingPrerequisite(SIM, DEBIAN_OVMF);
const scope = daemonScope();

function raw(socketPath: string, method: string, path: string, body?: string | Buffer): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe.skipIf(missing !== null)(`control API abuse${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it('answers every bad request with its code and keeps serving', async () => {
    const dir = await scope.dir();
    await writeVm(dir, 'held', ['attest: hold', 'autostart: 1']);
    await writeVm(dir, 'idle');
    const daemon = scope.daemon(dir);
    await daemon.start();
    const held = await daemon.waitState('held', ['held']);
    const s = daemon.socket;

    expect(await raw(s, 'POST', '/v1/vms/held/attest', '{"action":')).toEqual({
      status: 400,
      body: { code: 'SUP_ERR_API_BAD_REQUEST', message: 'request body is not valid JSON (10 bytes)' },
    });
    expect(await raw(s, 'POST', '/v1/vms/held/attest', '{"action":"cont"}')).toMatchObject({
      status: 400,
      body: { code: 'SUP_ERR_API_BAD_REQUEST' },
    });
    expect(await raw(s, 'GET', '/v1/vms/nope')).toEqual({
      status: 404,
      body: { code: 'SUP_ERR_VM_NOT_FOUND', message: 'no VM named "nope" is served on this socket' },
    });
    expect(await raw(s, 'POST', '/v1/vms/idle/attest', '{"action":"approve"}')).toMatchObject({
      status: 409,
      body: {
        code: 'SUP_ERR_ATTEST_NOT_HELD',
        message: 'VM idle is defined, not held for attestation; approve applies only to a held guest',
      },
    });
    expect(await raw(s, 'POST', '/v1/vms/idle/stop', '{}')).toMatchObject({
      status: 409,
      body: { code: 'SUP_ERR_VM_STATE', message: 'VM idle is not running (it is defined)' },
    });
    expect(await raw(s, 'POST', '/v1/vms/held/start', '')).toMatchObject({
      status: 409,
      body: { code: 'SUP_ERR_VM_STATE', message: 'VM held is already held' },
    });
    expect(await raw(s, 'POST', '/v1/vms/held/attest', Buffer.alloc(MAX_BODY_BYTES + 1, 0x20))).toEqual({
      status: 413,
      body: { code: 'SUP_ERR_API_TOO_LARGE', message: `request body is larger than ${MAX_BODY_BYTES} bytes` },
    });
    expect(await raw(s, 'DELETE', '/v1/vms/held')).toEqual({
      status: 404,
      body: { code: 'SUP_ERR_API_NOT_FOUND', message: 'no API route DELETE /v1/vms/held (use GET)' },
    });

    // Not HTTP at all, and a client that stalls half-way through its headers: neither blocks anyone.
    await new Promise<void>((resolve) => {
      const garbage = connect(s, () => garbage.end('\x00\x01\x02 not http\r\n\r\n'));
      garbage.on('close', () => resolve());
      garbage.on('error', () => resolve());
      garbage.resume();
    });
    const stalled = connect(s, () => stalled.write('POST /v1/vms/held/attest HTTP/1.1\r\nContent-Length: 100\r\n'));
    stalled.on('error', () => undefined);

    // 200 at once: reads, bad bodies, unknown guests, a list; each answered as itself.
    const kinds = Array.from({ length: 200 }, (_, i) => i % 4);
    const replies = await Promise.all(
      kinds.map((k) => {
        switch (k) {
          case 0:
            return raw(s, 'GET', '/v1/vms/held');
          case 1:
            return raw(s, 'POST', '/v1/vms/held/attest', '[');
          case 2:
            return raw(s, 'GET', '/v1/vms/ghost');
          default:
            return raw(s, 'GET', '/v1/vms');
        }
      }),
    );
    replies.forEach((reply, i) => {
      const k = kinds[i];
      if (k === 0) expect(reply).toEqual({ status: 200, body: held });
      else if (k === 1) expect(reply).toMatchObject({ status: 400, body: { code: 'SUP_ERR_API_BAD_REQUEST' } });
      else if (k === 2) expect(reply).toMatchObject({ status: 404, body: { code: 'SUP_ERR_VM_NOT_FOUND' } });
      else expect(reply).toMatchObject({ status: 200, body: { vms: [held, expect.objectContaining({ vm: 'idle', state: 'defined' })] } });
    });

    // Metrics (ops' registry) see the guests and the refusals.
    const metrics = await new Promise<string>((resolve, reject) => {
      const req = request({ socketPath: s, path: '/metrics', agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString('utf8')));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    expect(metrics).toMatch(/sevsup_guests\{state="held"\} 1/);
    expect(metrics).toMatch(/sevsup_launches_total\{outcome="held"\} 1/);

    stalled.destroy();
    expect(daemon.running()).toBe(true);
    expect(await daemon.status('held')).toEqual(held);
    expect(simStatus(dir, 'held').contCount).toBe(0);
    expect(daemon.output).not.toContain('"level":50'); // refusals are info, never errors
    expect(await daemon.api('POST', '/v1/vms/held/stop', {})).toMatchObject({ state: 'stopped' });
  });
});
