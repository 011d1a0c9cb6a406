// The control API against clients that hold connections and send nothing (issue 9, item 8), with
// the daemon as a real process: 1,030 idle connections and 70 event streams must not keep the
// guest owner's approve from getting through (before, the connection limit dropped it and the
// hold timed out); idle connections are closed by the daemon; streams beyond the cap get a coded
// refusal; the held guest is resumed exactly once (its firmware halts at its reset vector: running
// it costs no CPU while the flood is served).
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { MAX_CONNECTIONS, MAX_EVENT_STREAMS } from '../../src/api/server.js';
import { SIM, missingPrerequisite, simStatus } from '../run/harness.js';
import { daemonScope, writeHaltingVm } from './harness.js';

const missing = missingPrerequisite(SIM);
const scope = daemonScope();

function connectOnce(path: string): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('error', () => undefined);
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

/**
 * One idle connection. A unix socket's listen backlog can be full for a moment when the daemon
 * accepts more slowly than the flood connects (connect() then fails with EAGAIN, the kernel's
 * own push-back): try again shortly, as a persistent attacker would.
 */
async function idleConnection(path: string): Promise<{ socket: Socket; closed: Promise<void> }> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await connectOnce(path);
    } catch (error: unknown) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || attempt >= 500) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

/** GET /v1/events: the status, and the first line (the subscription) when it was accepted. */
function openStream(path: string): Promise<{ status: number; first: string; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, path: '/v1/events', agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
        if (text.includes('\n'))
          resolve({ status: res.statusCode ?? 0, first: text.slice(0, text.indexOf('\n')), close: () => req.destroy() });
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, first: text.trim(), close: () => req.destroy() }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(missing !== null)(`control API floods${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it('idle connections and event streams never lock the owner out', async () => {
    const dir = await scope.dir();
    await writeHaltingVm(dir, 'held', ['attest: hold', 'autostart: 1', 'hold-timeout: 600']);
    const daemon = scope.daemon(dir);
    await daemon.start();
    await daemon.waitState('held', ['held']);

    const idle: { socket: Socket; closed: Promise<void> }[] = [];
    for (let i = 0; i < MAX_CONNECTIONS + 6; i++) idle.push(await idleConnection(daemon.socket));
    const streams = await Promise.all(Array.from({ length: MAX_EVENT_STREAMS + 6 }, () => openStream(daemon.socket)));
    try {
      const accepted = streams.filter((s) => s.status === 200);
      expect(accepted).toHaveLength(MAX_EVENT_STREAMS);
      for (const s of accepted) expect(JSON.parse(s.first)).toMatchObject({ event: 'subscribed' });
      const refused = streams.filter((s) => s.status !== 200);
      expect(refused.map((s) => [s.status, (JSON.parse(s.first) as { code: string }).code])).toEqual(
        Array(6).fill([503, 'SUP_ERR_API_BUSY']),
      );

      // The owner's approve gets through the flood, and the guest runs, resumed once.
      expect(await daemon.api('POST', '/v1/vms/held/attest', { action: 'approve' })).toMatchObject({ state: 'running' });
      expect(simStatus(dir, 'held').contCount).toBe(1);
      // Every idle connection is closed by the daemon (evicted, or its time from accept ran out).
      await Promise.all(idle.map((c) => c.closed));
      expect(daemon.running()).toBe(true);
    } finally {
      for (const c of idle) c.socket.destroy();
      for (const s of streams) s.close();
    }
    expect(await daemon.api('POST', '/v1/vms/held/stop', { force: true })).toMatchObject({ state: 'stopped' });
  });
});
