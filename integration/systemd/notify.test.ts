// sd_notify delivered to a real AF_UNIX datagram socket (a python3 listener standing in for
// systemd, with SO_PASSCRED): READY=1, STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1 arrive in
// order through both transports (unix-dgram and systemd-notify), attributed to our pid, and to an
// abstract socket too.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createNotifier, unixDgramAvailable, type NotifyTransportName } from '../../src/process/sd-notify.js';
import { HAVE_PYTHON, NotifyListener } from './listener.js';

const SYSTEMD_NOTIFY = '/usr/bin/systemd-notify';
const isRoot = process.getuid?.() === 0;
/** unix-dgram is an optional native dependency: absent where it could not be built. */
const HAVE_UNIX_DGRAM = unixDgramAvailable();

describe.skipIf(!HAVE_PYTHON)('sd_notify to a datagram listener', () => {
  let dir: string | undefined;
  let listener: NotifyListener | undefined;
  afterEach(async () => {
    await listener?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    listener = undefined;
    dir = undefined;
  });

  async function exchange(address: string, transport: NotifyTransportName): Promise<NotifyListener> {
    listener = new NotifyListener(address);
    await listener.ready;
    const n = createNotifier({ NOTIFY_SOCKET: address, WATCHDOG_USEC: '20000000' }, { transport });
    expect(n.watchdogIntervalMs()).toBe(10_000);
    await n.ready('1 guest held for attestation');
    await n.status('2 guests running');
    await n.watchdog();
    await n.reloading();
    await n.ready();
    await n.stopping();
    await listener.waitFor(/^STOPPING=1$/);
    return listener;
  }

  /** The assignments, without systemd-notify's MAINPID= (which --pid adds). */
  const payloads = (l: NotifyListener): string[][] =>
    l
      .messages()
      .map((d) => d.lines.filter((x) => !x.startsWith('MAINPID=')).map((x) => x.replace(/^MONOTONIC_USEC=\d+$/, 'MONOTONIC_USEC=<n>')));

  const EXPECTED = [
    ['READY=1', 'STATUS=1 guest held for attestation'],
    ['STATUS=2 guests running'],
    ['WATCHDOG=1'],
    ['RELOADING=1', 'MONOTONIC_USEC=<n>'],
    ['READY=1'],
    ['STOPPING=1'],
  ];

  it.skipIf(!HAVE_UNIX_DGRAM)('unix-dgram: every message, in order, sent by this process', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sn-'));
    const l = await exchange(join(dir, 'notify.sock'), 'unix-dgram');
    expect(payloads(l)).toEqual(EXPECTED);
    expect(l.messages().map((d) => d.pid)).toEqual(EXPECTED.map(() => process.pid));
  });

  it.skipIf(!existsSync(SYSTEMD_NOTIFY))(
    'systemd-notify --pid: every message, in order, attributed to this process when root',
    async () => {
      dir = await mkdtemp(join(tmpdir(), 'sn-'));
      const l = await exchange(join(dir, 'notify.sock'), 'systemd-notify');
      expect(payloads(l)).toEqual(EXPECTED);
      expect(l.messages().every((d) => d.lines.includes(`MAINPID=${process.pid}`))).toBe(true);
      // As root the kernel accepts the forged SCM_CREDENTIALS pid; otherwise it is systemd-notify's own.
      if (isRoot) expect(l.messages().map((d) => d.pid)).toEqual(EXPECTED.map(() => process.pid));
      else expect(l.messages().every((d) => d.pid !== process.pid)).toBe(true);
    },
  );

  it.skipIf(!existsSync(SYSTEMD_NOTIFY))('an abstract socket (@name) is reached through systemd-notify', async () => {
    const address = `@sevsup-test-${process.pid}-${Date.now()}`;
    const l = await exchange(address, 'auto');
    expect(payloads(l)).toEqual(EXPECTED);
  });
});
