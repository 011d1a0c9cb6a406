// The simulated SEV guest context: what the secure processor and QEMU 7.2's target/i386/sev.c know
// about one guest (state, policy, measurement, injected secrets), and their answers to the SEV
// QMP/HMP commands, with QEMU's checks in QEMU's order and QEMU's texts (qemu-sev-facts §1, §3).
// Owns: the state machine uninit → launch-update → launch-secret → running, the launch-secret
// check under the TIK/TEK, and the migration blocker's existence. Pure: no I/O; randomness comes in.
// Must not: put a TIK, TEK or secret payload into any reply, record or error text.
import type { Area } from '../../sev/ovmf-table.js';
import { verifyLaunchSecret } from '../../sev/launch-secret.js';
import { encodeMeasurement } from '../../sev/measurement.js';
import { POLICY_BITS } from '../../sev/policy.js';
import { decodeSnpPolicy } from '../../sev/snp-policy.js';
import { attestationReport, platformCapabilities, type PlatformCapabilities } from './platform-blobs.js';
import type { SimReplyShape } from './options.js';
import type { SnpFinish, SnpLaunchFacts } from './snp-launch.js';

export type SevState = 'uninit' | 'launch-update' | 'launch-secret' | 'running' | 'send-update' | 'receive-update';

/** C enum values of SevState: QEMU prints them with %x in "(LSECRET) %x". */
const STATE_ORDINAL: Readonly<Record<SevState, number>> = {
  uninit: 0,
  'launch-update': 1,
  'launch-secret': 2,
  running: 3,
  'send-update': 4,
  'receive-update': 5,
};

export type QmpResult = { readonly return: unknown } | { readonly error: { readonly class: string; readonly desc: string } };

const genericError = (desc: string): QmpResult => ({ error: { class: 'GenericError', desc } });

/** The simulated host's CPUID 0x8000001F EBX[5:0] (Rome/Milan), and QEMU's fixed value. */
export const SIM_HOST_CBITPOS = 47;
export const SIM_REDUCED_PHYS_BITS = 1;

/**
 * Linux's PSP driver turns any firmware error status into -EIO and QEMU's kvm_vm_ioctl returns
 * -errno, so every failed SEV command prints ret=-5 on a real host.
 */
export const PSP_IOCTL_RET = -5;

/** SEV firmware status codes used here and QEMU 7.2's texts for them (sev_fw_errlist). */
export const SEV_FW_ERRORS = {
  INVALID_GUEST_STATE: { code: 2, text: 'Guest state is invalid' },
  ALREADY_OWNED: { code: 5, text: 'Platform is already owned' },
  POLICY_FAILURE: { code: 7, text: 'Policy is not allowed' },
  BAD_SIGNATURE: { code: 10, text: 'Bad signature' },
  BAD_MEASUREMENT: { code: 11, text: 'Bad measurement' },
  HWSEV_RET_PLATFORM: { code: 19, text: 'Hardware error' },
} as const;

export const MIGRATION_BLOCKER = 'SEV: Migration is not implemented';
/** QEMU 10's blocker for SNP guests (sev_snp_launch_finish). */
export const SNP_MIGRATION_BLOCKER = 'SEV-SNP: Migration is not implemented';

export interface SevPlatformVersion {
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
}

export interface SevGuestSetup {
  /** False for a plain VM: no machine link, or the sev-disabled fault. */
  readonly enabled: boolean;
  /** The policy the platform applied (the wrong-policy fault changes it). */
  readonly policy: number;
  readonly platform: SevPlatformVersion;
  /** Guest handle the firmware gave at LAUNCH_START. */
  readonly handle: number;
  readonly launchDigest: Buffer | null;
  /** LAUNCH_MEASURE's blob; null when it failed (state stays launch-update). */
  readonly measurement: { readonly mac: Buffer; readonly mnonce: Buffer } | null;
  /** The firmware's launch-secret area; null when its GUID is absent. */
  readonly secretArea: Area | null;
  readonly memoryBytes: number;
  readonly tik: Buffer;
  readonly tek: Buffer;
  readonly replyShape: SimReplyShape;
  readonly crashOnCont: boolean;
  readonly onlyMigratable: boolean;
  /**
   * An SEV-SNP guest (QEMU 10's sev-snp-guest): `finish` is its first run (snp-launch.ts), and
   * `policy` above is its 64-bit policy (below 2^26, so a number holds it). null: SEV or SEV-ES.
   */
  readonly snp?: { readonly finish: () => SnpFinish } | null;
}

