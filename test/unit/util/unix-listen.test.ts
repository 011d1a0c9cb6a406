import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listenUnixSocket } from '../../../src/util/unix-listen.js';

const dir = mkdtempSync(join(tmpdir(), 'sevsup-listen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const answers = (path: string): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

describe('listenUnixSocket', () => {
  it('creates the socket with the asked mode even under a permissive umask, and leaves no staging file', async () => {
    const path = join(dir, 'a.sock');
    const server = createServer();
    const old = process.umask(0o000);
    try {
      await listenUnixSocket(server, path, { mode: 0o660, replace: false });
    } finally {
      process.umask(old);
    }
    expect(statSync(path).mode & 0o777).toBe(0o660);
    expect(statSync(path).isSocket()).toBe(true);
    expect(existsSync(`${path}~`)).toBe(false);
    expect(await answers(path)).toBe(true);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('without replace, refuses a path that exists (EEXIST), closes the server and cleans up', async () => {
    const path = join(dir, 'b.sock');
    writeFileSync(path, 'someone else');
    const server = createServer();
    await expect(listenUnixSocket(server, path, { mode: 0o600, replace: false })).rejects.toMatchObject({ code: 'EEXIST' });
    expect(server.listening).toBe(false);
    expect(existsSync(`${path}~`)).toBe(false);
  });

  it('with replace, takes the place of a stale file', async () => {
    const path = join(dir, 'c.sock');
    writeFileSync(path, 'stale');
    const server = createServer();
    await listenUnixSocket(server, path, { mode: 0o600, replace: true });
    expect(statSync(path).isSocket()).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await answers(path)).toBe(true);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
