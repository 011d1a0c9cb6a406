// The live host probe on this machine (no /dev/sev): it must finish cleanly with "not supported"
// and a reason, and the QEMU sub-probe must report QEMU's own answer, leaving no QEMU behind.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { probeHostReport } from '../../src/host/probe.js';
import { probeQemuSevCapabilities } from '../../src/host/qemu-probe.js';
import { livePidsWithArg } from '../../test/support/proc-scan.js';

const QEMU = '/usr/bin/qemu-system-x86_64';
const vendor = /^vendor_id\s*:\s*(\S+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1];

describe('live host probe on a host without SEV', () => {
  it('answers SEV unsupported with the decisive reason, without asking QEMU', async () => {
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

  it('the QEMU sub-probe says "SEV is not enabled in KVM"', async () => {
    const answer = await probeQemuSevCapabilities({ qemu: QEMU });
    expect(answer).toEqual({ ok: false, reason: 'SEV is not enabled in KVM' });
    expect(livePidsWithArg('sevsup-probe-')).toEqual([]);
  });

  it('a forced QEMU sub-probe is recorded but does not hide the decisive reason', async () => {
    const report = await probeHostReport({ qemu: QEMU, forceQemu: true });
    expect(report.qemu).toEqual({ ok: false, reason: 'SEV is not enabled in KVM' });
    expect(report.caps.sev.supported).toBe(false);
    if (vendor === 'GenuineIntel') expect(report.caps.sev.source).toBe('probe:cpuinfo');
    expect(livePidsWithArg('sevsup-probe-')).toEqual([]);
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
