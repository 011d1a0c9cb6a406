// The per-VM run directory: exact modes whatever the umask, group ownership, stale-socket removal,
// and refusals (a file where a socket belongs, a socket still in use, a symlinked VM dir).
import { execa } from 'execa';
import { once } from 'node:events';
import { chmod, mkdtemp, mkdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { prepareVmRunDir, type VmPaths, vmRunPaths } from '../../../src/process/run-dir.js';
import { catchSupervisorErrorAsync } from '../../support/catch-error.js';

let base: string;
const servers: Server[] = [];
beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'sevsup-rundir-'));
});
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
  await rm(base, { recursive: true, force: true });
});

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

function listen(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

/** A socket file left as a crashed process leaves it (Node unlinks on a clean close): listen, SIGKILL. */
async function leaveStaleSocket(path: string): Promise<void> {
  const script = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.stdout.write('up\\n'))`;
  const child = execa(process.execPath, ['-e', script], { reject: false, stdin: 'ignore', stderr: 'ignore', buffer: false });
  await once(child.stdout, 'data');
  child.kill('SIGKILL');
  await child;
}

const errorOf = async (promise: Promise<unknown>): Promise<{ code: string; message: string }> => {
  const { code, message } = await catchSupervisorErrorAsync(() => promise);
  return { code, message };
};

describe('prepareVmRunDir', () => {
  it('creates <vm> 0750 and private/ 0700 whatever the umask, and returns the contract paths', async () => {
    const runDir = join(base, 'run');
    const old = process.umask(0o077);
    let paths: VmPaths;
    try {
      paths = await prepareVmRunDir(runDir, 'vm1');
    } finally {
      process.umask(old);
    }
    const dir = join(runDir, 'vm1');
    expect(paths).toEqual({
      dir,
      privateDir: join(dir, 'private'),
      monitorSocket: join(dir, 'private', 'monitor.sock'),
      proxySocket: join(dir, 'qmp.sock'),
      controlSocket: join(dir, 'control.sock'),
      pidFile: join(dir, 'qemu.pid'),
      serialLog: join(dir, 'serial.log'),
      snpCertTable: join(dir, 'snp-certs.bin'),
    });
    expect(paths).toEqual(vmRunPaths(runDir, 'vm1'));
    expect(await modeOf(dir)).toBe(0o750);
    expect(await modeOf(join(dir, 'private'))).toBe(0o700);
  });

  it('resets the modes of directories that already exist', async () => {
    const dir = join(base, 'vm1');
    await mkdir(join(dir, 'private'), { recursive: true, mode: 0o777 });
    await prepareVmRunDir(base, 'vm1');
    expect(await modeOf(dir)).toBe(0o750);
    expect(await modeOf(join(dir, 'private'))).toBe(0o700);
  });

  it('gives <vm> (not private/) the requested group', async () => {
    const paths = await prepareVmRunDir(base, 'vm1', { group: 1 });
    expect((await stat(paths.dir)).gid).toBe(1);
    expect((await stat(paths.privateDir)).gid).toBe(process.getgid?.());
  });

  it('removes stale sockets nobody listens on', async () => {
    const paths = await prepareVmRunDir(base, 'vm1');
    const sockets = [paths.monitorSocket, paths.proxySocket, paths.controlSocket];
    for (const socket of sockets) await leaveStaleSocket(socket);
    for (const socket of sockets) expect((await stat(socket)).isSocket()).toBe(true);
    await prepareVmRunDir(base, 'vm1');
    for (const socket of sockets) await expect(stat(socket)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses to delete a socket that is still in use', async () => {
    const paths = await prepareVmRunDir(base, 'vm1');
    servers.push(await listen(paths.controlSocket));
    expect(await errorOf(prepareVmRunDir(base, 'vm1'))).toEqual({
      code: 'SUP_ERR_RUN_DIR',
      message: `${paths.controlSocket} is in use by a running process; is the VM already running?`,
    });
  });

  it('refuses a regular file where a socket belongs, and leaves it alone', async () => {
    const paths = await prepareVmRunDir(base, 'vm1');
    await writeFile(paths.monitorSocket, 'not a socket');
    expect(await errorOf(prepareVmRunDir(base, 'vm1'))).toEqual({
      code: 'SUP_ERR_RUN_DIR',
      message: `${paths.monitorSocket} exists and is not a socket; remove it by hand if nothing needs it`,
    });
    expect((await stat(paths.monitorSocket)).isFile()).toBe(true);
  });

  it('refuses a symlink where the VM directory belongs', async () => {
    await mkdir(join(base, 'elsewhere'));
    await symlink(join(base, 'elsewhere'), join(base, 'vm1'));
    expect(await errorOf(prepareVmRunDir(base, 'vm1'))).toEqual({
      code: 'SUP_ERR_RUN_DIR',
      message: `${join(base, 'vm1')} exists and is not a directory; move it away`,
    });
  });

  it('refuses VM names that are not one path component', async () => {
    for (const vm of ['', '.', '..', 'a/b']) {
      expect(await errorOf(prepareVmRunDir(base, vm))).toEqual({
        code: 'SUP_ERR_RUN_DIR',
        message: `VM name ${JSON.stringify(vm)} cannot name a run directory`,
      });
    }
  });
});

describe('prepareVmRunDir: the serial log', () => {
  it('creates serial.log 0600, and makes an older 0644 one private', async () => {
    const paths = await prepareVmRunDir(base, 'vm1');
    expect(await modeOf(paths.serialLog)).toBe(0o600);
    await writeFile(paths.serialLog, 'old console', { mode: 0o644 });
    await chmod(paths.serialLog, 0o644);
    await prepareVmRunDir(base, 'vm1');
    expect(await modeOf(paths.serialLog)).toBe(0o600);
  });

  it('refuses a symlink planted as serial.log and writes nothing through it', async () => {
    const paths = vmRunPaths(base, 'vm2');
    await mkdir(paths.dir, { recursive: true });
    const target = join(base, 'elsewhere');
    await writeFile(target, 'untouched', { mode: 0o644 });
    await symlink(target, paths.serialLog);
    expect(await catchSupervisorErrorAsync(() => prepareVmRunDir(base, 'vm2'))).toMatchObject({
      code: 'SUP_ERR_RUN_DIR',
      message: `cannot create ${paths.serialLog} (it is a symlink; remove it)`,
    });
    expect(await modeOf(target)).toBe(0o644);
  });
});