export interface InjectedSecret {
  readonly gpa: number;
  readonly secrets: readonly { readonly guid: string; readonly length: number }[];
  readonly payloadBytes: number;
}

export type InjectOutcome =
  | { readonly kind: 'accepted'; readonly result: QmpResult; readonly injected: InjectedSecret }
  | { readonly kind: 'refused'; readonly result: QmpResult; readonly reason: string | null };

/** What the first transition to running does (sev_vm_state_change → sev_launch_finish). */
export type ResumeOutcome =
  | { readonly kind: 'none' }
  | { readonly kind: 'finished' }
  /** QEMU prints this (after "qemu-system-x86_64: ") and exits 1; `note` is the sim's own why. */
  | { readonly kind: 'fatal'; readonly message: string; readonly note?: string | null }
  /** QEMU's assertion fails: this line (after the prefix), then SIGABRT. */
  | { readonly kind: 'abort'; readonly message: string };

/**
 * glib's g_base64_decode, which QEMU uses: characters outside the alphabet are skipped, a trailing
 * incomplete group is dropped, and '=' only trims the last group. Never fails.
 */
export function glibBase64Decode(text: string): Buffer {
  const out: number[] = [];
  let v = 0;
  let i = 0;
  let last0 = '';
  let last1 = '';
  for (const c of text) {
    const rank = c === '=' ? 0 : 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.indexOf(c);
    if (rank < 0) continue;
    last1 = last0;
    last0 = c;
    v = ((v << 6) | rank) & 0xffffff;
    if (++i === 4) {
      out.push(v >> 16);
      if (last1 !== '=') out.push((v >> 8) & 0xff);
      if (last0 !== '=') out.push(v & 0xff);
      i = 0;
    }
  }
  return Buffer.from(out);
}

/** q35's RAM below 4 GiB (pc_q35_init): all of it up to 2.75 GiB, else the first 2 GiB. */
function q35LowMemBytes(memoryBytes: number): number {
  const lowmem = memoryBytes >= 0xb0000000 ? 0x80000000 : 0xb0000000;
  return Math.min(memoryBytes, lowmem);
}

/** The legacy VGA window, which QEMU maps as MMIO over RAM. */
const VGA_WINDOW = { start: 0xa0000, end: 0xc0000 } as const;
const FOUR_GIB = 2 ** 32;

/** QEMU's gpa2hva for a q35 guest with `memoryBytes` of RAM: null when it would succeed. */
export function gpaProblem(gpa: number, length: number, memoryBytes: number): string | null {
  const hex = gpa.toString(16);
  const low = q35LowMemBytes(memoryBytes);
  const regions = [
    { start: 0, end: low },
    { start: FOUR_GIB, end: FOUR_GIB + (memoryBytes - low) },
  ];
  if (gpa >= VGA_WINDOW.start && gpa < VGA_WINDOW.end) return `Memory at address 0x${hex} is not RAM`;
  const region = regions.find((r) => gpa >= r.start && gpa < r.end);
  if (region === undefined) return `No memory is mapped at address 0x${hex}`;
  const end = gpa < VGA_WINDOW.start ? Math.min(region.end, VGA_WINDOW.start) : region.end;
  if (gpa + length > end) return `Size of memory region at 0x${hex} exceeded.`;
  return null;
}

export class SevGuestSim {
  private stateValue: SevState;
  private readonly injectedSecrets: InjectedSecret[] = [];
  private readonly caps: PlatformCapabilities;
  private snpFactsValue: SnpLaunchFacts | null = null;

