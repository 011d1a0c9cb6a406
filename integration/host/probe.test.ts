// The live host probe on this machine: without SEV it must finish cleanly with "not supported"
// and a reason, and the QEMU sub-probe must report QEMU's own answer (which depends on /dev/kvm,
// kvm_amd and /dev/sev here: ./this-host.ts), leaving no QEMU behind.
import { describe, expect, it } from 'vitest';
import { probeHostReport } from '../../src/host/probe.js';
import { probeQemuSevCapabilities } from '../../src/host/qemu-probe.js';
import { ownTmpdir } from '../../test/support/own-tmpdir.js';
import { expectedQemuSevAnswer, HOST_MAY_HAVE_SEV, VENDOR as vendor } from './this-host.js';

const QEMU = '/usr/bin/qemu-system-x86_64';
const NOT_WITHOUT_SEV = 'this host may have SEV (kvm_amd sev=Y or /dev/sev): the "without SEV" answers do not apply';
if (HOST_MAY_HAVE_SEV) process.stderr.write(`integration/host/probe: some tests SKIPPED — ${NOT_WITHOUT_SEV}\n`);
// The probes make their socket directories in a tmpdir() of each test's own: after each test, no
// process may mention it (QEMU left behind), whatever other files run beside this one.
ownTmpdir('sevsup-probetest-', 'test');

describe('live host probe', () => {
  it.skipIf(HOST_MAY_HAVE_SEV)('answers SEV unsupported with the decisive reason, without asking QEMU', async () => {
    const report = await probeHostReport({ qemu: QEMU });
    expect(report.caps.sev.supported).toBe(false);
    expect(report.caps.sevEs.supported).toBe(false);
    expect(report.caps.sevSnp.supported).toBe(false);
    expect(report.caps.sev.reason).toMatch(/^not supported, because \S/);
    if (vendor === 'GenuineIntel') {
      expect(report.caps.sev).toEqual({
        supported: false,
        reason: 'not supported, because the CPU vendor is GenuineIntel; SEV needs an AMD CPU (AuthenticAMD)',
        source: 'probe:cpuinfo',
      });
      expect(report.qemu).toBeNull();
    }
  });

  it("the QEMU sub-probe gives QEMU's own answer for this host", async () => {
    const answer = await probeQemuSevCapabilities({ qemu: QEMU });
    expect(answer).toEqual(expectedQemuSevAnswer());
  });

  it.skipIf(HOST_MAY_HAVE_SEV)('a forced QEMU sub-probe is recorded but does not hide the decisive reason', async () => {
    const report = await probeHostReport({ qemu: QEMU, forceQemu: true });
    expect(report.qemu).toEqual(expectedQemuSevAnswer());
    expect(report.caps.sev.supported).toBe(false);
    if (vendor === 'GenuineIntel') expect(report.caps.sev.source).toBe('probe:cpuinfo');
  });

  it('a QEMU binary that does not exist is an answer, not a crash', async () => {
    const answer = await probeQemuSevCapabilities({ qemu: '/nonexistent/qemu-system-x86_64' });
    expect(answer).toEqual({
      ok: false,
      reason:
        'the QEMU probe failed: cannot start QEMU: spawn /nonexistent/qemu-system-x86_64 ENOENT; check that /nonexistent/qemu-system-x86_64 exists and is executable',
    });
  });
});
