// `sim-status.json`, next to the monitor socket: what the simulated platform did, for tests and
// demos to read (the platform's view; a real host has no such file).
// Owns: the file's shape and its atomic 0600 rewrites. They are synchronous on purpose: the file is
// current before the QMP reply that changed it goes out, so a reader never sees an older state.
// Must not: hold the TIK, TEK or any secret payload — only GUIDs, lengths and addresses.
import { renameSync, writeFileSync } from 'node:fs';
import type { SimFault } from './options.js';
import type { InjectedSecret, SevState } from './sev-state.js';
import type { SnpLaunchFacts } from './snp-launch.js';

export const SIM_STATUS_FILE = 'sim-status.json';
export const SIM_STATUS_SCHEMA = 'sevsup.sim-status/v1';

export interface SimStatus {
  readonly schema: typeof SIM_STATUS_SCHEMA;
  readonly platform: 'simulated';
  readonly pid: number;
  readonly qemuPid: number | null;
  /** Whether the guest is an SEV guest at all (linked object, no sev-disabled fault). */
  readonly sev: boolean;
  readonly state: SevState;
  /** The policy the platform applied (differs from `requestedPolicy` with the wrong-policy fault). */
  readonly policy: number;
  readonly requestedPolicy: number;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
  readonly handle: number;
  /** base64 as query-sev-launch-measure returns it; null when LAUNCH_MEASURE failed or no SEV. */
  readonly measurement: string | null;
  /** GCTX.LD, hex. */
  readonly launchDigest: string | null;
  readonly faults: readonly SimFault[];
  readonly injectedSecrets: readonly InjectedSecret[];
  /** How many times the guest went to running (RESUME events; the first is LAUNCH_FINISH). */
  readonly contCount: number;
  readonly tikFile: string;
  readonly tekFile: string;
  /** `sev-snp` for a sev-snp-guest (QEMU 10), else `sev` (SEV and SEV-ES); null for a plain VM. */
  readonly sevType: 'sev' | 'sev-snp' | null;
  /** An SNP guest's launch, once its first run finished it; what its reports carry. */
  readonly snp: SimSnpStatus | null;
}

/** The SNP launch facts (hex), as the simulated firmware keeps them in the guest context. */
export interface SimSnpStatus {
  readonly measurement: string;
  readonly hostData: string;
  readonly idKeyDigest: string;
  readonly authorKeyDigest: string;
  readonly idBlockEnabled: boolean;
  readonly authorKeyEnabled: boolean;
  readonly familyId: string;
  readonly imageId: string;
  readonly guestSvn: number;
  /** The applied 64-bit policy, hex. */
  readonly policy: string;
  readonly vcpus: number;
  readonly vcekDisabled: boolean;
}

/** The status view of an SNP launch's facts. */
export function snpStatus(f: SnpLaunchFacts): SimSnpStatus {
  return {
    measurement: f.measurement.toString('hex'),
    hostData: f.hostData.toString('hex'),
    idKeyDigest: f.idKeyDigest.toString('hex'),
    authorKeyDigest: f.authorKeyDigest.toString('hex'),
    idBlockEnabled: f.idBlockEnabled,
    authorKeyEnabled: f.authorKeyEnabled,
    familyId: f.familyId.toString('hex'),
    imageId: f.imageId.toString('hex'),
    guestSvn: f.guestSvn,
    policy: `0x${f.policy.toString(16)}`,
    vcpus: f.vcpus,
    vcekDisabled: f.vcekDisabled,
  };
}

/** Replace the status file atomically (temp file, rename); errors are reported, never thrown. */
export function writeStatusFile(path: string, status: SimStatus): string | null {
  const temp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(temp, `${JSON.stringify(status, null, 2)}\n`, { mode: 0o600 });
    renameSync(temp, path);
    return null;
  } catch (error: unknown) {
    return error instanceof Error ? error.message : String(error);
  }
}
