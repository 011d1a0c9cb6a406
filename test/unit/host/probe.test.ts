// The live probe against fake /proc, /sys and /dev trees, with QEMU's answer injected: every
// "not supported, because …" names the decisive check, and QEMU is asked only when needed.
import { afterEach, describe, expect, it } from 'vitest';
import type { QemuSevProbe } from '../../../src/host/decide-caps.js';
import { probeHostCaps, probeHostReport } from '../../../src/host/probe.js';
import { makeFakeHost, ROME_CPUID, type FakeHost } from './fake-host.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const remove of cleanups.splice(0)) await remove();
});

const QEMU_YES: QemuSevProbe = { ok: true, cbitpos: 47, reducedPhysBits: 1 };

/** Probe a fake host; `qemu` is QEMU's answer, and `asked` counts how often it was asked. */
async function probe(spec: FakeHost, qemu: QemuSevProbe = QEMU_YES, extra: { forceQemu?: boolean; skipQemu?: boolean } = {}) {
  const host = await makeFakeHost(spec);
  cleanups.push(host.remove);
  let asked = 0;
  const report = await probeHostReport({
    root: host.root,
    ...extra,
    qemuProbe: async () => {
      asked += 1;
      return qemu;
    },
  });
  return { caps: report.caps, asked };
}

