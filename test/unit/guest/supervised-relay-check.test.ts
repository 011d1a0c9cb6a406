// `attest: relay`'s credentials are checked in the preflight step that superviseGuest composes for
// `sevsup run` and the daemon alike: a guest whose CA, token, certificate or key is missing, open to
// others or unparseable fails before QEMU is spawned, with the config key and the file named (not
// at hold time, after a launch). A real lifecycle; the launcher and the preflight are spies, so
// "nothing was spawned" is asserted.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadVmConfig } from '../../../src/config/vm-config.js';
import type { VmSpec } from '../../../src/config/vm-spec.js';
import { preflightSpy, startSupervised } from '../../support/supervised-start.js';
import { isSupervisorError, type SupervisorError } from '../../../src/errors.js';
import { preflightWithRelayCheck } from '../../../src/guest/supervised.js';
import { makeRelayPki, type RelayPki } from '../../support/relay-owner.js';

const dir = mkdtempSync(join(tmpdir(), 'supervised-relay-'));
let pki: RelayPki;
beforeAll(async () => {
  pki = await makeRelayPki(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A relayed VM as the real config loader makes it. */
async function spec(lines: readonly string[]): Promise<VmSpec> {
  const sub = join(dir, `vm-${n++}`);
  mkdirSync(sub);
  const file = join(sub, 'vm1.conf');
  writeFileSync(
    file,
    `${['memory: 256', 'bios: ovmf', 'amd-sev: type=std,nodbg=1', 'attest: relay', 'attest-url: https://owner.example:8443/attest', ...lines].join('\n')}\n`,
  );
  return loadVmConfig(file);
}

describe('superviseGuest: attest: relay credentials before spawn', () => {
  it('a token file others can read: start fails with SUP_ERR_RELAY_CREDENTIALS naming attest-token-file and the file; nothing spawned', async () => {
    const token = join(dir, 'open.token');
    writeFileSync(token, `${pki.token}\n`);
    chmodSync(token, 0o644);
    const spy = preflightSpy();
    const { error, launches, state } = await startSupervised({
      spec: await spec([`attest-ca: ${pki.caFile}`, `attest-token-file: ${token}`]),
      platform: 'simulated',
      binary: '/usr/bin/qemu-system-x86_64',
      dir,
      preflight: spy.preflight,
    });
    expect(isSupervisorError(error) && error.code).toBe('SUP_ERR_RELAY_CREDENTIALS');
    expect((error as SupervisorError).message).toContain(`attest-token-file ${token} has permissions 0644, which are too open`);
    expect(spy.calls).toEqual([]);
    expect(launches).toBe(0);
    expect(state).toBe('failed');
  });

  it.each([
    ['a missing CA', (p: RelayPki) => [`attest-ca: ${join(dir, 'none.pem')}`, `attest-token-file: ${p.tokenFile}`], 'attest-ca'],
    [
      'a missing token file',
      (p: RelayPki) => [`attest-ca: ${p.caFile}`, `attest-token-file: ${join(dir, 'none.token')}`],
      'attest-token-file',
    ],
    [
      'a key that is not the certificate’s',
      (p: RelayPki) => [`attest-ca: ${p.caFile}`, `attest-cert: ${p.client.certFile}`, `attest-key: ${p.server.keyFile}`],
      'attest-key',
    ],
  ])('%s is refused before the rest of preflight', async (_what, lines, key) => {
    const spy = preflightSpy();
    chmodSync(pki.server.keyFile, 0o600);
    await expect(preflightWithRelayCheck(spy.preflight)(await spec(lines(pki)))).rejects.toMatchObject({
      code: 'SUP_ERR_RELAY_CREDENTIALS',
      message: expect.stringMatching(new RegExp(`^${key} /`)),
    });
    expect(spy.calls).toEqual([]);
  });

  it('good credentials go on to preflight', async () => {
    const spy = preflightSpy();
    const check = preflightWithRelayCheck(spy.preflight);
    await expect(check(await spec([`attest-ca: ${pki.caFile}`, `attest-token-file: ${pki.tokenFile}`]))).rejects.toMatchObject({
      code: 'SUP_ERR_KERNEL_READ',
    });
    expect(spy.calls).toEqual(['vm1']);
  });
});
