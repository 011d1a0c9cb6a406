// peer-cred: parsing `ss -xpnH` (real output shapes from iproute2 6.1, paths with spaces, sockets
// held by several processes or none), the flattened log fields, and the lookup itself on a real
// socketpair-like connection inside this process (the cross-process case is in proxy-server.test).
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { lookupUnixPeer, parseSsUnix, peerCredAtAccept, peerLogFields, socketFd } from '../../../src/proxy/peer-cred.js';

const SS_OUTPUT = [
  'u_str ESTAB 0      0                                               * 137214 * 137213 users:(("node",pid=1893,fd=0))        ',
  'u_str ESTAB 0      0                            /var/run/docker.sock 134420 * 0      users:(("dockerd",pid=32307,fd=20))   ',
  'u_str ESTAB 0      0                                               * 1582   * 1581                                         ',
  'u_str ESTAB 0      0                    /tmp/a dir/run vm/qmp.sock 5001   * 5002   users:(("node",pid=10,fd=30))',
  'u_str ESTAB 0      0                                               * 5002   /tmp/a dir/run vm/qmp.sock 5001 users:(("qmp shell",pid=11,fd=3),("bash",pid=12,fd=3))',
  'u_dgr UNCONN 0 0 /run/systemd/notify 999 * 0',
  'garbage line',
  '',
].join('\n');

describe('parseSsUnix', () => {
  const sockets = parseSsUnix(SS_OUTPUT);

  it('reads inode, peer inode and holders, whatever the addresses look like', () => {
    expect(sockets.get(137214)).toEqual({ inode: 137214, peer: 137213, processes: [{ pid: 1893, comm: 'node' }] });
    expect(sockets.get(1582)).toEqual({ inode: 1582, peer: 1581, processes: [] });
    expect(sockets.get(5001)).toEqual({ inode: 5001, peer: 5002, processes: [{ pid: 10, comm: 'node' }] });
    expect(sockets.get(5002)?.processes).toEqual([
      { pid: 11, comm: 'qmp shell' },
      { pid: 12, comm: 'bash' },
    ]);
    expect(sockets.get(999)).toEqual({ inode: 999, peer: 0, processes: [] });
    expect(sockets.size).toBe(6);
  });
});

describe('peerLogFields', () => {
  it('flattens the first holder and lists the others; says why when unknown', () => {
    expect(peerLogFields({ known: true, via: 'ss', inode: 1, processes: [{ pid: 5, uid: 1000, gid: 100, comm: 'a' }] })).toEqual({
      peerPid: 5,
      peerUid: 1000,
      peerGid: 100,
      peerComm: 'a',
    });
    expect(
      peerLogFields({
        known: true,
        via: 'ss',
        inode: 1,
        processes: [
          { pid: 5, uid: 0, gid: 0, comm: 'a' },
          { pid: 6, uid: 1, gid: 1, comm: 'b' },
        ],
      }),
    ).toEqual({ peerPid: 5, peerUid: 0, peerGid: 0, peerComm: 'a', peerOthers: [{ pid: 6, uid: 1, gid: 1, comm: 'b' }] });
    expect(peerLogFields({ known: false, why: 'x' })).toEqual({ peer: 'unknown', peerUnknownWhy: 'x' });
  });
});

