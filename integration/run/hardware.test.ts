// (a) The hardware platform against real QEMU 7.2, with a host that claims SEV. The wrapper
// test/fixtures/bin/qemu-unlinked-sev drops confidential-guest-support from -machine, so QEMU
// starts a plain VM whose query-sev honestly says enabled:false (qemu-sev-facts §2.3). sevsup must
// refuse it: never cont, QEMU stopped, exit 6 with SUP_ERR_CHECK_SEV_DISABLED. Without a usable
// /dev/kvm the wrapper runs that plain VM under TCG; QEMU's own SEV start-up error needs KVM.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { skipWithoutKvm } from '../kvm.js';
import { DEBIAN_OVMF, REAL_QEMU, REPO, SevsupRun, cleanupScope, missingPrerequisite, processesMentioning, writeConf } from './harness.js';

const WRAPPER = join(REPO, 'test', 'fixtures', 'bin', 'qemu-unlinked-sev');
const missing = missingPrerequisite(REAL_QEMU, DEBIAN_OVMF);
const scope = cleanupScope();

/** `sevsup run` on the hardware platform with `qemu`, and a caps file claiming SEV. */
async function hardwareRun(name: string, qemu: string): Promise<{ dir: string; run: SevsupRun }> {
  const dir = await scope.dir();
  const caps = join(dir, 'caps.json');
  await writeFile(
    caps,
    JSON.stringify({ 'amd-sev': { cbitpos: 47, 'reduced-phys-bits': 1, 'sev-support': true, 'sev-support-es': true } }),
  );
  const conf = await writeConf(dir, { name, firmware: DEBIAN_OVMF });
  const run = scope.track(
    new SevsupRun([conf, '--qemu', qemu, '--host-caps', caps, '--run-dir', join(dir, 'run'), '--state-dir', join(dir, 'state')]),
  );
  return { dir, run };
}

describe.skipIf(missing !== null)(`sevsup run --platform hardware on real QEMU${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it('refuses a guest whose query-sev says enabled:false, never resumes it, and stops QEMU', async () => {
    const { dir, run } = await hardwareRun('hw1', WRAPPER);
    const result = await run.done;

    const message =
      'VM hw1: QEMU reports SEV is not enabled (query-sev: enabled false), expected an SEV guest with policy 0xb (SEV, NODBG, NOKS, NOSEND); the guest was not resumed';
    expect(result.code).toBe(6);
    expect(run.names()).toEqual(['starting', 'spawned', 'stopping', 'stopped', 'failed']);
    expect(run.events[0]).toMatchObject({ platform: 'hardware', sev: true, vm: 'hw1' });
    expect(run.events[3]).toMatchObject({ how: 'quit', exitCode: 0, signal: null });
    expect(run.events[4]).toEqual(expect.objectContaining({ code: 'SUP_ERR_CHECK_SEV_DISABLED', message }));
    expect(result.stderr).toContain(`sevsup: ${message} [SUP_ERR_CHECK_SEV_DISABLED]\n`);

    // It really was QEMU 7.2 with the sev-guest object on its command line, now gone.
    const pid = run.events[1]?.['pid'];
    expect(typeof pid).toBe('number');
    expect(processesMentioning(dir)).toEqual([]);
    // Never resumed: a paused q35 guest with OVMF writes nothing to its serial port.
    expect(await readFile(join(dir, 'run', 'hw1', 'serial.log'), 'utf8')).toBe('');
  });

  it('reports QEMU’s own start-up error when QEMU refuses the command line', async (ctx) => {
    skipWithoutKvm(ctx, 'QEMU initialises SEV (and fails here) only under -accel kvm:');
    // The real QEMU with the SEV link: on this host without /dev/sev, KVM init fails (facts §6).
    const { dir, run } = await hardwareRun('hw2', REAL_QEMU);
    const result = await run.done;
    expect(result.code).toBe(5);
    const failed = run.events.at(-1);
    expect(failed).toMatchObject({ event: 'failed', code: 'SUP_ERR_LAUNCH_FAILED' });
    expect(String(failed?.['message'])).toMatch(
      /^QEMU exited with code 1 before it was ready: qemu-system-x86_64: -accel kvm: sev_kvm_init: /,
    );
    expect(processesMentioning(dir)).toEqual([]);
  });
});
