// A paused QEMU guest with the QMP proxy in front, for integration/proxy/: q35 under KVM (TCG
// without /dev/kvm), -S, a qcow2 disk from `qemu-img create` on -blockdev, the supervisor's
// monitor on a private socket (QmpClient upstream), a second private monitor for "direct"
// comparisons, and the proxy at <dir>/run/<vm>/qmp.sock with the guest held for attestation.
// stop() quits QEMU (SIGKILL if it lingers) and removes the directory: no QEMU is left behind.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient } from '../../src/qmp/client.js';
import type { DecideContext } from '../../src/proxy/decide.js';
import { startQmpProxy, type QmpProxy } from '../../src/proxy/proxy-server.js';
import { logSink } from '../../test/support/proxy-rig.js';
import { ACCEL_KVM_IF_PRESENT } from '../kvm.js';

export const QEMU = process.env['QEMU_BIN'] ?? '/usr/bin/qemu-system-x86_64';
export const QEMU_IMG = process.env['QEMU_IMG'] ?? '/usr/bin/qemu-img';
export const ACCEL = ACCEL_KVM_IF_PRESENT;
export const MISSING = [QEMU, QEMU_IMG].find((p) => !existsSync(p));

/** The hold window: QEMU itself blocks nothing yet (no SEV migration blocker before `cont`). */
export const HELD: DecideContext = { vmState: 'held', held: true, sev: true, allow: [], deny: [] };

export interface Guest {
  readonly dir: string;
  readonly disk: string;
  /** Where refused commands would have written files. */
  readonly out: string;
  readonly runDir: string;
  readonly vm: string;
  readonly child: ChildProcess;
  readonly upstream: QmpClient;
  readonly proxy: QmpProxy;
  readonly proxyPath: string;
  /** A second QEMU monitor, for sending the same (harmless) input directly. One client at a time. */
  readonly directPath: string;
  readonly logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

export function run(cmd: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function startGuest(vm = 'vm1'): Promise<Guest> {
  const dir = await mkdtemp(join(tmpdir(), 'px-'));
  const priv = join(dir, 'private');
  const out = join(dir, 'out');
  const runDir = join(dir, 'run');
  await Promise.all([mkdir(priv, { mode: 0o700 }), mkdir(out), mkdir(join(runDir, vm), { recursive: true })]);
  const disk = join(dir, 'disk.qcow2');
  const created = await run(QEMU_IMG, ['create', '-q', '-f', 'qcow2', disk, '16M']);
  if (created.code !== 0) throw new Error(`qemu-img create failed: ${created.stderr}`);
  const monitor = join(priv, 'monitor.sock');
  const directPath = join(priv, 'direct.sock');
  const child = spawn(
    QEMU,
    [
      '-machine',
      'q35',
      '-accel',
      ACCEL,
      '-m',
      '64',
      '-nodefaults',
      '-display',
      'none',
      '-S',
      '-blockdev',
      `driver=file,filename=${disk},node-name=file0`,
      '-blockdev',
      'driver=qcow2,file=file0,node-name=disk0',
      '-device',
      'virtio-blk-pci,drive=disk0,id=vblk0',
      '-chardev',
      `socket,id=monitor,path=${monitor},server=on,wait=off`,
      '-mon',
      'chardev=monitor,mode=control',
      '-chardev',
      `socket,id=direct,path=${directPath},server=on,wait=off`,
      '-mon',
      'chardev=direct,mode=control',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  const kill = async (): Promise<void> => {
    if (alive()) child.kill('SIGKILL');
    await exited;
  };
  let upstream: QmpClient;
  try {
    upstream = await QmpClient.connect({ path: monitor, oob: true, isAlive: alive, exited, connectTimeoutMs: 30_000 });
  } catch (error) {
    await kill();
    await rm(dir, { recursive: true, force: true });
    throw new Error(`QEMU did not come up: ${String(error)}; stderr: ${stderr}`);
  }
  const { logger, lines } = logSink('info');
  const proxyPath = join(runDir, vm, 'qmp.sock');
  const proxy = await startQmpProxy({ socketPath: proxyPath, vm, upstream, context: () => HELD, logger });
  return {
    dir,
    disk,
    out,
    runDir,
    vm,
    child,
    upstream,
    proxy,
    proxyPath,
    directPath,
    logs: lines,
    stop: async () => {
      await proxy.close();
      if (alive() && upstream.state === 'running') {
        await upstream.execute('quit').catch(() => undefined);
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await upstream.close();
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