  constructor(readonly setup: SevGuestSetup) {
    // The state after machine init (LAUNCH_MEASURE done or failed). Without -S the caller calls
    // resume() at once: vm_start runs LAUNCH_FINISH before QMP is usable (facts §3.2).
    if (!setup.enabled) this.stateValue = 'uninit';
    else this.stateValue = setup.measurement === null ? 'launch-update' : 'launch-secret';
    this.caps = platformCapabilities(setup.platform.apiMajor, setup.platform.apiMinor);
  }

  get state(): SevState {
    return this.stateValue;
  }

  get isSnp(): boolean {
    return this.setup.snp != null;
  }

  /** What the SNP launch measured and bound, once the first run has finished it. */
  get snpFacts(): SnpLaunchFacts | null {
    return this.snpFactsValue;
  }

  /** The migration blocker QEMU adds at LAUNCH_FINISH. */
  get migrationBlocker(): string {
    return this.isSnp ? SNP_MIGRATION_BLOCKER : MIGRATION_BLOCKER;
  }

  get injected(): readonly InjectedSecret[] {
    return this.injectedSecrets;
  }

  /** QEMU adds its SEV blocker in LAUNCH_FINISH, i.e. only once the guest has run (facts §3.4). */
  get migrationBlocked(): boolean {
    return this.setup.enabled && this.stateValue === 'running';
  }

  /** The 48-byte measurement as base64, once LAUNCH_MEASURE has succeeded. */
  get measurementBase64(): string | null {
    const m = this.setup.measurement;
    return m === null ? null : encodeMeasurement(m.mac, m.mnonce);
  }

  /** -> {"execute":"query-sev"}: 7.2's flat SevInfo, or 9.1+'s union flattened with sev-type. */
  querySev(): Record<string, unknown> {
    const on = this.setup.enabled;
    if (on && this.isSnp) {
      // QEMU 10's SevInfo union for sev-type sev-snp: no policy, no handle.
      return {
        enabled: true,
        'api-major': this.setup.platform.apiMajor,
        'api-minor': this.setup.platform.apiMinor,
        'build-id': this.setup.platform.buildId,
        state: this.stateValue,
        'sev-type': 'sev-snp',
        'snp-policy': this.setup.policy,
      };
    }
    // formatQemuJson orders the members as QEMU's QDict does, whatever the order here.
    return {
      enabled: on,
      'api-major': on ? this.setup.platform.apiMajor : 0,
      'api-minor': on ? this.setup.platform.apiMinor : 0,
      'build-id': on ? this.setup.platform.buildId : 0,
      ...(this.setup.replyShape === '9.1' ? { 'sev-type': 'sev' } : {}),
      policy: on ? this.setup.policy : 0,
      state: this.stateValue,
      handle: on ? this.setup.handle : 0,
    };
  }

  /** -> {"execute":"query-sev-launch-measure"}: only a sev-guest at launch-secret or later. */
  queryLaunchMeasure(): QmpResult {
    const data = this.measurementBase64;
    if (!this.setup.enabled || data === null || STATE_ORDINAL[this.stateValue] < STATE_ORDINAL['launch-secret']) {
      return genericError('SEV launch measurement is not available');
    }
    return { return: { data } };
  }

  /** -> {"execute":"query-sev-capabilities"}: the host's, whether or not this guest uses SEV. */
  queryCapabilities(): QmpResult {
    return {
      return: {
        pdh: this.caps.pdh,
        'cert-chain': this.caps.certChain,
        'cpu0-id': this.caps.cpu0Id,
        cbitpos: SIM_HOST_CBITPOS,
        'reduced-phys-bits': SIM_REDUCED_PHYS_BITS,
      },
    };
  }

