// What the live host tests expect, read from the host they run on (never from the machine they
// were written on): the CPU vendor, a usable /dev/kvm, kvm_amd's `sev` parameter, /dev/sev.
// Read here directly, not through src/host/host-facts.ts, so the tests do not take the code
// under test's word for the facts they judge it by.
// Owns: those facts and the QEMU sub-probe answer they imply. Must not: spawn anything.
import { existsSync, readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { HAS_KVM } from '../kvm.js';

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

export const VENDOR = /^vendor_id\s*:\s*(\S+)/m.exec(readOrNull('/proc/cpuinfo') ?? '')?.[1];
/** kvm_amd loaded with sev=Y (or 1, as older kernels print it). */
export const KVM_AMD_SEV = /^(Y|1)$/.test((readOrNull('/sys/module/kvm_amd/parameters/sev') ?? '').trim());
export const HAS_DEV_SEV = existsSync('/dev/sev');
/** A host where SEV could work at all; the "without SEV" expectations hold everywhere else. */
export const HOST_MAY_HAVE_SEV = HAS_DEV_SEV || KVM_AMD_SEV;

/** The reason text pattern for a "no" (anchored), or null when QEMU should answer with capabilities. */
export function expectedQemuSevReason(): RegExp | null {
  // Without /dev/kvm, KVM itself fails to start; with KVM but not kvm_amd's SEV, QEMU says so;
  // with both, the answer hinges on /dev/sev.
  if (!HAS_KVM) return /^Could not access KVM kernel module: .*; qemu-system-x86_64: -accel kvm: failed to initialize kvm: .+$/;
  if (!KVM_AMD_SEV) return /^SEV is not enabled in KVM$/;
  if (!HAS_DEV_SEV) return /\/dev\/sev/;
  return null;
}

/** QEMU 7.2's query-sev-capabilities answer on `-machine none -accel kvm` here, as a matcher. */
export function expectedQemuSevAnswer(): unknown {
  const reason = expectedQemuSevReason();
  return reason === null
    ? { ok: true, cbitpos: expect.any(Number), reducedPhysBits: expect.any(Number) }
    : { ok: false, reason: expect.stringMatching(reason) };
}
