// The simulated platform end to end with buildQemuArgv's argv for a kernel-hashes SEV guest (test
// firmware, real kernel): QEMU 7.2's QMP answers, the measurement checked by libvirt's validator
// (the external oracle), launch secrets packaged by the validator, cont under TCG, and the
// migration blocker afterwards.
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeMeasurementMac, decodeMeasurement, encodeMeasurement } from '../../src/sev/measurement.js';
import { HAVE_VALIDATOR, runValidator, type ValidatorArgs } from '../../test/support/validator.js';
import {
  argvFor,
  cleanupDir,
  CMDLINE,
  expectNoProcessesLeft,
  KERNEL,
  makeDir,
  missingPrerequisite,
  paths,
  RawQmp,
  readStatus,
  spec,
  startSim,
  TEST_FIRMWARE,
  type Paths,
  type SimProcess,
} from './harness.js';

const missing = missingPrerequisite() ?? (HAVE_VALIDATOR ? null : 'virt-qemu-sev-validate is missing');
const LUKS_KEY = '736869e5-84f0-4973-92ec-06879ce3da0b';

describe.skipIf(missing !== null)(`sim: kernel-hashes SEV guest${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  let dir: string;
  let p: Paths;
  let sim: SimProcess;
  let qmp: RawQmp;
  let measurement: string;

  const validatorArgs = (o: Partial<ValidatorArgs> = {}): ValidatorArgs => ({
    measurement,
    apiMajor: 1,
    apiMinor: 55,
    buildId: 21,
    policy: 0xb,
    firmware: TEST_FIRMWARE,
    tik: join(dir, 'sim-tik.bin'),
    tek: join(dir, 'sim-tek.bin'),
    kernel: KERNEL,
    cmdline: CMDLINE,
    ...o,
  });

  /** A launch-secret packet written by the validator (offline) for `measurement`. */
  async function packet(secret: string, o: Partial<ValidatorArgs> = {}): Promise<{ header: string; payload: string }> {
    const file = join(dir, 'secret.txt');
    await writeFile(file, secret);
    const header = join(dir, 'header.b64');
    const payload = join(dir, 'payload.b64');
    const r = await runValidator(validatorArgs({ secrets: [`luks-key:${file}`], secretHeader: header, secretPayload: payload, ...o }));
    expect(r.exitCode, r.stderr).toBe(0);
    return { header: await readFile(header, 'utf8'), payload: await readFile(payload, 'utf8') };
  }

  beforeAll(async () => {
    dir = await makeDir();
    p = paths(dir);
    sim = startSim([], argvFor(spec(), p, { serial: true }));
    qmp = await RawQmp.connect(p.monitor);
  });

  afterAll(async () => {
    qmp?.close();
    await cleanupDir(dir, sim === undefined ? [] : [sim]);
  });

  it("greets with the real QEMU's greeting and negotiates", async () => {
    expect(qmp.greeting).toMatch(
      /^\{"QMP": \{"version": \{"qemu": \{"micro": \d+, "minor": 2, "major": 7\}, "package": ".*"\}, "capabilities": \["oob"\]\}\}$/,
    );
    expect(await qmp.raw('{"execute":"query-sev","id":0}')).toBe(
      '{"id": 0, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with \'qmp_capabilities\'"}}',
    );
    expect(await qmp.raw('{"execute":"qmp_capabilities","id":"c"}')).toBe('{"return": {}, "id": "c"}');
  });

  it('answers query-sev as QEMU 7.2 on an SEV host, in launch-secret after -S', async () => {
    expect(await qmp.raw('{"execute":"query-sev","id":1}')).toBe(
      '{"return": {"enabled": true, "api-minor": 55, "handle": 1, "state": "launch-secret", "api-major": 1, "build-id": 21, "policy": 11}, "id": 1}',
    );
    expect(await qmp.raw('{"execute":"query-sev","arguments":{"x":1}}')).toBe(
      '{"error": {"class": "GenericError", "desc": "Parameter \'x\' is unexpected"}}',
    );
  });

  it('returns a measurement that libvirt validates offline, and not for a changed kernel', async () => {
    const reply = (await qmp.ret('query-sev-launch-measure')) as { data: string };
    measurement = reply.data;
    expect(Buffer.from(measurement, 'base64')).toHaveLength(48);
    expect(readStatus(p).measurement).toBe(measurement);
    expect(await runValidator(validatorArgs())).toMatchObject({ exitCode: 0 });
    const changed = join(dir, 'vmlinuz-changed');
    await copyFile(KERNEL, changed);
    const bytes = await readFile(changed);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
    await writeFile(changed, bytes);
    expect((await runValidator(validatorArgs({ kernel: changed }))).exitCode).toBe(1);
    expect((await runValidator(validatorArgs({ cmdline: `${CMDLINE} x` }))).exitCode).toBe(1);
  });

  it('answers query-sev-capabilities and HMP info sev', async () => {
    const caps = (await qmp.ret('query-sev-capabilities')) as Record<string, unknown>;
    expect(caps).toMatchObject({
      cbitpos: 47,
      'reduced-phys-bits': 1,
      pdh: expect.any(String),
      'cert-chain': expect.any(String),
      'cpu0-id': expect.any(String),
    });
    expect(await qmp.ret('human-monitor-command', { 'command-line': 'info sev' })).toBe(
      'handle: 1\r\nstate: launch-secret\r\nbuild: 21\r\napi version: 1.55\r\ndebug: off\r\nkey-sharing: off\r\n',
    );
  });

  it('returns an SEV attestation report over the mnonce, launch digest and policy', async () => {
    const mnonce = Buffer.alloc(16, 0x5a);
    const { data } = (await qmp.ret('query-sev-attestation-report', { mnonce: mnonce.toString('base64') })) as { data: string };
    const report = Buffer.from(data, 'base64');
    const status = JSON.parse(await readFile(p.status, 'utf8')) as { launchDigest: string };
    expect(report).toHaveLength(0xd0);
    expect(report.subarray(0, 16)).toEqual(mnonce);
    expect(report.subarray(16, 48).toString('hex')).toBe(status.launchDigest);
    expect(report.readUInt32LE(0x30)).toBe(0xb);
  });

  it('accepts a launch secret packaged by the validator under the TIK/TEK, into the firmware secret area', async () => {
    const { header, payload } = await packet('correct horse battery staple');
    expect(await qmp.cmd('sev-inject-launch-secret', { 'packet-header': header, secret: payload }, 's1')).toEqual({ return: {}, id: 's1' });
    // The firmware's secret area (the test image declares one), the validator's luks-key GUID.
    const injected = readStatus(p).injectedSecrets;
    expect(injected).toHaveLength(1);
    expect(injected[0]?.secrets).toEqual([{ guid: LUKS_KEY, length: 'correct horse battery staple'.length }]);
    expect(injected[0]?.gpa).toBeGreaterThan(0);
    expect(sim.stderr).toMatch(/^sevsup-sim: simulated: launch secret accepted at gpa 0x[0-9a-f]+: 1 secret\(s\): 736869e5-/m);
    expect(sim.stderr).not.toContain('correct horse');
  });

  it('refuses a packet the validator made under another TIK, as the PSP would', async () => {
    // The validator first checks the measurement under its TIK, so it gets the measurement this
    // launch would have under that other TIK (same digest and mnonce).
    const otherTik = join(dir, 'other-tik.bin');
    const tik = Buffer.alloc(16, 0x42);
    await writeFile(otherTik, tik);
    const status = JSON.parse(await readFile(p.status, 'utf8')) as { launchDigest: string };
    const { mnonce } = decodeMeasurement(measurement);
    const mac = computeMeasurementMac({
      tik,
      apiMajor: 1,
      apiMinor: 55,
      buildId: 21,
      policy: 0xb,
      digest: Buffer.from(status.launchDigest, 'hex'),
      mnonce,
    });
    const { header, payload } = await packet('x', { tik: otherTik, measurement: encodeMeasurement(mac, mnonce) });
    expect(await qmp.cmd('sev-inject-launch-secret', { 'packet-header': header, secret: payload, gpa: 0x900000 })).toEqual({
      error: { class: 'GenericError', desc: "SEV: failed to inject secret ret=-5 fw_error=11 'Bad measurement'" },
    });
    expect(readStatus(p).injectedSecrets).toHaveLength(1);
    expect(sim.stderr).toMatch(/launch secret refused: SEV: failed to inject secret .* \(packet header MAC does not match/);
  });

  it('serves one client at a time and greets the next one anew', async () => {
    const waiting = RawQmp.connect(p.monitor);
    await delay(300);
    qmp.close();
    const next = await waiting;
    expect(next.greeting).toMatch(/^\{"QMP": /);
    qmp = next;
    expect(await qmp.raw('{"execute":"query-sev"}')).toMatch(/CommandNotFound/);
    await qmp.raw('{"execute":"qmp_capabilities"}');
  });

  it('runs the guest under TCG after cont, and then blocks migration', async () => {
    expect(await qmp.cmd('cont', undefined, 'go')).toEqual({ return: {}, id: 'go' });
    expect(qmp.events.map((e) => e['event'])).toContain('RESUME');
    expect(await qmp.ret('query-status')).toMatchObject({ status: 'running', running: true });
    expect(await qmp.ret('query-sev')).toMatchObject({ state: 'running', enabled: true });
    expect(readStatus(p)).toMatchObject({ state: 'running', contCount: 1 });
    // The measurement stays available; injection does not.
    expect(await qmp.ret('query-sev-launch-measure')).toEqual({ data: measurement });
    const { header, payload } = await packet('late');
    expect(await qmp.cmd('sev-inject-launch-secret', { 'packet-header': header, secret: payload })).toEqual({
      error: { class: 'GenericError', desc: 'SEV: Not in correct state. (LSECRET) 3' },
    });
    expect(await qmp.raw('{"execute":"migrate","arguments":{"uri":"exec:cat > /dev/null"},"id":9}')).toBe(
      '{"id": 9, "error": {"class": "GenericError", "desc": "SEV: Migration is not implemented"}}',
    );
    expect(await qmp.ret('query-migrate')).toEqual({});
    expect(await qmp.ret('human-monitor-command', { 'command-line': 'migrate -d exec:cat>/dev/null' })).toBe(
      'Error: SEV: Migration is not implemented\r\n',
    );
    expect(await qmp.ret('human-monitor-command', { 'command-line': 'savevm s1' })).toBe('Error: SEV: Migration is not implemented\r\n');
    expect(await qmp.ret('snapshot-save', { 'job-id': 'snap', tag: 't', vmstate: 'none', devices: [] })).toEqual({});
    let jobs: { id: string; status: string; error?: string }[] = [];
    for (let i = 0; i < 100 && jobs[0]?.status !== 'concluded'; i++) {
      jobs = (await qmp.ret('query-jobs')) as typeof jobs;
      await delay(20);
    }
    expect(jobs).toEqual([
      expect.objectContaining({ id: 'snap', type: 'snapshot-save', status: 'concluded', error: 'SEV: Migration is not implemented' }),
    ]);
    expect(await qmp.ret('job-dismiss', { id: 'snap' })).toEqual({});
  });

  it('boots the real kernel under TCG (the serial console shows it)', async () => {
    const deadline = Date.now() + 60_000;
    let serial = '';
    while (!serial.includes('Linux version') && Date.now() < deadline) {
      await delay(250);
      serial = existsSync(p.serial) ? await readFile(p.serial, 'latin1') : '';
    }
    expect(serial).toContain('Linux version');
  });

  it('exits with QEMU on quit, removing its pidfile, with nothing left running', async () => {
    expect(Number(await readFile(p.pidfile, 'utf8'))).toBe(sim.pid);
    await qmp.cmd('quit');
    expect(await sim.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(p.pidfile)).toBe(false);
    await expectNoProcessesLeft(dir);
  });
});