  /**
   * -> {"execute":"sev-inject-launch-secret","arguments":{"packet-header":…,"secret":…[,"gpa":…]}}
   * QEMU's checks in 7.2's order (qmp_sev_inject_launch_secret, sev_inject_launch_secret), then
   * LAUNCH_SECRET as the secure processor runs it: the header MAC under the TIK over the data and
   * the measurement. The firmware answers a MAC that does not verify with BAD_MEASUREMENT: the MAC
   * binds the packet to this launch's measurement, and that is the status the SEV API gives for a
   * failed integrity check of owner-supplied data bound to it.
   */
  injectLaunchSecret(args: { packetHeader: string; secret: string; gpa?: number }): InjectOutcome {
    const refuse = (desc: string, reason: string | null = null): InjectOutcome => ({ kind: 'refused', result: genericError(desc), reason });
    if (!this.setup.enabled) return refuse('SEV not enabled for guest');
    let gpa = args.gpa;
    if (gpa === undefined) {
      // QEMU checks only that the GUID exists; a zero base is used as is (facts §5).
      if (this.setup.secretArea === null) return refuse('SEV: no secret area found in OVMF, gpa must be specified.');
      gpa = this.setup.secretArea.base;
    }
    if (this.stateValue !== 'launch-secret') {
      return refuse(`SEV: Not in correct state. (LSECRET) ${STATE_ORDINAL[this.stateValue].toString(16)}`);
    }
    const header = glibBase64Decode(args.packetHeader);
    if (header.length === 0) return refuse('SEV: Failed to decode sequence header');
    const data = glibBase64Decode(args.secret);
    if (data.length === 0) return refuse('SEV: Failed to decode data');
    const where = gpaProblem(gpa, data.length, this.setup.memoryBytes);
    if (where !== null) return refuse(`SEV: Failed to calculate guest address: ${where}`);
    const measurement = this.setup.measurement;
    const verdict =
      measurement === null
        ? ({ ok: false, reason: 'no launch measurement' } as const)
        : verifyLaunchSecret({ tik: this.setup.tik, tek: this.setup.tek, measurementMac: measurement.mac, header, payload: data });
    if (!verdict.ok) {
      const fw = SEV_FW_ERRORS.BAD_MEASUREMENT;
      return refuse(`SEV: failed to inject secret ret=${PSP_IOCTL_RET} fw_error=${fw.code} '${fw.text}'`, verdict.reason);
    }
    const injected: InjectedSecret = { gpa, secrets: verdict.secrets ?? [], payloadBytes: data.length };
    this.injectedSecrets.push(injected);
    return { kind: 'accepted', result: { return: {} }, injected };
  }

  /**
   * -> {"execute":"query-sev-attestation-report","arguments":{"mnonce":…}}: a 208-byte SEV report
   * with the real launch digest, the applied policy and `signature` (random: no PEK here).
   */
  queryAttestationReport(mnonce: string, signature: Buffer): QmpResult {
    if (!this.setup.enabled) return genericError('SEV is not enabled');
    const nonce = glibBase64Decode(mnonce);
    if (nonce.length !== 16) return genericError(`SEV: mnonce must be 16 bytes (got ${nonce.length})`);
    if (this.isSnp) {
      // KVM refuses SEV-only commands on an SNP VM with -EPERM before the firmware sees them.
      return genericError('SEV: Failed to query the attestation report length ret=-1 fw_err=0 ()');
    }
    const digest = this.setup.launchDigest;
    if (digest === null || this.stateValue === 'launch-update') {
      // The firmware's ATTESTATION needs a measured guest; the length query already fails.
      const fw = SEV_FW_ERRORS.INVALID_GUEST_STATE;
      return genericError(`failed to query the attestation report length ret=${PSP_IOCTL_RET} fw_err=${fw.code} (${fw.text})`);
    }
    return { return: { data: attestationReport(nonce, digest, this.setup.policy, signature).toString('base64') } };
  }

