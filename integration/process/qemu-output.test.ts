// What QEMU writes and what sevsup copies of it, against the real QEMU 7.2 under TCG: a launch
// secret printed by an enabled trace event reaches qemu.log (QEMU's own file, 0600) but never the
// exit record, the launch-failure error or the log lines; a trace flood keeps qemu.log under its
// bound (one earlier part in qemu.log.1); the QEMU runs with a zero core limit; serial.log is 0600.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { coreLimit } from '../../src/process/core-limit.js';
import { launchFailure, launchQemu, type QemuExit, type QemuProcess } from '../../src/process/launcher.js';
import { QEMU_LOG_MAX_BYTES } from '../../src/process/log-cap.js';
import { prepareVmRunDir } from '../../src/process/run-dir.js';
import { QmpClient } from '../../src/qmp/client.js';

const QEMU = '/usr/bin/qemu-system-x86_64';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-qout-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.runIf(existsSync(QEMU))('QEMU output (real QEMU, TCG)', () => {
  it('keeps a traced launch secret out of everything sevsup copies, and qemu.log under its bound', async () => {
    const paths = await prepareVmRunDir(join(dir, 'run'), 'vm1');
    expect((await stat(paths.serialLog)).mode & 0o777).toBe(0o600);
    const qemuLog = join(paths.dir, 'qemu.log');
    const logged: string[] = [];
    const logger = createLogger({ level: 'debug' }, { write: (line: string) => void logged.push(line) });
    const argv = [
      '-machine',
      'q35',
      '-accel',
      'tcg',
      '-nodefaults',
      '-display',
      'none',
      '-S',
      '-m',
      '64',
      '-chardev',
      `socket,id=m,path=${paths.monitorSocket},server=on,wait=off`,
      '-mon',
      'chardev=m,mode=control',
    ];
    const proc: QemuProcess = await launchQemu({ binary: QEMU, argv, detached: true, stderrFile: qemuLog, logger });
    let qmp: QmpClient | undefined;
    let exit: QemuExit;
    try {
      expect(coreLimit(proc.pid)).toEqual({ soft: 0, hard: 0 });
      expect((await stat(qemuLog)).mode & 0o777).toBe(0o600);
      qmp = await QmpClient.connect({ path: paths.monitorSocket, exited: proc.exited, connectTimeoutMs: 20_000 });
      const header = 'U0VDUkVULUhFQURFUi1ERUFEQkVFRi0wMTIzNDU2Nzg5';
      const secret = 'U0VDUkVULVBBWUxPQUQtQ0FGRUJBQkUtOTg3NjU0MzIxMA==';
      await qmp.execute('trace-event-set-state', { name: 'qmp_enter_sev_inject_launch_secret', enable: true });
      await qmp.execute('sev-inject-launch-secret', { 'packet-header': header, secret }).catch(() => undefined); // no SEV here: fails after the trace
      // QEMU's own file has it (the trace fired): sevsup's copies must not.
      await delay(200);
      expect(await readFile(qemuLog, 'utf8')).toContain(header);
      expect(proc.stderrTail()).not.toContain(header);

      // A flood: every trace event of a running guest.
      await qmp.execute('trace-event-set-state', { name: '*', enable: true, 'ignore-unavailable': true });
      await qmp.execute('cont');
      let largest = 0;
      for (let i = 0; i < 30; i++) {
        await delay(100);
        largest = Math.max(largest, (await stat(qemuLog)).size);
      }
      await qmp.execute('trace-event-set-state', { name: '*', enable: false, 'ignore-unavailable': true });
      expect(existsSync(`${qemuLog}.1`)).toBe(true); // it did rotate: the flood was over the bound
      expect((await stat(`${qemuLog}.1`)).size).toBeLessThanOrEqual(QEMU_LOG_MAX_BYTES);
      // The bound plus what QEMU writes before the watcher acts (checked 50 ms after a write).
      expect(largest).toBeLessThan(2 * QEMU_LOG_MAX_BYTES);
      expect((await stat(`${qemuLog}.1`)).mode & 0o777).toBe(0o600);
      if (process.env['SEVSUP_PRINT_SIZES'] === '1')
        console.log(`largest qemu.log seen: ${largest} bytes; qemu.log.1: ${(await stat(`${qemuLog}.1`)).size}`);
    } finally {
      await qmp?.close();
      exit = await proc.kill(); // no QEMU outlives the test, whatever failed above
    }
    for (const text of [exit.stderrTail, launchFailure(exit).message, JSON.stringify(launchFailure(exit).details), ...logged]) {
      expect(text).not.toMatch(/U0VDUkVU|qmp_enter_|handle_qmp_command/);
    }
    expect(logged.some((l) => l.includes('"msg":"qemu stderr"') && l.includes('qmp_enter'))).toBe(false);
  });
});