describe('lookupUnixPeer', () => {
  async function connectedPair(): Promise<{ accepted: Socket; dialer: Socket; done: () => Promise<void> }> {
    const dir = await mkdtemp(join(tmpdir(), 'pc-'));
    const path = join(dir, 's.sock');
    let accept!: (s: Socket) => void;
    const acceptedP = new Promise<Socket>((resolve) => (accept = resolve));
    const server = createServer(accept);
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const dialer = createConnection(path);
    const accepted = await acceptedP;
    return {
      accepted,
      dialer,
      done: async () => {
        dialer.destroy();
        accepted.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await rm(dir, { recursive: true, force: true });
      },
    };
  }

  it('finds this very process on the other end, with its effective uid and gid', async () => {
    const pair = await connectedPair();
    try {
      expect(socketFd(pair.accepted)).toEqual(expect.any(Number));
      const peer = await lookupUnixPeer(pair.accepted);
      expect(peer).toMatchObject({ known: true, processes: [{ pid: process.pid, uid: process.geteuid?.(), gid: process.getegid?.() }] });
    } finally {
      await pair.done();
    }
  });

  it('answers unknown, with the reason, when ss is missing or the socket is closed', async () => {
    const pair = await connectedPair();
    try {
      expect(await lookupUnixPeer(pair.accepted, { ss: '/nonexistent/ss' })).toEqual({
        known: false,
        why: "iproute2's ss is not installed",
      });
      pair.accepted.destroy();
      expect(await lookupUnixPeer(pair.accepted)).toMatchObject({ known: false });
    } finally {
      await pair.done();
    }
  });
});

describe('lookupUnixPeer queue', () => {
  it('runs no ss for a connection that closed while its lookup was queued', async () => {
    const { chmod, readFile: read, writeFile: write } = await import('node:fs/promises');
    const dir = await mkdtemp(join(tmpdir(), 'pcq-'));
    const path = join(dir, 's.sock');
    const count = join(dir, 'count');
    const ss = join(dir, 'ss');
    await write(ss, `#!/bin/sh\necho x >> '${count}'\nsleep 0.2\n`);
    await chmod(ss, 0o755);
    const accepted: Socket[] = [];
    const server = createServer((s) => accepted.push(s));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const dialers = Array.from({ length: 5 }, () => createConnection(path));
    await new Promise((resolve) => setTimeout(resolve, 100));
    try {
      expect(accepted).toHaveLength(5);
      const lookups = accepted.map((s) => lookupUnixPeer(s, { ss }));
      // All but the first are queued; their clients go away before their turn.
      for (const s of accepted.slice(1)) s.destroy();
      const answers = await Promise.all(lookups);
      for (const answer of answers) expect(answer).toMatchObject({ known: false });
      expect((await read(count, 'utf8')).trim().split('\n')).toHaveLength(1);
    } finally {
      for (const d of dialers) d.destroy();
      for (const s of accepted) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('peerCredAtAccept (SO_PEERCRED)', () => {
  it('names a client process that connected and exited before anyone looked (issue 9 #12)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pca-'));
    const path = join(dir, 's.sock');
    const seen: (ReturnType<typeof peerCredAtAccept> | 'late')[] = [];
    let lateInfo: Promise<unknown> = Promise.resolve();
    const server = createServer((socket) => {
      // Read at accept, as the proxy does; a later ss lookup would find the process gone.
      seen.push(peerCredAtAccept(socket));
      lateInfo = new Promise((resolve) => setTimeout(resolve, 300)).then(() => lookupUnixPeer(socket));
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const child = spawn(
        'python3',
        ['-c', `import socket,os;s=socket.socket(socket.AF_UNIX);s.connect(${JSON.stringify(path)});print(os.getpid(),flush=True)`],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      await new Promise((resolve) => child.once('exit', resolve));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const pid = Number(out.trim());
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ known: true, via: 'so_peercred', processes: [{ pid }] });
      // The fallback, asked after the client exited, cannot say who it was: the reason for reading at accept.
      expect(await lateInfo).toMatchObject({ known: false });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("gives this process's own uid and gid for a connection from itself", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pcb-'));
    const path = join(dir, 's.sock');
    let info: ReturnType<typeof peerCredAtAccept> | undefined;
    let accept!: (socket: Socket) => void;
    const accepted = new Promise<Socket>((resolve) => (accept = resolve));
    const server = createServer((socket) => {
      info = peerCredAtAccept(socket);
      accept(socket);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const dialer = createConnection(path);
    const socket = await accepted;
    try {
      expect(info).toEqual({
        known: true,
        via: 'so_peercred',
        processes: [{ pid: process.pid, uid: process.geteuid?.(), gid: process.getegid?.(), comm: expect.any(String) }],
      });
    } finally {
      dialer.destroy();
      socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
