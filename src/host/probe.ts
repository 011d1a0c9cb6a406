// The live host probe: gather facts, ask QEMU only when the cheap checks leave SEV open (or when
// forced), and judge. Missing SEV is an answer with its reason, never an error.
// Owns: that sequencing. Must not: throw because SEV is absent, read capability files or caches
// (host/resolve.ts), or leave a process behind (the QEMU sub-probe owns its QEMU).
import type { Logger } from '../log.js';
import { decideHostCaps, needsQemuProbe, type QemuSevProbe } from './decide-caps.js';
import type { HostCaps } from './host-caps.js';
import { readHostFacts, type HostFacts } from './host-facts.js';
import { probeQemuSevCapabilities } from './qemu-probe.js';

export interface ProbeOptions {
  /** QEMU binary for the sub-probe. @default 'qemu-system-x86_64' */
  readonly qemu?: string;
  /** Prefix of /proc, /sys and /dev (tests build fake trees). @default '/' */
  readonly root?: string;
  /** Run the QEMU sub-probe even when the cheap checks already say no. @default false */
  readonly forceQemu?: boolean;
  /** Never start QEMU (e.g. none installed); SEV then rests on the cheap checks. @default false */
  readonly skipQemu?: boolean;
  /** @default QEMU_PROBE_TIMEOUT_MS */
  readonly qemuTimeoutMs?: number;
  readonly logger?: Logger;
  /** Replaces the QEMU sub-probe (tests of the decision with a fake QEMU answer). */
  readonly qemuProbe?: (options: { qemu?: string; timeoutMs?: number; logger?: Logger }) => Promise<QemuSevProbe>;
}

export interface ProbeReport {
  readonly caps: HostCaps;
  readonly facts: HostFacts;
  /** null when QEMU was not asked. */
  readonly qemu: QemuSevProbe | null;
}

/** Probe the host live. Never throws; see probeHostReport for the facts behind the answer. */
export async function probeHostCaps(options: ProbeOptions = {}): Promise<HostCaps> {
  return (await probeHostReport(options)).caps;
}

/** probeHostCaps, with the facts and QEMU's answer that decided it. Never throws. */
export async function probeHostReport(options: ProbeOptions = {}): Promise<ProbeReport> {
  const facts = await readHostFacts(options.root ?? '/');
  const askQemu = options.skipQemu !== true && (options.forceQemu === true || needsQemuProbe(facts));
  let qemu: QemuSevProbe | null = null;
  if (askQemu) {
    const probe = options.qemuProbe ?? probeQemuSevCapabilities;
    qemu = await probe({
      ...(options.qemu === undefined ? {} : { qemu: options.qemu }),
      ...(options.qemuTimeoutMs === undefined ? {} : { timeoutMs: options.qemuTimeoutMs }),
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    }).catch(
      (error: unknown): QemuSevProbe => ({
        ok: false,
        reason: `the QEMU probe failed: ${error instanceof Error ? error.message : String(error)}`,
      }),
    );
  }
  const caps = decideHostCaps(facts, qemu);
  options.logger?.info({ sev: caps.sev.supported, reason: caps.sev.reason, askedQemu: askQemu }, 'host probed');
  return { caps, facts, qemu };
}
