// The measurement step of an SEV / SEV-ES launch, with QEMU paused after spawn: check what QEMU
// reports (query-sev), take the launch measurement, and write the record durably. An SNP launch
// (no measurement command: an expected-digest record) brings its own step beside this one.
// Owns: that step's order and its failures (SUP_ERR_CHECK_*, SUP_ERR_RECORD_WRITE), and hashing
// the kernel and initrd at spawn. Must not: resume or stop QEMU or move the VM's state (the
// lifecycle does, and fails closed on whatever this throws); judge the measurement (the owner does).
import type { Hash } from 'node:crypto';
import type { VmSpec } from '../config/vm-spec.js';
import { hasCode, SupervisorError } from '../errors.js';
import type { QmpClient } from '../qmp/client.js';
import { queryCpuSignature, querySev, querySevLaunchMeasure } from '../qmp/commands.js';
import type { FirmwareInfo } from '../sev/firmware-file.js';
import { sha256File } from '../sev/hash-file.js';
import { encodePolicy, formatPolicy } from '../sev/policy.js';
import { checkMeasurement, checkSevInfo } from './checks.js';
import type { QmpStep } from './failure.js';
import type { FileDigest, RecordPlatform } from './record.js';
import { buildLaunchRecord, recordSevType } from './record-builder.js';
import { writeRecordBeforeResume } from './record-store.js';
import type { LifecycleEvent } from './types.js';

/** The kernel's and initrd's digests (null for one the config does not name). */
export type LaunchFileDigests = readonly [FileDigest | null, FileDigest | null];

/**
 * Hash the kernel and initrd for the record. Started right after spawn so that it overlaps QEMU's
 * start-up (a 14 MB kernel takes tens of ms); its error is reported where it is awaited.
 */
export function hashLaunchFiles(spec: VmSpec): Promise<LaunchFileDigests> {
  const digest = async (path: string | undefined): Promise<FileDigest | null> =>
    path === undefined ? null : { path, sha256: (await sha256File(path)).sha256 };
  const hashing = Promise.all([digest(spec.kernel), digest(spec.initrd)] as const);
  hashing.catch(() => undefined);
  return hashing;
}

export interface MeasureContext {
  readonly vm: string;
  readonly spec: VmSpec;
  readonly platform: RecordPlatform;
  readonly stateDir: string;
  readonly qmp: QmpClient;
  /** The firmware preflight inspected. */
  readonly firmware: FirmwareInfo | null;
  /** Preflight's unfinished sha256 over that firmware: the launch digest continues from a copy. */
  readonly firmwareHash: Hash | null;
  /** The digests started at spawn. */
  readonly hashing: Promise<LaunchFileDigests>;
  /** Runs one exchange, naming its failure by the phase (and checking the launch's signal). */
  readonly step: QmpStep;
  readonly signal: AbortSignal;
  readonly emit: (event: LifecycleEvent) => void;
}

/**
 * The fail-closed checks and the durable record. MUST run with QEMU paused after spawn.
 * @returns the record's path.
 * @throws SUP_ERR_CHECK_* and SUP_ERR_RECORD_WRITE (from checks.ts / record-store.ts).
 */
export async function measureSevLaunch(c: MeasureContext): Promise<string> {
  const { vm, spec, qmp, step } = c;
  if (spec.sev === undefined) throw new SupervisorError('SUP_ERR_INTERNAL', `VM ${vm}: measured without SEV`);
  const expectedPolicy = encodePolicy(spec.sev);
  const seen = await step('query-sev', () => querySev(qmp));
  checkSevInfo(vm, seen, { policy: expectedPolicy });
  const sevType = recordSevType(spec);
  c.emit({
    event: 'checked',
    policy: formatPolicy(seen.policy),
    sevType,
    apiMajor: seen.apiMajor,
    apiMinor: seen.apiMinor,
    buildId: seen.buildId,
  });

  let measurement: string;
  try {
    measurement = await step('query-sev-launch-measure', () => querySevLaunchMeasure(qmp));
  } catch (error: unknown) {
    if (!hasCode(error, 'SUP_ERR_QMP_EXECUTE')) throw error;
    throw new SupervisorError(
      'SUP_ERR_CHECK_MEASUREMENT',
      `VM ${vm}: QEMU gave no launch measurement: ${error.message}; the guest was not resumed`,
      {
        details: { vm, check: 'measurement' },
        cause: error,
      },
    );
  }
  const bytes = checkMeasurement(vm, measurement);
  c.signal.throwIfAborted();

  const fw = c.firmware;
  const firmwareHash = c.firmwareHash;
  if (fw === null || firmwareHash === null) throw new SupervisorError('SUP_ERR_INTERNAL', `VM ${vm}: no firmware after preflight`);
  const [kernel, initrd] = await c.hashing;
  const spawned = { vm, platform: c.platform, spec, firmware: fw, firmwareHash, kernel, initrd, qemuVersion: qmp.greeting.QMP.version };
  const cpuSignature = sevType === 'sev-es' ? await step('query-cpus-fast', () => queryCpuSignature(qmp)) : undefined;
  const record = buildLaunchRecord(
    spawned,
    { sev: seen, expectedPolicy, measurement, mnonce: bytes.mnonce, capturedAt: new Date() },
    cpuSignature,
  );
  const path = await writeRecordBeforeResume(c.stateDir, record);
  c.emit({ event: 'measured', record: path, measurement });
  return path;
}
