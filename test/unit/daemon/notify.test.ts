// The sd_notify client's rules without a listener: no-ops without NOTIFY_SOCKET, the watchdog
// interval from WATCHDOG_USEC/WATCHDOG_PID, and failed sends that never reject and are logged once.
// Delivery to a real datagram socket is in integration/systemd/notify.test.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createNotifier, unixDgramAvailable } from '../../../src/process/sd-notify.js';
import { createLogger } from '../../../src/log.js';

function sinkLogger(): { logger: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return {
    logger: createLogger({ level: 'debug' }, stream),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** unix-dgram is an optional native dependency: absent where it could not be built. */
const HAVE_UNIX_DGRAM = unixDgramAvailable();

describe('createNotifier', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('is disabled and silent without NOTIFY_SOCKET, even with a watchdog asked for', async () => {
    const { logger, lines } = sinkLogger();
    const n = createNotifier({ WATCHDOG_USEC: '30000000' }, { logger });
    expect(n.enabled).toBe(false);
    await n.ready('up');
    await n.status('x');
    await n.watchdog();
    await n.reloading();
    await n.stopping();
    expect(n.watchdogIntervalMs()).toBeNull();
    expect(lines()).toEqual([]);
  });

  it.each([
    [{ WATCHDOG_USEC: '30000000' }, 15_000],
    [{ WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid) }, 15_000],
    [{ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '1' }, null],
    [{ WATCHDOG_USEC: '1000' }, 1],
    [{ WATCHDOG_USEC: '1' }, 1],
    [{ WATCHDOG_USEC: '0' }, null],
    [{ WATCHDOG_USEC: '-5' }, null],
    [{ WATCHDOG_USEC: '3e7' }, null],
    [{}, null],
  ] as const)('watchdog interval for %j is %s ms', (env, want) => {
    expect(createNotifier({ NOTIFY_SOCKET: '/nonexistent/notify', ...env }).watchdogIntervalMs()).toBe(want);
  });

  it.skipIf(!HAVE_UNIX_DGRAM)('a failing transport never rejects and is logged once (unix-dgram, no such socket)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sn-'));
    const { logger, lines } = sinkLogger();
    const n = createNotifier({ NOTIFY_SOCKET: join(dir, 'absent.sock') }, { logger, transport: 'unix-dgram' });
    expect(n.enabled).toBe(true);
    await n.ready('starting');
    await n.watchdog();
    await n.stopping();
    const logged = lines();
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      level: 40,
      msg: 'cannot notify systemd; further notification failures are not logged',
      transport: 'unix-dgram',
      message: ['READY', 'STATUS'],
    });
    expect(String((logged[0]?.['err'] as { message?: string } | undefined)?.message)).toMatch(/ENOENT|-2/);
  });

  it('a missing systemd-notify never rejects and is logged once', async () => {
    const { logger, lines } = sinkLogger();
    const n = createNotifier({ NOTIFY_SOCKET: '@sevsup-test-absent' }, { logger, systemdNotify: '/nonexistent/systemd-notify' });
    await Promise.all([n.ready(), n.status('a'), n.watchdog()]);
    expect(lines()).toHaveLength(1);
    expect(lines()[0]).toMatchObject({ transport: 'systemd-notify', notifySocket: '@sevsup-test-absent' });
  });

  it('refuses unix-dgram for an abstract socket (it cannot address one) without throwing', async () => {
    const { logger, lines } = sinkLogger();
    const n = createNotifier({ NOTIFY_SOCKET: '@abstract' }, { logger, transport: 'unix-dgram' });
    await n.ready();
    expect(String((lines()[0]?.['err'] as { message?: string } | undefined)?.message)).toBe(
      'unix-dgram cannot address the abstract socket @abstract',
    );
  });
});
