// What QEMU 7.2 does at start-up with an SEV guest on a real SEV host, up to the point where the
// guest is measured: reading the linked sev-guest object, accelerator init (sev_kvm_init's checks
// and LAUNCH_START), firmware load (SEV-ES reset vector) and the kernel-hashes table, with QEMU's
// exact stderr lines and exit (qemu-sev-facts §3.1, §4, §6).
// Owns: the order of those checks and their texts. Pure: the caller reads files and passes facts.
// Must not: spawn, read files or compute digests.
import { describeHashesAreaProblem, PADDED_HASH_TABLE_BYTES, SEV_HASH_TABLE_RV_GUID, type OvmfTable } from '../../sev/ovmf-table.js';
import { linkedSevObject, type QemuArgvModel, type SevGuestObject } from './argv-model.js';
import { readBool, readUint } from './qemu-opts.js';
import { gpaProblem, SIM_HOST_CBITPOS } from './sev-state.js';

/** QEMU's error prefix: the program's basename (error_set_progname). */
export const QEMU_PROGNAME = 'qemu-system-x86_64';

/** glibc's assert text from qemu_machine_creation_done when the guest's accelerator is not KVM. */
export const CGS_NOT_READY_ASSERT = "../../softmmu/vl.c:2590: qemu_machine_creation_done: Assertion `machine->cgs->ready' failed.";

export interface SevObjectParams {
  readonly id: string;
  readonly policy: number;
  readonly cbitpos: number;
  readonly reducedPhysBits: number;
  readonly handle: number;
  readonly kernelHashes: boolean;
  readonly sevDevice: string;
  readonly dhCertFile: string | null;
  readonly sessionFile: string | null;
}

const UINT32_MAX = 0xffffffff;
const KNOWN_PROPERTIES = new Set([
  'qom-type',
  'id',
  'sev-device',
  'dh-cert-file',
  'session-file',
  'policy',
  'handle',
  'cbitpos',
  'reduced-phys-bits',
  'kernel-hashes',
]);

/**
 * The object's properties as QEMU 7.2 reads them (defaults from sev.c), or a reason the sim does
 * not understand them; QEMU then gets the object and reports the problem in its own words.
 */
export function readSevObject(object: SevGuestObject): SevObjectParams | { readonly unreadable: string } {
  const p = object.props;
  for (const key of Object.keys(p)) if (!KNOWN_PROPERTIES.has(key)) return { unreadable: `unknown property '${key}'` };
  const uint = (key: string, fallback: number | null): number | null => (p[key] === undefined ? fallback : readUint(p[key], UINT32_MAX));
  const policy = uint('policy', 0x1);
  const cbitpos = uint('cbitpos', 0);
  const reducedPhysBits = uint('reduced-phys-bits', null);
  const handle = uint('handle', 0);
  const kernelHashes = p['kernel-hashes'] === undefined ? false : readBool(p['kernel-hashes']);
  const str = (key: string): string | null | undefined => (p[key] === undefined ? null : typeof p[key] === 'string' ? p[key] : undefined);
  const sevDevice = str('sev-device');
  const dhCertFile = str('dh-cert-file');
  const sessionFile = str('session-file');
  if (policy === null || cbitpos === null || reducedPhysBits === null || handle === null || kernelHashes === null) {
    return { unreadable: 'a missing or malformed numeric or boolean property' };
  }
  if (sevDevice === undefined || dhCertFile === undefined || sessionFile === undefined) {
    return { unreadable: 'a non-string file property' };
  }
  return {
    id: object.id,
    policy,
    cbitpos,
    reducedPhysBits,
    handle,
    kernelHashes,
    sevDevice: sevDevice ?? '/dev/sev',
    dhCertFile,
    sessionFile,
  };
}

