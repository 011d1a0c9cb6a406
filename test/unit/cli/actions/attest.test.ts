// `sevsup attest`'s own checks, and one request end to end against a real control server.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlServer, type ControlServer } from '../../../../src/api/server.js';
import type { AttestRequest } from '../../../../src/api/types.js';
import { runAttest } from '../../../../src/cli/actions/attest.js';

let dir: string;
let server: ControlServer;
const received: AttestRequest[] = [];
const HEADER = Buffer.alloc(52, 3).toString('base64');
const SECRET = Buffer.alloc(48, 4).toString('base64');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-attest-'));
  await writeFile(join(dir, 'h.b64'), `${HEADER}\n`);
  await writeFile(join(dir, 's.b64'), SECRET);
  await writeFile(join(dir, 'junk.b64'), 'not base64 at all');
  await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'run', 'vm1'), { recursive: true }));
  server = await startControlServer({
    socketPath: join(dir, 'run', 'vm1', 'control.sock'),
    target: {
      status: (vm) =>
        vm === 'vm1'
          ? {
              vm,
              state: 'held',
              platform: 'simulated',
              sev: true,
              pid: 1,
              record: null,
              holdDeadline: null,
              secretsInjected: 0,
              error: null,
            }
          : undefined,
      measurement: async () => null,
      attest: async (vm, req) => {
        received.push(req);
        return { vm, action: req.action, state: 'held' };
      },
    },
  });
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const base = { runDir: '' };

describe('sevsup attest', () => {
  it.each([
    [{}, 'give exactly one of --approve, --reject, --inject-secret HEADER_FILE SECRET_FILE'],
    [{ approve: true, reject: true }, 'give exactly one of --approve, --reject, --inject-secret HEADER_FILE SECRET_FILE'],
    [{ approve: true, gpa: '1' }, '--gpa only goes with --inject-secret'],
    [{ reject: true, force: true }, '--force goes with --approve or --inject-secret; --reject needs none'],
    [{ injectSecret: ['only-one'] }, '--inject-secret takes two files, HEADER_B64_FILE and SECRET_B64_FILE; got 1'],
  ])('refuses %j', async (opts, message) => {
    await expect(runAttest('vm1', { ...base, ...opts })).rejects.toMatchObject({ code: 'SUP_ERR_USAGE', message });
  });

  it('checks the files before sending anything', async () => {
    const runDir = join(dir, 'run');
    await expect(runAttest('vm1', { runDir, injectSecret: [join(dir, 'missing'), join(dir, 's.b64')] })).rejects.toMatchObject({
      code: 'SUP_ERR_USAGE',
      message: `cannot read the packet header file ${join(dir, 'missing')} (ENOENT)`,
    });
    await expect(runAttest('vm1', { runDir, injectSecret: [join(dir, 'h.b64'), join(dir, 'junk.b64')] })).rejects.toMatchObject({
      code: 'SUP_ERR_USAGE',
      message: `the secret file ${join(dir, 'junk.b64')} does not hold base64 text (as virt-qemu-sev-validate --secret-header/--secret-payload write it)`,
    });
    await expect(runAttest('vm1', { runDir, injectSecret: [join(dir, 'h.b64'), join(dir, 's.b64')], gpa: '0xZZ' })).rejects.toMatchObject({
      code: 'SUP_ERR_USAGE',
      message: "--gpa must be a decimal or 0x-hex address, got '0xZZ'",
    });
    expect(received).toEqual([]);
  });

  it('sends the file contents (trimmed) and a hex gpa', async () => {
    await runAttest('vm1', {
      runDir: join(dir, 'run'),
      injectSecret: [join(dir, 'h.b64'), join(dir, 's.b64')],
      gpa: '0x80B000',
      json: true,
    });
    expect(received.at(-1)).toEqual({ action: 'inject-secret', packetHeader: HEADER, secret: SECRET, gpa: 0x80b000 });
  });

  it('--force asks to override a relayed guest (approve and inject)', async () => {
    const runDir = join(dir, 'run');
    await runAttest('vm1', { runDir, approve: true, force: true, json: true });
    // The control API adds who asked (SO_PEERCRED of the socket's peer: this test process).
    const peer = expect.stringMatching(new RegExp(`^uid=${process.getuid?.() ?? '\\d+'} pid=${process.pid} comm=|^unknown`));
    expect(received.at(-1)).toEqual({ action: 'approve', force: true, peer });
    await runAttest('vm1', { runDir, injectSecret: [join(dir, 'h.b64'), join(dir, 's.b64')], force: true, json: true });
    expect(received.at(-1)).toEqual({ action: 'inject-secret', packetHeader: HEADER, secret: SECRET, force: true, peer });
  });

  it('says when no supervisor serves the VM', async () => {
    await expect(runAttest('other', { runDir: join(dir, 'run'), approve: true })).rejects.toMatchObject({
      code: 'SUP_ERR_API_UNREACHABLE',
    });
  });

  it('goes to the daemon socket named by SEVSUP_SOCKET when no --run-dir or --socket is given', async () => {
    const before = received.length;
    process.env['SEVSUP_SOCKET'] = join(dir, 'run', 'vm1', 'control.sock');
    try {
      await runAttest('vm1', { approve: true, json: true });
    } finally {
      delete process.env['SEVSUP_SOCKET'];
    }
    expect(received.slice(before)).toEqual([{ action: 'approve' }]);
  });
});
