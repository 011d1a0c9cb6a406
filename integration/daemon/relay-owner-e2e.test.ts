// End to end, both real processes: `sevsup daemon --platform sim` relays its held guests to
// `sevsup owner serve` over real TLS on loopback (certificates made here, a bearer token). The
// owner's keys reach the simulator through a SIMULATED launch session (`sevsup owner session`), so
// the owner verifies the measurement under its own TIK: a guest launched from the owner's reference
// firmware is approved and runs; one with the owner's secret gets it injected, then runs; one whose
// owner entry expects another digest is rejected with the owner's reason and never runs.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { auditPathFor } from '../../src/relay/relay.js';
import { makeRelayPki } from '../../test/support/relay-owner.js';
import { terminate } from '../../test/support/terminate.js';
import { SIM, TEST_FIRMWARE, missingPrerequisite, simStatus } from '../run/harness.js';
import { SEVSUP, daemonScope, nothingLeft, writeVm } from './harness.js';

const missing = missingPrerequisite(SIM, TEST_FIRMWARE);
const scope = daemonScope();
const run = promisify(execFile);

describe.skipIf(missing !== null)(`daemon ↔ sevsup owner serve${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it("approves the owner's reference launch and rejects another, with nobody typing", async () => {
    const dir = await scope.dir();
    const pki = await makeRelayPki(dir);
    const tik = join(dir, 'owner.tik');
    const tek = join(dir, 'owner.tek');
    await writeFile(tik, randomBytes(16), { mode: 0o600 });
    await writeFile(tek, randomBytes(16), { mode: 0o600 });
    await run(process.execPath, [SEVSUP, 'owner', 'session', '--tik', tik, '--tek', tek, '--out', join(dir, 'session')]);
    await writeFile(join(dir, 'luks'), 'the owner-only disk passphrase', { mode: 0o600 });
    const ownerConf = join(dir, 'owner.conf');
    await writeFile(
      ownerConf,
      [
        'listen: 127.0.0.1:0',
        `tls-cert: ${pki.server.certFile}`,
        `tls-key: ${pki.server.keyFile}`,
        `token: node-7:${pki.tokenFile}`,
        `state-file: ${join(dir, 'answered.json')}`,
        '',
        '[guest node-7/good]',
        'type: sev',
        `firmware: ${TEST_FIRMWARE}`,
        'policy: 0xb',
        `tik: ${tik}`,
        `tek: ${tek}`,
        '',
        '[guest node-7/vault]',
        'type: sev',
        `firmware: ${TEST_FIRMWARE}`,
        'policy: 0xb',
        `tik: ${tik}`,
        `tek: ${tek}`,
        `secret: luks-key:${join(dir, 'luks')}`,
        '',
        '[guest node-7/changed]',
        'type: sev',
        `expected-digest: ${'00'.repeat(32)}`,
        'policy: 0xb',
        `tik: ${tik}`,
        `tek: ${tek}`,
        '',
      ].join('\n'),
    );
    const owner = spawn(process.execPath, [SEVSUP, 'owner', 'serve', '--config', ownerConf], { stdio: ['ignore', 'pipe', 'pipe'] });
    const ownerEnded = new Promise((resolve) => owner.once('close', resolve));
    let ownerOut = '';
    owner.stderr?.on('data', (d: Buffer) => (ownerOut += d.toString()));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        createInterface({ input: owner.stdout as NodeJS.ReadableStream }).on('line', (line) => {
          ownerOut += `${line}\n`;
          const m = /"address":"127\.0\.0\.1:(\d+)"/.exec(line);
          if (m !== null) resolve(Number(m[1]));
        });
        owner.once('exit', (code) => reject(new Error(`owner serve exited ${code}: ${ownerOut}`)));
      });
      const relay = [
        `firmware: ${TEST_FIRMWARE}`,
        `launch: dh-cert=${join(dir, 'session', 'dh-cert')},session=${join(dir, 'session', 'session')}`,
        'attest: relay',
        `attest-url: https://localhost:${port}/attest`,
        `attest-ca: ${pki.caFile}`,
        `attest-token-file: ${pki.tokenFile}`,
        'hold-timeout: 60',
      ];
      await writeVm(dir, 'good', relay);
      await writeVm(dir, 'vault', relay);
      await writeVm(dir, 'changed', relay);
      const daemon = scope.daemon(dir, ['--host-id', 'node-7']);
      await daemon.start();
      void daemon.api('POST', '/v1/vms/good/start').catch(() => undefined);
      void daemon.api('POST', '/v1/vms/vault/start').catch(() => undefined);
      void daemon.api('POST', '/v1/vms/changed/start').catch(() => undefined);

      const good = await daemon.waitState('good', ['running', 'failed']);
      expect(good).toMatchObject({ state: 'running', error: null });
      const goodAudit = await readFile(auditPathFor(good.record ?? ''), 'utf8');
      expect(goodAudit).toContain('"decision":"approve"');

      const vault = await daemon.waitState('vault', ['running', 'failed']);
      expect(vault).toMatchObject({ state: 'running', secretsInjected: 1, error: null });
      expect(simStatus(dir, 'vault').injectedSecrets).toEqual([
        expect.objectContaining({ secrets: [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', length: 30 }] }),
      ]);

      const changed = await daemon.waitState('changed', ['running', 'failed']);
      expect(changed).toMatchObject({ state: 'failed', error: { code: 'SUP_ERR_RELAY_REJECTED' } });
      expect(changed.error?.message).toMatch(/the owner's service rejected it: .+/);
      expect(simStatus(dir, 'changed').contCount).toBe(0);
      expect(await readFile(auditPathFor(changed.record ?? ''), 'utf8')).toContain('"event":"rejected"');

      for (const text of [daemon.output, ownerOut]) {
        expect(text).not.toContain(pki.token);
        expect(text).not.toContain('the owner-only disk passphrase');
      }
      await daemon.api('POST', '/v1/vms/good/stop', { force: true });
      await daemon.api('POST', '/v1/vms/vault/stop', { force: true });
      daemon.signal('SIGTERM');
      expect(await daemon.exited()).toEqual({ code: 0, signal: null });
    } finally {
      await terminate(owner, ownerEnded, 5000);
    }
    expect(await nothingLeft(dir)).toEqual([]);
  });
});