/** Files and devices the checks look at, read by the caller beforehand. */
export interface StartupFacts {
  /** glib's message for each dh-cert/session file that cannot be read (absent: readable). */
  readonly unreadableFiles: ReadonlyMap<string, string>;
  /** Whether a sev-device other than /dev/sev exists (the simulated host has /dev/sev). */
  readonly existingDevices: ReadonlySet<string>;
  /** The firmware's footer table; null when no firmware was read. */
  readonly firmwareTable: OvmfTable | null;
  /** QEMU's non-fatal "OVMF table has invalid size N", when the table is corrupt. */
  readonly firmwareTableError: string | null;
  /** Whether -kernel is a bzImage (QEMU measures kernel hashes only on that path); null without -kernel. */
  readonly kernelIsBzImage: boolean | null;
}

export type StartupPlan =
  /** No machine link to a sev-guest object: a plain VM, exactly as QEMU runs it. */
  | { readonly kind: 'plain' }
  /** The sim cannot read the linked object: QEMU is left to judge it. */
  | { readonly kind: 'unreadable'; readonly reason: string }
  /** QEMU would stop: print `lines`, then exit 1 or abort (SIGABRT, exit status 134). */
  | { readonly kind: 'fail'; readonly lines: readonly string[]; readonly exit: 'exit-1' | 'abort' }
  | {
      readonly kind: 'sev';
      /** Non-fatal lines QEMU prints on the way (a corrupt footer table's size). */
      readonly lines: readonly string[];
      readonly params: SevObjectParams;
      readonly es: boolean;
      /** Kernel hashes are measured: kernel-hashes=on, -kernel given and a bzImage. */
      readonly measureKernelHashes: boolean;
      /** SEV-ES AP reset address from the firmware (null unless ES). */
      readonly resetAddress: number | null;
    };

/** Node's error codes as glib's g_strerror words them. */
const STRERROR: Readonly<Record<string, string>> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  EPERM: 'Operation not permitted',
};

/** glib's g_file_get_contents error text for `path` failing with Node error `code`. */
export function glibReadError(path: string, code: string): string {
  if (code === 'EISDIR') return `Error reading file “${path}”: Is a directory`;
  return `Failed to open file “${path}”: ${STRERROR[code] ?? code}`;
}

const ES_POLICY_BIT = 0x4;

function kvmInitProblems(params: SevObjectParams, facts: StartupFacts): string[] {
  // sev_kvm_init, 7.2 order: cbitpos, reduced-phys-bits, open(sev-device), platform status,
  // (SEV-ES: irqchip and host support, both present on the simulated host), SEV_INIT, LAUNCH_START.
  if (params.cbitpos !== SIM_HOST_CBITPOS) {
    return [`sev_kvm_init: cbitpos check failed, host '${SIM_HOST_CBITPOS}' requested '${params.cbitpos}'`];
  }
  if (params.reducedPhysBits < 1) {
    return [`sev_kvm_init: reduced_phys_bits check failed, it should be >=1, requested '${params.reducedPhysBits}'`];
  }
  if (params.sevDevice !== '/dev/sev' && !facts.existingDevices.has(params.sevDevice)) {
    return [`sev_kvm_init: Failed to open ${params.sevDevice} 'No such file or directory'`];
  }
  // LAUNCH_START reads the session file, then the owner's DH certificate.
  for (const file of [params.sessionFile, params.dhCertFile]) {
    if (file === null) continue;
    const error = facts.unreadableFiles.get(file);
    if (error !== undefined) return [`SEV: Failed to read '${file}' (${error})`, 'sev_kvm_init: failed to create encryption context'];
  }
  return [];
}

/** What accelerator init printed on the way to KVM, or how QEMU stopped. */
export type AccelOutcome =
  | { readonly kind: 'kvm'; readonly lines: readonly string[] }
  | { readonly kind: 'fail'; readonly lines: readonly string[]; readonly exit: 'exit-1' | 'abort' };

/**
 * QEMU's accelerator loop (vl.c configure_accelerators) for a guest with a confidential-guest
 * object: KVM runs `kvmInit` (the object's kvm_init checks, as QEMU's texts), TCG is tried as QEMU
 * does, and only KVM makes the object ready (anything else trips the machine-creation assertion).
 */
