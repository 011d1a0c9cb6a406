// Judging SEV / SEV-ES / SEV-SNP support from gathered host facts and QEMU's answer (pure).
// Owns: the order of the checks and the wording of "not supported, because …". Must not: do I/O.
// Order: most fundamental first (CPU vendor, CPUID, the kernel's CPU flags, kvm_amd, /dev/sev,
// QEMU), so the first failing check is the decisive reason. Unknown facts are skipped, which is
// why a CPUID-only answer (Proxmox's) is never the last word here (sevctl#130).
import type { CapSource, FeatureSupport, HostCaps } from './host-caps.js';
import type { HostFacts, KvmParam } from './host-facts.js';

/** What QEMU's query-sev-capabilities said on a throwaway QEMU. */
export type QemuSevProbe =
  | { readonly ok: true; readonly cbitpos: number; readonly reducedPhysBits: number }
  | { readonly ok: false; readonly reason: string };

export const AMD_VENDOR = 'AuthenticAMD';

export const SOURCE = {
  cpuinfo: 'probe:cpuinfo',
  cpuid: 'probe:cpuid',
  kvmAmd: 'probe:kvm_amd',
  devSev: 'probe:dev-sev',
  qemu: 'probe:qemu',
  none: 'probe',
} as const satisfies Record<string, CapSource>;

/** One check's verdict: `undefined` when its fact is unknown. */
interface Verdict {
  readonly ok: boolean | undefined;
  readonly because: string;
  readonly source: CapSource;
}

type Feature = 'sev' | 'sevEs' | 'sevSnp';

/** Per feature: CPUID EAX bit, /proc/cpuinfo flag, kvm_amd parameter name. */
const FEATURE = {
  sev: { name: 'SEV', bit: 1, flag: 'sev', param: 'sev' },
  sevEs: { name: 'SEV-ES', bit: 3, flag: 'sev_es', param: 'sev_es' },
  sevSnp: { name: 'SEV-SNP', bit: 4, flag: 'sev_snp', param: 'sev_snp' },
} as const;

/**
 * True when the cheap checks leave SEV undecided or positive, so QEMU must be asked. When they
 * already say "no" QEMU cannot change that, and the sub-probe is skipped (unless forced).
 */
export function needsQemuProbe(facts: HostFacts): boolean {
  return firstFailure(cheapChecks(facts, 'sev')) === undefined;
}

/** The capabilities implied by the facts and, when it ran, QEMU's answer. */
export function decideHostCaps(facts: HostFacts, qemu: QemuSevProbe | null): HostCaps {
  const sev = judge(facts, 'sev', qemu);
  // ES and SNP build on SEV: while SEV is out, its reason is theirs too.
  const sevEs = sev.supported ? judge(facts, 'sevEs', null) : sev;
  const sevSnp = sev.supported ? judge(facts, 'sevSnp', null) : sev;
  const leaf = isAmd(facts) === false ? null : (facts.cpuid?.memoryEncryption ?? null);
  const cbitpos: [number | null, CapSource] =
    qemu?.ok === true ? [qemu.cbitpos, SOURCE.qemu] : leaf !== null ? [leaf.ebx & 0x3f, SOURCE.cpuid] : [null, SOURCE.none];
  // QEMU 7.2 hard-codes reduced-phys-bits 1 in its answer; CPUID has the real value.
  const reduced: [number | null, CapSource] =
    leaf !== null ? [(leaf.ebx >>> 6) & 0x3f, SOURCE.cpuid] : qemu?.ok === true ? [qemu.reducedPhysBits, SOURCE.qemu] : [null, SOURCE.none];
  return {
    sev,
    sevEs,
    sevSnp,
    cbitpos: cbitpos[0],
    cbitposSource: cbitpos[1],
    reducedPhysBits: reduced[0],
    reducedPhysBitsSource: reduced[1],
  };
}

