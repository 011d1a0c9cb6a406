// The real daemon under a stand-in for systemd: `bin/sevsup daemon` with NOTIFY_SOCKET pointing at a
// python3 datagram listener and a watchdog asked for. It must say READY=1 (from its own pid) once
// the autostart guest is launched, ping WATCHDOG=1, and say STOPPING=1 on SIGTERM, then exit 0
// with nothing left running. Skipped, saying so, while this checkout has no `sevsup daemon`.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { callControl } from '../../src/api/client.js';
import { processesMentioning } from '../../src/demo/processes.js';
import { HAVE_PYTHON, NotifyListener } from './listener.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SEVSUP = join(REPO, 'bin', 'sevsup');
const ASSETS = join(REPO, '.cache', 'test-assets');

function whyNot(): string | null {
  if (!HAVE_PYTHON) return '/usr/bin/python3 is missing';
  for (const f of ['vmlinuz', 'demo-initrd.img', 'ovmf-sev-test.fd'])
    if (!existsSync(join(ASSETS, f))) return `${f} is missing (bash scripts/setup.sh)`;
  try {
    execFileSync(process.execPath, [SEVSUP, 'daemon', '--help'], { stdio: 'ignore', timeout: 30_000 });
    return null;
  } catch {
    return 'this checkout has no `sevsup daemon` yet (bin/sevsup daemon --help fails)';
  }
}
const skip = whyNot();

describe.skipIf(skip !== null)(`sevsup daemon under a notify socket${skip === null ? '' : ` (skipped: ${skip})`}`, () => {
  let dir: string | undefined;
  let listener: NotifyListener | undefined;
  let daemon: ChildProcess | undefined;
  afterEach(async () => {
    if (daemon !== undefined && daemon.exitCode === null && daemon.signalCode === null) {
      const gone = new Promise((resolve) => daemon?.once('close', resolve));
      daemon.kill('SIGTERM');
      const timer = setTimeout(() => daemon?.kill('SIGKILL'), 30_000);
      await gone;
      clearTimeout(timer);
    }
    await listener?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    daemon = undefined;
    listener = undefined;
    dir = undefined;
  });

  it('READY=1 after autostart, WATCHDOG=1, STOPPING=1 on SIGTERM, then a clean exit', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sd-'));
    await mkdir(join(dir, 'vms'));
    await writeFile(
      join(dir, 'vms', 'n1.conf'),
      [
        'memory: 256',
        'bios: ovmf',
        `firmware: ${join(ASSETS, 'ovmf-sev-test.fd')}`,
        `kernel: ${join(ASSETS, 'vmlinuz')}`,
        `initrd: ${join(ASSETS, 'demo-initrd.img')}`,
        'cmdline: console=ttyS0 panic=-1',
        'attest: hold',
        'autostart: 1',
        'amd_sev: type=std,nodbg=1,noks=1,kernel-hashes=1',
        '',
      ].join('\n'),
    );
    const socket = join(dir, 'run', 'sevsup.sock');
    await writeFile(
      join(dir, 'sevsup.conf'),
      [
        'platform: sim',
        `vm-dir: ${join(dir, 'vms')}`,
        `run-dir: ${join(dir, 'run')}`,
        `state-dir: ${join(dir, 'state')}`,
        `socket: ${socket}`,
        'on-shutdown: shutdown',
        'log-level: warn',
        '',
      ].join('\n'),
    );
    listener = new NotifyListener(join(dir, 'notify.sock'));
    await listener.ready;
    let stderr = '';
    daemon = spawn(process.execPath, [SEVSUP, 'daemon', '--config', join(dir, 'sevsup.conf')], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NOTIFY_SOCKET: join(dir, 'notify.sock'), WATCHDOG_USEC: '2000000' },
    });
    daemon.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => daemon?.once('close', (code) => resolve(code)));

    const ready = await listener.waitFor(/^READY=1$/, 60_000);
    expect(ready.pid).toBe(daemon.pid);
    expect(ready.lines.some((l) => l.startsWith('STATUS='))).toBe(true);
    // READY comes after autostart: the autostart guest is launched (measured and held for its owner).
    const status = (await callControl({ socketPath: socket, method: 'GET', path: '/v1/vms/n1' })) as { state: string };
    expect(status.state, 'READY=1 was sent before the autostart guest was launched').toBe('held');

    const ping = await listener.waitFor(/^WATCHDOG=1$/, 10_000);
    expect(ping.pid).toBe(daemon.pid);
    expect(listener.messages().some((d) => d.lines.includes('STOPPING=1'))).toBe(false);

    daemon.kill('SIGTERM');
    const stopping = await listener.waitFor(/^STOPPING=1$/, 30_000);
    expect(stopping.pid).toBe(daemon.pid);
    expect(await exited, stderr).toBe(0);
    // READY before STOPPING, nothing after STOPPING but watchdog pings.
    const order = listener.messages().map((d) => d.lines[0]);
    expect(order.indexOf('READY=1')).toBeLessThan(order.indexOf('STOPPING=1'));
    await listener.close(); // its own command line names the directory too
    expect(processesMentioning(dir)).toEqual([]);
  });
});