export function initAccelerator(model: QemuArgvModel, kvmInit: () => readonly string[]): AccelOutcome {
  const lines: string[] = [];
  const say = (location: string | null, text: string): void => {
    lines.push(`${QEMU_PROGNAME}: ${location === null ? '' : `${location}: `}${text}`);
  };
  // x86's default accelerator is TCG; QEMU tries each in order until one initialises.
  const accels = model.accels.length > 0 ? model.accels : [{ name: 'tcg', location: null }];
  let chosen: string | null = null;
  let failedOne = false;
  for (const accel of accels) {
    if (accel.name === 'kvm') {
      const problems = kvmInit();
      if (problems.length === 0) {
        chosen = 'kvm';
        break;
      }
      for (const p of problems) say(accel.location, p);
      // kvm_init returns -1, which vl.c prints as strerror(1).
      say(accel.location, 'failed to initialize kvm: Operation not permitted');
      failedOne = true;
    } else if (accel.name === 'tcg') {
      chosen = 'tcg';
      break;
    } else {
      say(accel.location, `invalid accelerator ${accel.name}`);
      failedOne = true;
    }
  }
  if (chosen === null) {
    // vl.c names the lack of an accelerator only when none failed on its own.
    if (!failedOne) say(null, 'no accelerator found');
    return { kind: 'fail', lines, exit: 'exit-1' };
  }
  if (failedOne) say(null, `falling back to ${chosen}`);
  if (chosen !== 'kvm') return { kind: 'fail', lines: [...lines, `${QEMU_PROGNAME}: ${CGS_NOT_READY_ASSERT}`], exit: 'abort' };
  return { kind: 'kvm', lines };
}

/**
 * QEMU 7.2's start-up on the simulated SEV host, up to LAUNCH_MEASURE. Lines come with QEMU's
 * prefix (and the `-accel …:` location where QEMU prints one).
 */
export function planStartup(model: QemuArgvModel, facts: StartupFacts): StartupPlan {
  const object = linkedSevObject(model);
  if (object === null) return { kind: 'plain' };
  const params = readSevObject(object);
  if ('unreadable' in params) return { kind: 'unreadable', reason: params.unreadable };

  const accel = initAccelerator(model, () => kvmInitProblems(params, facts));
  if (accel.kind === 'fail') return accel;
  const lines = [...accel.lines];
  const say = (location: string | null, text: string): void => {
    lines.push(`${QEMU_PROGNAME}: ${location === null ? '' : `${location}: `}${text}`);
  };

  const table = facts.firmwareTable;
  if (facts.firmwareTableError !== null) say(null, facts.firmwareTableError);
  const es = (params.policy & ES_POLICY_BIT) !== 0;
  let resetAddress: number | null = null;
  if (es) {
    // sev_es_save_reset_vector: the info block (table entry or legacy layout) must give an address.
    if (table === null || table.sevInfoSource === null) {
      say(null, 'SEV information block/Firmware GUID Table block not found in pflash rom');
      say(null, 'failed to locate and/or save reset vector');
      return { kind: 'fail', lines, exit: 'exit-1' };
    }
    if (table.sevInfoResetAddress === 0 || table.sevInfoResetAddress === null) {
      say(null, 'SEV-ES reset address is zero');
      say(null, 'failed to locate and/or save reset vector');
      return { kind: 'fail', lines, exit: 'exit-1' };
    }
    resetAddress = table.sevInfoResetAddress;
  }
  const measureKernelHashes = params.kernelHashes && model.kernel !== null && facts.kernelIsBzImage === true;
  if (measureKernelHashes) {
    // QEMU reads base and size from whatever the entry holds; a truncated entry reads as zeros here.
    const area = table?.entries.some((e) => e.guid === SEV_HASH_TABLE_RV_GUID) ? (table.hashesArea ?? { base: 0, size: 0 }) : null;
    const problem = describeHashesAreaProblem(area);
    if (problem !== '') {
      say(null, problem);
      return { kind: 'fail', lines, exit: 'exit-1' };
    }
    if (area !== null && gpaProblem(area.base, PADDED_HASH_TABLE_BYTES, model.memoryBytes) !== null) {
      say(null, 'SEV: cannot map hashes table guest memory area');
      return { kind: 'fail', lines, exit: 'exit-1' };
    }
  }
  return { kind: 'sev', lines, params, es, measureKernelHashes, resetAddress };
}
