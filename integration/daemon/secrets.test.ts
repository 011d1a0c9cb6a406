// A launch secret injected through the daemon's API (an owner's packet, built offline by libvirt's
// virt-qemu-sev-validate) reaches the simulated platform, survives a daemon restart as a count,
// and never appears in anything the daemon wrote: stdout/stderr at trace level, the event stream,
// QEMU's log, the state file.
import { request } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PYTHON, SIM, TEST_FIRMWARE, VALIDATOR, missingPrerequisite, runProcess, simStatus } from '../run/harness.js';
import { daemonScope, nothingLeft, writeVm } from './harness.js';

const missing = missingPrerequisite(SIM, TEST_FIRMWARE, VALIDATOR, PYTHON);
const scope = daemonScope();
const LUKS_KEY_GUID = '736869e5-84f0-4973-92ec-06879ce3da0b';

/** Collect the NDJSON event stream until `stop()`. */
function eventStream(socketPath: string): { lines: string[]; stop(): void; ready: Promise<void> } {
  const lines: string[] = [];
  let stop = (): void => undefined;
  const ready = new Promise<void>((resolve) => {
    const req = request({ socketPath, method: 'GET', path: '/v1/events' }, (res) => {
      res.on('data', (c: Buffer) => {
        lines.push(c.toString('utf8'));
        resolve();
      });
    });
    req.on('error', () => undefined);
    req.end();
    stop = () => req.destroy();
  });
  return { lines, stop: () => stop(), ready };
}

describe.skipIf(missing !== null)(`launch secrets through the daemon${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it("injects the owner's secret and never logs it", async () => {
    const dir = await scope.dir();
    await writeVm(dir, 'vault', ['attest: hold', `firmware: ${TEST_FIRMWARE}`]);
    const daemon = scope.daemon(dir, ['--log-level', 'trace']);
    await daemon.start();
    const events = eventStream(daemon.socket);
    await events.ready;
    await daemon.api('POST', '/v1/vms/vault/start');
    const record = JSON.parse(await readFile((await daemon.status('vault')).record ?? '', 'utf8')) as { validateArgs: string[] };

    // The owner: verify the measurement and package a key, offline, with the platform's TIK/TEK.
    const sim = simStatus(dir, 'vault') as unknown as { tikFile: string; tekFile: string };
    const key = join(dir, 'luks.key');
    await writeFile(key, 'correct horse battery staple');
    const header = join(dir, 'header.b64');
    const payload = join(dir, 'payload.b64');
    const built = await runProcess(PYTHON, [
      VALIDATOR,
      ...record.validateArgs,
      '--tik',
      sim.tikFile,
      '--tek',
      sim.tekFile,
      '--inject-secret',
      `luks-key:${key}`,
      '--secret-header',
      header,
      '--secret-payload',
      payload,
    ]);
    expect({ code: built.code, stderr: built.stderr }).toEqual({ code: 0, stderr: '' });
    const packetHeader = (await readFile(header, 'utf8')).trim();
    const secret = (await readFile(payload, 'utf8')).trim();

    expect(await daemon.api('POST', '/v1/vms/vault/attest', { action: 'inject-secret', packetHeader, secret })).toMatchObject({
      vm: 'vault',
      action: 'inject-secret',
      state: 'held',
      headerBytes: 52,
    });
    expect(simStatus(dir, 'vault').injectedSecrets[0]).toMatchObject({ secrets: [{ guid: LUKS_KEY_GUID }] });

    // A restart keeps the count (and the hold); the owner then approves.
    await daemon.crash();
    await daemon.start(['--on-shutdown', 'shutdown']);
    expect(await daemon.status('vault')).toMatchObject({ state: 'held', secretsInjected: 1 });
    expect(await daemon.api('POST', '/v1/vms/vault/attest', { action: 'approve' })).toMatchObject({ state: 'running' });
    events.stop();
    expect(await daemon.api('POST', '/v1/vms/vault/stop', { force: true })).toMatchObject({ state: 'stopped' });
    daemon.signal('SIGTERM');
    expect(await daemon.exited()).toEqual({ code: 0, signal: null });

    const written = [
      daemon.output,
      events.lines.join(''),
      await readFile(join(dir, 'run', 'vault', 'qemu.log'), 'utf8'),
      await readFile(join(dir, 'run', 'vault', 'state.json'), 'utf8'),
    ];
    expect(daemon.output).toContain('sev-inject-launch-secret'); // trace logged the command itself…
    expect(events.lines.join('')).toContain('"event":"secret-injected"');
    for (const text of written) {
      for (const needle of [secret, packetHeader, secret.slice(0, 24), packetHeader.slice(0, 24), 'correct horse'])
        expect(text).not.toContain(needle);
    }
    expect(await nothingLeft(dir)).toEqual([]);
  });
});
