// The HostCaps shape: what sevsup knows about the host's SEV support and where each fact came from.
// Owns: types only. Must not: probe or read files (host/probe.ts and host/caps-file.ts do).

/**
 * Where a value came from: a file path, `probe:<what>` (`probe` alone when no check knew it),
 * `<cache file> (probe:<what>)` for a cached probe, `simulated`, `config`, or `default`.
 */
export type CapSource = string;

export interface FeatureSupport {
  readonly supported: boolean;
  /** Why: "supported: …" or "not supported, because …". Always filled. */
  readonly reason: string;
  readonly source: CapSource;
}

export interface HostCaps {
  readonly sev: FeatureSupport;
  readonly sevEs: FeatureSupport;
  readonly sevSnp: FeatureSupport;
  /** C-bit position in the page tables (CPUID 0x8000001F EBX[5:0]); null when unknown. */
  readonly cbitpos: number | null;
  readonly cbitposSource: CapSource;
  /** Physical address bits lost with encryption (EBX[11:6]); null when unknown. */
  readonly reducedPhysBits: number | null;
  readonly reducedPhysBitsSource: CapSource;
}
