// (d) Every --sim-fault fails closed with its own code: the guest never ran (the sim's cont count
// is 0, or QEMU died in LAUNCH_FINISH at the first cont), and no QEMU or sim process is left.
// slow-qmp under the QMP command timeout still succeeds; over it, the launch fails closed.
import { describe, expect, it } from 'vitest';
import {
  DEBIAN_OVMF,
  SIM,
  cleanupScope,
  missingPrerequisite,
  processesMentioning,
  simRun,
  simStatus,
  writeConf,
  type SevsupRun,
} from './harness.js';

const missing = missingPrerequisite(SIM, DEBIAN_OVMF);
const scope = cleanupScope();

async function launch(name: string, extra: readonly string[]): Promise<{ dir: string; run: SevsupRun }> {
  const dir = await scope.dir();
  const conf = await writeConf(dir, { name, firmware: DEBIAN_OVMF });
  return { dir, run: scope.track(simRun(dir, conf, extra)) };
}

describe.skipIf(missing !== null)(`sim faults fail closed${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it.each([
    [
      'wrong-policy',
      6,
      'SUP_ERR_CHECK_POLICY_MISMATCH',
      /^VM f-wrong-policy: QEMU applied SEV policy 0x[0-9a-f]+ \([^)]*\), but the config asks for 0xb \(SEV, NODBG, NOKS, NOSEND\); the guest was not resumed$/,
    ],
    [
      'sev-disabled',
      6,
      'SUP_ERR_CHECK_SEV_DISABLED',
      /^VM f-sev-disabled: QEMU reports SEV is not enabled \(query-sev: enabled false\), expected an SEV guest with policy 0xb/,
    ],
    [
      'no-measurement',
      6,
      'SUP_ERR_CHECK_STATE',
      /^VM f-no-measurement: SEV state is launch-update, expected launch-secret: LAUNCH_MEASURE failed/,
    ],
  ])('%s → exit %i, %s, never resumed', async (fault, exit, code, message) => {
    const name = `f-${fault}`;
    const { dir, run } = await launch(name, ['--sim-fault', fault]);
    const result = await run.done;
    expect(result.code).toBe(exit);
    const failed = run.events.at(-1);
    expect(failed).toMatchObject({ event: 'failed', code });
    expect(String(failed?.['message'])).toMatch(message);
    expect(run.names()).not.toContain('resumed');
    expect(run.names()).not.toContain('measured');
    expect(simStatus(dir, name).contCount).toBe(0);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it('crash-on-cont ends with a clear error quoting QEMU', async () => {
    const { dir, run } = await launch('f-crash', ['--sim-fault', 'crash-on-cont']);
    const result = await run.done;
    expect(result.code).toBe(5);
    const failed = run.events.at(-1);
    expect(failed).toMatchObject({ event: 'failed', code: 'SUP_ERR_QEMU_EXITED' });
    expect(String(failed?.['message'])).toMatch(
      /^VM f-crash: QEMU exited with code 1 during resume \((cont|query-status)\): qemu-system-x86_64: sev_launch_finish: LAUNCH_FINISH ret=-5 fw_error=19 'Hardware error'$/,
    );
    expect(run.names()).not.toContain('running');
    expect(result.stderr).toMatch(/\[SUP_ERR_QEMU_EXITED\]\n$/);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it('slow-qmp under the command timeout still reaches running', async () => {
    const { dir, run } = await launch('f-slow-ok', ['--sim-fault', 'slow-qmp', '--sim-delay-ms', '150', '--qmp-timeout', '5000']);
    await run.waitFor('running');
    expect(run.names()).toEqual(['starting', 'spawned', 'checked', 'measured', 'resumed', 'running']);
    run.signal('SIGTERM');
    expect((await run.done).code).toBe(0);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it('slow-qmp over the command timeout fails closed', async () => {
    const { dir, run } = await launch('f-slow-bad', ['--sim-fault', 'slow-qmp', '--sim-delay-ms', '1500', '--qmp-timeout', '400']);
    const result = await run.done;
    expect(result.code).toBe(5);
    expect(run.events.at(-1)).toMatchObject({ event: 'failed', code: 'SUP_ERR_QMP_TIMEOUT' });
    expect(run.names()).not.toContain('resumed');
    expect(simStatus(dir, 'f-slow-bad').contCount).toBe(0);
    expect(processesMentioning(dir)).toEqual([]);
  });
});