function judge(facts: HostFacts, feature: Feature, qemu: QemuSevProbe | null): FeatureSupport {
  const checks = cheapChecks(facts, feature);
  if (qemu !== null) {
    checks.push(
      qemu.ok
        ? { ok: true, because: 'QEMU answers query-sev-capabilities', source: SOURCE.qemu }
        : { ok: false, because: qemu.reason, source: SOURCE.qemu },
    );
  }
  const failed = firstFailure(checks);
  if (failed !== undefined) return { supported: false, reason: `not supported, because ${failed.because}`, source: failed.source };
  const passed = checks.filter((check) => check.ok === true);
  const last = passed.at(-1);
  if (last === undefined) {
    return { supported: false, reason: 'not supported, because no check could be made on this host', source: SOURCE.none };
  }
  const what = [...new Set(passed.map((check) => check.source.replace(/^probe:/, '')))].join(', ');
  const unasked = feature === 'sev' && qemu === null ? '; QEMU was not asked' : '';
  return { supported: true, reason: `supported: confirmed by ${what}${unasked}`, source: last.source };
}

function firstFailure(checks: readonly Verdict[]): Verdict | undefined {
  return checks.find((check) => check.ok === false);
}

function isAmd(facts: HostFacts): boolean | undefined {
  const vendor = facts.cpuinfo?.vendor ?? facts.cpuid?.vendor ?? null;
  return vendor === null ? undefined : vendor === AMD_VENDOR;
}

function cheapChecks(facts: HostFacts, feature: Feature): Verdict[] {
  const { name, bit, flag } = FEATURE[feature];
  const checks: Verdict[] = [];
  if (feature === 'sev') {
    const fromCpuinfo = facts.cpuinfo?.vendor ?? null;
    checks.push({
      ok: isAmd(facts),
      because: `the CPU vendor is ${fromCpuinfo ?? facts.cpuid?.vendor ?? 'unknown'}; SEV needs an AMD CPU (${AMD_VENDOR})`,
      source: fromCpuinfo === null ? SOURCE.cpuid : SOURCE.cpuinfo,
    });
  }
  const cpuid = facts.cpuid;
  if (cpuid !== null && isAmd(facts) !== false) {
    const leaf = cpuid.memoryEncryption;
    if (leaf === null) {
      checks.push({
        ok: false,
        because: `the CPU has no CPUID leaf 0x8000001f (highest extended leaf 0x${cpuid.maxExtendedLeaf.toString(16)})`,
        source: SOURCE.cpuid,
      });
    } else {
      checks.push({
        ok: (leaf.eax & (1 << bit)) !== 0,
        because: `CPUID 0x8000001f EAX bit ${bit} (${name}) is clear`,
        source: SOURCE.cpuid,
      });
    }
  }
  if (facts.cpuinfo !== null) {
    checks.push({
      ok: facts.cpuinfo.flags.has(flag),
      because: `the kernel does not list the ${flag} CPU flag in /proc/cpuinfo (${name} is off in the BIOS or unsupported by the kernel)`,
      source: SOURCE.cpuinfo,
    });
  }
  checks.push(kvmCheck(facts, feature));
  if (feature === 'sev') checks.push(devSevCheck(facts));
  return checks;
}

function kvmCheck(facts: HostFacts, feature: Feature): Verdict {
  const { name, param } = FEATURE[feature];
  if (facts.kvmAmd === null) return { ok: false, because: 'the kvm_amd module is not loaded', source: SOURCE.kvmAmd };
  const value: KvmParam = facts.kvmAmd[feature];
  if (value === null) {
    // SNP reached upstream KVM in Linux 6.11: an older host kernel is the usual reason here.
    const kernel = feature === 'sevSnp' ? '; SEV-SNP guests need a host kernel of Linux 6.11 or newer' : '';
    return {
      ok: false,
      because: `kvm_amd has no ${param} parameter (a kernel without ${name} support in KVM${kernel})`,
      source: SOURCE.kvmAmd,
    };
  }
  return {
    ok: value.enabled,
    because: `${name} is not enabled in KVM (kvm_amd parameter ${param} is ${value.raw}); set kvm_amd.${param}=1`,
    source: SOURCE.kvmAmd,
  };
}

function devSevCheck(facts: HostFacts): Verdict {
  const dev = facts.devSev;
  if (!dev.present) return { ok: false, because: '/dev/sev does not exist (the ccp driver has no SEV firmware)', source: SOURCE.devSev };
  if (!dev.accessible)
    return { ok: false, because: `/dev/sev is not readable and writable by this user (${dev.error})`, source: SOURCE.devSev };
  return { ok: true, because: '/dev/sev is usable', source: SOURCE.devSev };
}
