// (c) The attestation hold on the simulated platform, driven as the guest owner would: through
// `sevsup attest` over the control socket. Approve resumes; reject and timeout destroy the guest
// without it ever running (the sim's cont count stays 0); a secret built by libvirt's validator
// reaches the sim, a tampered one is refused with QEMU's words; nothing resumes a guest before
// approval.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { callControl } from '../../src/api/client.js';
import {
  DEBIAN_OVMF,
  KERNEL,
  PYTHON,
  SIM,
  TEST_FIRMWARE,
  VALIDATOR,
  cleanupScope,
  missingPrerequisite,
  processesMentioning,
  runProcess,
  sevsup,
  simRun,
  simStatus,
  writeConf,
  writeKey,
} from './harness.js';

const missing = missingPrerequisite(SIM, KERNEL, TEST_FIRMWARE, VALIDATOR, PYTHON);
const scope = cleanupScope();
const dirFor = (): Promise<string> => scope.dir();
const track = scope.track;

const LUKS_KEY_GUID = '736869e5-84f0-4973-92ec-06879ce3da0b';

describe.skipIf(missing !== null)(`the attestation hold${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it('stays paused until approved; nothing else resumes it; approve runs it', async () => {
    const dir = await dirFor();
    const conf = await writeConf(dir, { name: 'h1', firmware: DEBIAN_OVMF });
    const run = track(simRun(dir, conf, ['--hold']));
    const held = await run.waitFor('held');
    expect(held).toMatchObject({ timeoutSeconds: 600, controlSocket: join(dir, 'run', 'h1', 'control.sock') });

    const socketPath = join(dir, 'run', 'h1', 'control.sock');
    const status = await callControl({ socketPath, method: 'GET', path: '/v1/vms/h1' });
    expect(status).toMatchObject({ vm: 'h1', state: 'held', platform: 'simulated', sev: true, secretsInjected: 0, error: null });
    const record = await callControl({ socketPath, method: 'GET', path: '/v1/vms/h1/measurement' });
    expect(JSON.parse(await readFile(String((await run.waitFor('measured'))['record']), 'utf8'))).toEqual(record);

    // No way to cont but approval: the API has no such action, and the guest stays unrun.
    await expect(callControl({ socketPath, method: 'POST', path: '/v1/vms/h1/attest', body: { action: 'cont' } })).rejects.toMatchObject({
      code: 'SUP_ERR_API_BAD_REQUEST',
    });
    expect(simStatus(dir, 'h1').contCount).toBe(0);

    const approved = await sevsup(['attest', '--run-dir', join(dir, 'run'), 'h1', '--approve']);
    expect(approved).toEqual({ code: 0, stdout: 'h1: approved; state running\n', stderr: '' });
    await run.waitFor('running');
    expect(run.names()).toEqual(['starting', 'spawned', 'checked', 'measured', 'held', 'resumed', 'running']);
    expect(simStatus(dir, 'h1').contCount).toBe(1);

    const again = await sevsup(['attest', '--run-dir', join(dir, 'run'), 'h1', '--approve']);
    expect(again.code).toBe(7);
    expect(again.stderr).toBe(
      'sevsup: VM h1 is running, not held for attestation; approve applies only to a held guest [SUP_ERR_ATTEST_NOT_HELD]\n',
    );
    run.signal('SIGINT');
    expect((await run.done).code).toBe(0);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it('reject destroys the guest unrun; inject without a secret area is refused first', async () => {
    const dir = await dirFor();
    const conf = await writeConf(dir, { name: 'h2', firmware: DEBIAN_OVMF });
    const run = track(simRun(dir, conf, ['--hold']));
    await run.waitFor('held');
    const header = join(dir, 'h.b64');
    const secret = join(dir, 's.b64');
    await writeFile(header, `${Buffer.alloc(52, 1).toString('base64')}\n`);
    await writeFile(secret, `${Buffer.alloc(64, 2).toString('base64')}\n`);
    const noArea = await sevsup(['attest', '--run-dir', join(dir, 'run'), 'h2', '--inject-secret', header, secret]);
    expect(noArea.code).toBe(7);
    expect(noArea.stderr).toBe(
      `sevsup: VM h2: no gpa given and the firmware ${DEBIAN_OVMF} has no usable launch-secret area (secret area is empty (base=0x0 size=0x0): QEMU would inject at guest address 0x0; give an explicit gpa); give the guest physical address with --gpa, or use a firmware that declares one (an OVMF AmdSev build) [SUP_ERR_SECRET_NO_AREA]\n`,
    );

    const rejected = await sevsup(['attest', '--run-dir', join(dir, 'run'), 'h2', '--reject', '--json']);
    expect(rejected.code).toBe(0);
    expect(JSON.parse(rejected.stdout)).toEqual({ vm: 'h2', action: 'reject', state: 'failed' });
    const result = await run.done;
    expect(result.code).toBe(7);
    expect(run.names()).toEqual(['starting', 'spawned', 'checked', 'measured', 'held', 'stopping', 'stopped', 'failed']);
    expect(run.events.at(-1)).toMatchObject({
      code: 'SUP_ERR_ATTEST_REJECTED',
      message: 'VM h2 was rejected by the guest owner; QEMU was stopped and the guest never ran',
    });
    expect(simStatus(dir, 'h2').contCount).toBe(0);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it('a hold nobody answers times out and is rejected', async () => {
    const dir = await dirFor();
    const conf = await writeConf(dir, { name: 'h3', firmware: DEBIAN_OVMF });
    const run = track(simRun(dir, conf, ['--hold', '--hold-timeout', '1']));
    const result = await run.done;
    expect(result.code).toBe(7);
    expect(run.events.at(-1)).toMatchObject({
      code: 'SUP_ERR_ATTEST_TIMEOUT',
      message: 'VM h3: nobody approved the guest within 1 s of holding it; it was rejected, QEMU was stopped and the guest never ran',
    });
    expect(run.names()).not.toContain('resumed');
    expect(simStatus(dir, 'h3').contCount).toBe(0);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it("an owner's secret (built by virt-qemu-sev-validate) reaches the platform; a tampered one is refused", async () => {
    const dir = await dirFor();
    const conf = await writeConf(dir, {
      name: 'h4',
      firmware: TEST_FIRMWARE,
      kernel: KERNEL,
      cmdline: 'console=ttyS0',
      sev: 'type=std,nodbg=1,noks=1,kernel-hashes=1',
    });
    const tik = await writeKey(join(dir, 'tik.bin'));
    const tek = await writeKey(join(dir, 'tek.bin'));
    const run = track(simRun(dir, conf, ['--hold', '--sim-tik', tik, '--sim-tek', tek]));
    const measured = await run.waitFor('measured');
    await run.waitFor('held');
    const record = JSON.parse(await readFile(String(measured['record']), 'utf8')) as { validateArgs: string[] };

    // The owner verifies the measurement and packages a LUKS key for this launch, offline.
    const key = join(dir, 'luks.key');
    await writeFile(key, 'correct horse battery staple');
    const header = join(dir, 'header.b64');
    const payload = join(dir, 'payload.b64');
    const built = await runProcess(PYTHON, [
      VALIDATOR,
      ...record.validateArgs,
      '--tik',
      tik,
      '--tek',
      tek,
      '--inject-secret',
      `luks-key:${key}`,
      '--secret-header',
      header,
      '--secret-payload',
      payload,
    ]);
    expect({ code: built.code, stderr: built.stderr }).toEqual({ code: 0, stderr: '' });

    const injected = await sevsup(['attest', '--run-dir', join(dir, 'run'), 'h4', '--inject-secret', header, payload, '--json']);
    expect(injected.code).toBe(0);
    const reply = JSON.parse(injected.stdout) as { gpa: number; headerBytes: number; secretBytes: number };
    expect(reply).toMatchObject({ vm: 'h4', action: 'inject-secret', state: 'held', headerBytes: 52 });
    const status = simStatus(dir, 'h4');
    expect(status.injectedSecrets).toHaveLength(1);
    expect(status.injectedSecrets[0]).toMatchObject({ gpa: reply.gpa, secrets: [{ guid: LUKS_KEY_GUID }] });
    expect(run.events.find((e) => e.event === 'secret-injected')).toMatchObject({ gpa: reply.gpa, headerBytes: 52 });

    // The same header over a changed payload: the MAC no longer verifies, the platform refuses.
    const good = (await readFile(payload, 'utf8')).trim();
    const flipped = Buffer.from(good, 'base64');
    flipped[0] = (flipped[0] ?? 0) ^ 0xff;
    const bad = join(dir, 'bad.b64');
    await writeFile(bad, flipped.toString('base64'));
    const refused = await sevsup(['attest', '--run-dir', join(dir, 'run'), 'h4', '--inject-secret', header, bad]);
    expect(refused.code).toBe(7);
    expect(refused.stderr).toBe(
      "sevsup: VM h4: the platform refused the launch secret: SEV: failed to inject secret ret=-5 fw_error=11 'Bad measurement' [SUP_ERR_SECRET_REFUSED]\n",
    );
    expect(simStatus(dir, 'h4').injectedSecrets).toHaveLength(1);

    // Secrets stay out of everything sevsup printed.
    const secretText = (await readFile(payload, 'utf8')).trim();
    expect(JSON.stringify(run.events)).not.toContain(secretText);
    expect(run.stderr).not.toContain(secretText);

    expect((await sevsup(['attest', '--run-dir', join(dir, 'run'), 'h4', '--approve'])).code).toBe(0);
    await run.waitFor('running');
    await run.cleanup();
    expect(processesMentioning(dir)).toEqual([]);
  });
});
