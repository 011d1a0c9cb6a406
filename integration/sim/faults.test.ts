// The simulated platform's fault switches, each against the real QEMU underneath, and the 9.1+
// reply shape. Every test ends with no sim or QEMU process left.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPidAlive } from '../../src/process/pid.js';
import { HAVE_VALIDATOR, runValidator } from '../../test/support/validator.js';
import {
  argvFor,
  CMDLINE,
  KERNEL,
  missingPrerequisite,
  readStatus,
  spec,
  TEST_FIRMWARE,
  useSimFixture,
  type RawQmp,
  type SimProcess,
} from './harness.js';

const missing = missingPrerequisite();

describe.skipIf(missing !== null)(`sim faults${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  const f = useSimFixture();

  const launch = async (simArgs: readonly string[]): Promise<{ sim: SimProcess; qmp: RawQmp }> => {
    const sim = f.launch(argvFor(spec(), f.p), simArgs);
    return { sim, qmp: await f.connect() };
  };

  it('wrong-policy: query-sev and the measurement carry another policy than requested', async () => {
    const { qmp } = await launch(['--sim-fault', 'wrong-policy']);
    const sev = (await qmp.ret('query-sev')) as { policy: number };
    expect(sev.policy).not.toBe(0xb);
    expect(sev.policy).toBe(0xa);
    expect(readStatus(f.p)).toMatchObject({ policy: 0xa });
    if (HAVE_VALIDATOR) {
      const { data } = (await qmp.ret('query-sev-launch-measure')) as { data: string };
      const args = {
        measurement: data,
        apiMajor: 1,
        apiMinor: 55,
        buildId: 21,
        firmware: TEST_FIRMWARE,
        tik: join(f.dir, 'sim-tik.bin'),
        tek: join(f.dir, 'sim-tek.bin'),
        kernel: KERNEL,
        cmdline: CMDLINE,
      };
      expect((await runValidator({ ...args, policy: 0xb })).exitCode).toBe(1);
      expect((await runValidator({ ...args, policy: 0xa })).exitCode).toBe(0);
    }
  });

  it("sev-disabled: query-sev says enabled false with 7.2's zeros, no measurement", async () => {
    const { qmp } = await launch(['--sim-fault', 'sev-disabled']);
    expect(await qmp.raw('{"execute":"query-sev"}')).toBe(
      '{"return": {"enabled": false, "api-minor": 0, "handle": 0, "state": "uninit", "api-major": 0, "build-id": 0, "policy": 0}}',
    );
    expect(await qmp.raw('{"execute":"query-sev-launch-measure"}')).toBe(
      '{"error": {"class": "GenericError", "desc": "SEV launch measurement is not available"}}',
    );
    expect(await qmp.ret('human-monitor-command', { 'command-line': 'info sev' })).toBe('SEV is not enabled\r\n');
  });

  it('no-measurement: stuck in launch-update after a LAUNCH_MEASURE failure line; cont then dies in LAUNCH_FINISH', async () => {
    const { sim, qmp } = await launch(['--sim-fault', 'no-measurement']);
    expect(sim.stderr).toContain(
      "qemu-system-x86_64: sev_launch_get_measure: LAUNCH_MEASURE ret=-5 fw_error=19 'Platform is already owned'\n",
    );
    expect(await qmp.ret('query-sev')).toMatchObject({ enabled: true, state: 'launch-update' });
    expect(await qmp.cmd('query-sev-launch-measure')).toEqual({
      error: { class: 'GenericError', desc: 'SEV launch measurement is not available' },
    });
    qmp.raw('{"execute":"cont"}').catch(() => undefined);
    expect(await sim.exited).toEqual({ code: 1, signal: null });
    expect(sim.stderr).toContain("qemu-system-x86_64: sev_launch_finish: LAUNCH_FINISH ret=-5 fw_error=2 'Guest state is invalid'\n");
  });

  it('crash-on-cont: the first cont prints a LAUNCH_FINISH failure and exits 1, QEMU killed', async () => {
    const { sim, qmp } = await launch(['--sim-fault', 'crash-on-cont']);
    const qemuPid = readStatus(f.p).qemuPid as number;
    expect(await qmp.ret('query-sev')).toMatchObject({ state: 'launch-secret' });
    qmp.raw('{"execute":"cont"}').catch(() => undefined);
    expect(await sim.exited).toEqual({ code: 1, signal: null });
    expect(sim.stderr).toMatch(/^qemu-system-x86_64: sev_launch_finish: LAUNCH_FINISH ret=-5 fw_error=19 'Hardware error'$/m);
    expect(isPidAlive(qemuPid)).toBe(false);
    expect(existsSync(f.p.pidfile)).toBe(false);
  });

  it('slow-qmp: every reply comes after the delay, in order', async () => {
    const { qmp } = await launch(['--sim-fault', 'slow-qmp', '--sim-delay-ms', '300']);
    const started = Date.now();
    const a = await qmp.cmd('query-status', undefined, 1);
    const b = await qmp.cmd('query-sev', undefined, 2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    expect([a['id'], b['id']]).toEqual([1, 2]);
  });

  it('9.1 reply shape: query-sev carries sev-type', async () => {
    const { qmp } = await launch(['--sim-reply-shape', '9.1']);
    expect(await qmp.raw('{"execute":"query-sev"}')).toBe(
      '{"return": {"enabled": true, "api-minor": 55, "handle": 1, "state": "launch-secret", "api-major": 1, "sev-type": "sev", "build-id": 21, "policy": 11}}',
    );
  });
});