  /** HMP `info sev` (7.2 hmp_info_sev; 10.x adds the SEV type line), lines ending \r\n. */
  hmpInfoSev(): string {
    if (!this.setup.enabled) return 'SEV is not enabled\r\n';
    const p = this.setup.policy;
    if (this.isSnp) {
      // QEMU 10 tests SEV_SNP_POLICY_DBG and _SMT, the bits sev/snp-policy.ts names DEBUG and SMT.
      const { debug, smt } = decodeSnpPolicy(BigInt(p));
      const snpLines = [
        'SEV type: sev-snp',
        `state: ${this.stateValue}`,
        `build: ${this.setup.platform.buildId}`,
        `api version: ${this.setup.platform.apiMajor}.${this.setup.platform.apiMinor}`,
        `debug: ${debug ? 'on' : 'off'}`,
        `SMT allowed: ${smt ? 'on' : 'off'}`,
      ];
      return snpLines.map((l) => `${l}\r\n`).join('');
    }
    const lines = [
      ...(this.setup.replyShape === '9.1' ? ['SEV type: sev'] : []),
      `handle: ${this.setup.handle}`,
      `state: ${this.stateValue}`,
      `build: ${this.setup.platform.buildId}`,
      `api version: ${this.setup.platform.apiMajor}.${this.setup.platform.apiMinor}`,
      `debug: ${p & POLICY_BITS.NODBG ? 'off' : 'on'}`,
      `key-sharing: ${p & POLICY_BITS.NOKS ? 'off' : 'on'}`,
    ];
    return lines.map((l) => `${l}\r\n`).join('');
  }

  /**
   * The guest starts running (the RESUME of cont). The first time, QEMU runs LAUNCH_FINISH and
   * adds the migration blocker; both failures are fatal (exit 1) in QEMU 7.2.
   */
  resume(): ResumeOutcome {
    if (!this.setup.enabled || this.stateValue === 'running') return { kind: 'none' };
    const snp = this.setup.snp;
    if (snp != null) return this.resumeSnp(snp.finish());
    if (this.stateValue === 'launch-update') {
      // LAUNCH_FINISH needs the LSECRET state, which only LAUNCH_MEASURE enters.
      const fw = SEV_FW_ERRORS.INVALID_GUEST_STATE;
      return { kind: 'fatal', message: `sev_launch_finish: LAUNCH_FINISH ret=${PSP_IOCTL_RET} fw_error=${fw.code} '${fw.text}'` };
    }
    if (this.setup.crashOnCont) {
      const fw = SEV_FW_ERRORS.HWSEV_RET_PLATFORM;
      return { kind: 'fatal', message: `sev_launch_finish: LAUNCH_FINISH ret=${PSP_IOCTL_RET} fw_error=${fw.code} '${fw.text}'` };
    }
    this.stateValue = 'running';
    if (this.setup.onlyMigratable) {
      return { kind: 'fatal', message: `disallowing migration blocker (--only-migratable) for: ${MIGRATION_BLOCKER}` };
    }
    return { kind: 'finished' };
  }

  private resumeSnp(finish: SnpFinish): ResumeOutcome {
    if (finish.kind === 'abort') return finish;
    if (finish.kind === 'exit') return { kind: 'fatal', message: finish.message, note: finish.why };
    this.snpFactsValue = finish.facts;
    this.stateValue = 'running';
    if (this.setup.onlyMigratable) {
      return { kind: 'fatal', message: `disallowing migration blocker (--only-migratable) for: ${SNP_MIGRATION_BLOCKER}` };
    }
    return { kind: 'finished' };
  }
}

/**
 * QEMU 7.2's sev_launch_get_measure line when LAUNCH_MEASURE fails. It prints fw_error_to_str(errno)
 * (errno is EIO) rather than of the firmware's code, so the text names status 5, not `fwError`.
 */
export function launchMeasureFailureLine(fwError: number = SEV_FW_ERRORS.HWSEV_RET_PLATFORM.code): string {
  return `sev_launch_get_measure: LAUNCH_MEASURE ret=${PSP_IOCTL_RET} fw_error=${fwError} '${SEV_FW_ERRORS.ALREADY_OWNED.text}'`;
}