describe('probeHostCaps on fake hosts', () => {
  it('a fully supported host: SEV and SEV-ES yes, SNP no, cbitpos from QEMU, reduced-phys-bits from CPUID', async () => {
    const { caps, asked } = await probe({ cpuid: ROME_CPUID });
    expect(asked).toBe(1);
    expect(caps).toEqual({
      sev: { supported: true, reason: 'supported: confirmed by cpuinfo, cpuid, kvm_amd, dev-sev, qemu', source: 'probe:qemu' },
      sevEs: { supported: true, reason: 'supported: confirmed by cpuid, cpuinfo, kvm_amd', source: 'probe:kvm_amd' },
      sevSnp: { supported: false, reason: 'not supported, because CPUID 0x8000001f EAX bit 4 (SEV-SNP) is clear', source: 'probe:cpuid' },
      cbitpos: 47,
      cbitposSource: 'probe:qemu',
      reducedPhysBits: 1,
      reducedPhysBitsSource: 'probe:cpuid',
    });
  });

  it('without a CPUID device, cbitpos and reduced-phys-bits come from QEMU', async () => {
    const { caps } = await probe({ cpuid: null }, { ok: true, cbitpos: 51, reducedPhysBits: 1 });
    expect(caps.sev.reason).toBe('supported: confirmed by cpuinfo, kvm_amd, dev-sev, qemu');
    expect([caps.cbitpos, caps.cbitposSource, caps.reducedPhysBits, caps.reducedPhysBitsSource]).toEqual([
      51,
      'probe:qemu',
      1,
      'probe:qemu',
    ]);
  });

  it('an SNP CPU on a host kernel whose kvm_amd has no sev_snp: the reason names the kernel', async () => {
    const { caps } = await probe({
      cpuid: { eax: 0b11010, ebx: 51 | (1 << 6) },
      flags: ['sev', 'sev_es', 'sev_snp'],
      kvmAmd: { sev: 'Y', sev_es: 'Y' },
    });
    expect(caps.sevSnp).toEqual({
      supported: false,
      reason:
        'not supported, because kvm_amd has no sev_snp parameter (a kernel without SEV-SNP support in KVM; SEV-SNP guests need a host kernel of Linux 6.11 or newer)',
      source: 'probe:kvm_amd',
    });
  });

  it('SEV but no SEV-ES: CPUID says so first', async () => {
    const { caps } = await probe({ cpuid: { eax: 0b0010, ebx: 47 | (1 << 6) }, flags: ['sev'], kvmAmd: { sev: 'Y', sev_es: 'N' } });
    expect(caps.sev.supported).toBe(true);
    expect(caps.sevEs).toEqual({
      supported: false,
      reason: 'not supported, because CPUID 0x8000001f EAX bit 3 (SEV-ES) is clear',
      source: 'probe:cpuid',
    });
  });

  it("SEV but no SEV-ES: without CPUID, the kernel's flags say so", async () => {
    const { caps } = await probe({ flags: ['sev'], kvmAmd: { sev: 'Y', sev_es: 'N' } });
    expect(caps.sevEs).toEqual({
      supported: false,
      reason:
        'not supported, because the kernel does not list the sev_es CPU flag in /proc/cpuinfo (SEV-ES is off in the BIOS or unsupported by the kernel)',
      source: 'probe:cpuinfo',
    });
  });

  it('SEV-ES off in KVM only', async () => {
    const { caps } = await probe({ kvmAmd: { sev: '1', sev_es: '0' } });
    expect(caps.sev.supported).toBe(true);
    expect(caps.sevEs).toEqual({
      supported: false,
      reason: 'not supported, because SEV-ES is not enabled in KVM (kvm_amd parameter sev_es is 0); set kvm_amd.sev_es=1',
      source: 'probe:kvm_amd',
    });
  });

  it('a kernel whose kvm_amd has no sev_es parameter', async () => {
    const { caps } = await probe({ kvmAmd: { sev: 'Y' } });
    expect(caps.sevEs.reason).toBe('not supported, because kvm_amd has no sev_es parameter (a kernel without SEV-ES support in KVM)');
  });

  it('CPU flags present but kvm_amd has SEV off: decided without QEMU', async () => {
    const { caps, asked } = await probe({ kvmAmd: { sev: 'N', sev_es: 'N' } });
    expect(asked).toBe(0);
    const off = {
      supported: false,
      reason: 'not supported, because SEV is not enabled in KVM (kvm_amd parameter sev is N); set kvm_amd.sev=1',
      source: 'probe:kvm_amd',
    };
    expect([caps.sev, caps.sevEs, caps.sevSnp]).toEqual([off, off, off]);
  });

  it('forcing the QEMU sub-probe asks QEMU but keeps the decisive reason', async () => {
    const { caps, asked } = await probe({ kvmAmd: { sev: 'N' } }, { ok: false, reason: 'SEV is not enabled in KVM' }, { forceQemu: true });
    expect(asked).toBe(1);
    expect(caps.sev.source).toBe('probe:kvm_amd');
  });

  it('kvm_amd not loaded', async () => {
    const { caps } = await probe({ kvmAmd: null });
    expect(caps.sev).toEqual({
      supported: false,
      reason: 'not supported, because the kvm_amd module is not loaded',
      source: 'probe:kvm_amd',
    });
  });

  it('no /dev/sev', async () => {
    const { caps, asked } = await probe({ devSev: false });
    expect(asked).toBe(0);
    expect(caps.sev).toEqual({
      supported: false,
      reason: 'not supported, because /dev/sev does not exist (the ccp driver has no SEV firmware)',
      source: 'probe:dev-sev',
    });
  });

  it('BIOS has SEV off: the kernel drops the sev flag', async () => {
    const { caps } = await probe({ flags: ['svm'], cpuid: ROME_CPUID });
    expect(caps.sev.reason).toBe(
      'not supported, because the kernel does not list the sev CPU flag in /proc/cpuinfo (SEV is off in the BIOS or unsupported by the kernel)',
    );
  });

  it('an AMD CPU without the memory-encryption CPUID leaf', async () => {
    const { caps } = await probe({ cpuid: { eax: 0, ebx: 0, maxExtendedLeaf: 0x8000_0008 } });
    expect(caps.sev).toEqual({
      supported: false,
      reason: 'not supported, because the CPU has no CPUID leaf 0x8000001f (highest extended leaf 0x80000008)',
      source: 'probe:cpuid',
    });
    expect([caps.cbitpos, caps.reducedPhysBits]).toEqual([null, null]);
  });

  it('an Intel host', async () => {
    const { caps, asked } = await probe({
      vendor: 'GenuineIntel',
      flags: ['vmx'],
      kvmAmd: null,
      devSev: false,
      cpuid: { eax: 0, ebx: 0, maxExtendedLeaf: 0x8000_0008 },
    });
    expect(asked).toBe(0);
    expect(caps.sev).toEqual({
      supported: false,
      reason: 'not supported, because the CPU vendor is GenuineIntel; SEV needs an AMD CPU (AuthenticAMD)',
      source: 'probe:cpuinfo',
    });
    expect([caps.cbitpos, caps.cbitposSource]).toEqual([null, 'probe']);
  });

  it('QEMU has the last word when every cheap check passes', async () => {
    const { caps } = await probe({}, { ok: false, reason: 'SEV is not enabled in KVM' });
    expect(caps.sev).toEqual({ supported: false, reason: 'not supported, because SEV is not enabled in KVM', source: 'probe:qemu' });
    expect(caps.sevEs.reason).toBe('not supported, because SEV is not enabled in KVM');
  });

  it('QEMU not asked (skipQemu): the answer says so', async () => {
    const { caps, asked } = await probe({}, QEMU_YES, { skipQemu: true });
    expect(asked).toBe(0);
    expect(caps.sev.reason).toBe('supported: confirmed by cpuinfo, kvm_amd, dev-sev; QEMU was not asked');
  });

  it('an unreadable host and a failing QEMU probe still give an answer', async () => {
    const host = await makeFakeHost({ vendor: null, kvmAmd: null, devSev: false });
    cleanups.push(host.remove);
    const caps = await probeHostCaps({ root: host.root, qemuProbe: () => Promise.reject(new Error('boom')) });
    expect(caps.sev).toEqual({
      supported: false,
      reason: 'not supported, because the kvm_amd module is not loaded',
      source: 'probe:kvm_amd',
    });
  });

  it('a QEMU sub-probe that throws is an answer too', async () => {
    const host = await makeFakeHost();
    cleanups.push(host.remove);
    const caps = await probeHostCaps({ root: host.root, qemuProbe: () => Promise.reject(new Error('boom')) });
    expect(caps.sev).toEqual({ supported: false, reason: 'not supported, because the QEMU probe failed: boom', source: 'probe:qemu' });
  });
});
