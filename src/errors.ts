// The one registry of sevsup's error codes, and the SupervisorError class that carries them.
// Owns: every stable code, its default message, its API (HTTP) status and its CLI exit code.
// Must not: import anything stateful; format user text beyond the message; hold secrets in details.
// Callers match on `code`, never on `instanceof` or message text (undici's rule); docs/errors.md
// lists every code and a test keeps the two in sync.

export interface ErrorDef {
  /** Default human message; an instance may carry a more specific one. */
  readonly message: string;
  /** HTTP status for the control API. */
  readonly status: number;
  /** CLI exit code (see docs/errors.md "Exit codes"). */
  readonly exit: number;
}

/**
 * CLI exit codes by family. `sevsup verify` uses the libvirt validator's numbers instead
 * (0 valid, 1 mismatch, 2 unsupported, 3 insecure, 4 bad config, 5 bad state).
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  host: 4,
  launch: 5,
  check: 6,
  attest: 7,
  unreachable: 8,
  notFound: 9,
  refused: 10,
  internal: 70,
} as const;

const def = (message: string, status: number, exit: number): ErrorDef => ({ message, status, exit });

export const ERRORS = {
  // --- usage -------------------------------------------------------------------------------
  SUP_ERR_USAGE: def('invalid command-line usage', 400, EXIT.usage),
  SUP_ERR_OUTPUT_WRITE: def('cannot write an output file', 500, EXIT.failure),

  // --- config: VM and daemon config files ---------------------------------------------------
  SUP_ERR_CONFIG_READ: def('cannot read config file', 400, EXIT.config),
  SUP_ERR_CONFIG_SYNTAX: def('config line is not "key: value"', 400, EXIT.config),
  SUP_ERR_CONFIG_UNKNOWN_KEY: def('unknown config key', 400, EXIT.config),
  SUP_ERR_CONFIG_DUPLICATE_KEY: def('duplicate config key', 400, EXIT.config),
  SUP_ERR_CONFIG_BAD_VALUE: def('invalid config value', 400, EXIT.config),
  SUP_ERR_CONFIG_MISSING_KEY: def('required config key missing', 400, EXIT.config),
  SUP_ERR_CONFIG_CONFLICT: def('conflicting config keys', 400, EXIT.config),
  SUP_ERR_CONFIG_UNSUPPORTED: def('config value not supported yet', 400, EXIT.config),
  SUP_ERR_PROPERTY_UNKNOWN: def('unknown property in property string', 400, EXIT.config),
  SUP_ERR_PROPERTY_DUPLICATE: def('duplicate property in property string', 400, EXIT.config),
  SUP_ERR_PROPERTY_BAD_VALUE: def('invalid property value', 400, EXIT.config),
  SUP_ERR_PROPERTY_SYNTAX: def('malformed property string', 400, EXIT.config),
  SUP_ERR_VM_NOT_FOUND: def('no such VM', 404, EXIT.notFound),

  // --- SEV rules from the seed ---------------------------------------------------------------
  SUP_ERR_SEV_BIOS_NOT_OVMF: def('For using SEV you need to change your guest bios to ovmf.', 400, EXIT.config),
  SUP_ERR_SEV_UNSUPPORTED: def('Your CPU does not support AMD SEV!', 409, EXIT.host),
  SUP_ERR_SEV_ES_UNSUPPORTED: def('Your CPU does not support AMD SEV-ES!', 409, EXIT.host),
  SUP_ERR_SEV_SNP_UNSUPPORTED: def('Your CPU does not support AMD SEV-SNP!', 409, EXIT.host),
  SUP_ERR_SEV_SNP_QEMU: def('SEV-SNP needs QEMU 9.1 or newer', 409, EXIT.host),
  SUP_ERR_SEV_DEBUG_POLICY: def('the guest policy allows debugging, and the daemon config refuses such policies', 400, EXIT.config),
  SUP_ERR_SEV_HOST_PARAMS: def('SEV host parameters (cbitpos, reduced-phys-bits) are unknown', 409, EXIT.host),
  SUP_ERR_MIGRATE_SEV: def('VMs with AMD SEV are not live migratable!', 409, EXIT.refused),
  SUP_ERR_SNAPSHOT_VMSTATE: def('Snapshots that include memory are not supported while memory is encrypted by AMD SEV.', 409, EXIT.refused),

  // --- firmware --------------------------------------------------------------------------------
  SUP_ERR_FIRMWARE_READ: def('cannot read firmware image', 400, EXIT.config),
  SUP_ERR_FIRMWARE_TABLE_INVALID: def('OVMF footer table is invalid', 400, EXIT.config),
  SUP_ERR_FIRMWARE_NO_HASHES_AREA: def('firmware has no valid kernel-hashes table area', 400, EXIT.config),
  SUP_ERR_FIRMWARE_NO_SEV_INFO: def('firmware has no SEV info block (SEV-ES reset address)', 400, EXIT.config),
  SUP_ERR_FIRMWARE_SNP: def('firmware cannot launch an SEV-SNP guest', 400, EXIT.config),
  SUP_ERR_FIRMWARE_HASH_MISMATCH: def('firmware sha256 does not match the pinned value', 400, EXIT.config),
  SUP_ERR_KERNEL_READ: def('cannot read kernel or initrd image', 400, EXIT.config),

  // --- disks ---------------------------------------------------------------------------------
  SUP_ERR_DISK_READ: def('cannot read disk image', 400, EXIT.config),
  SUP_ERR_DISK_CHAIN_REFUSED: def('disk backing chain refused (it would make QEMU open a file sevsup did not state)', 400, EXIT.config),

  // --- host capabilities -----------------------------------------------------------------------
  SUP_ERR_HOST_CAPS_FILE: def('host capabilities file is invalid', 400, EXIT.host),
  SUP_ERR_HOST_CAPS_WRITE: def('cannot write host capabilities file', 500, EXIT.host),

  // --- QMP client ----------------------------------------------------------------------------------
  SUP_ERR_QMP_CONNECT: def('cannot connect to the QMP monitor', 502, EXIT.launch),
  SUP_ERR_QMP_GREETING: def('bad or missing QMP greeting', 502, EXIT.launch),
  SUP_ERR_QMP_NEGOTIATION: def('QMP capabilities negotiation failed', 502, EXIT.launch),
  SUP_ERR_QMP_STATE: def('QMP session is not in the required state', 409, EXIT.launch),
  SUP_ERR_QMP_EXECUTE: def('QMP command failed', 502, EXIT.launch),
  SUP_ERR_QMP_INTERRUPTED: def('QMP connection closed while a command was pending', 502, EXIT.launch),
  SUP_ERR_QMP_PROTOCOL: def('QMP protocol error', 502, EXIT.launch),
  SUP_ERR_QMP_TIMEOUT: def('QMP command timed out', 504, EXIT.launch),
  SUP_ERR_QMP_EVENT_OVERFLOW: def('QMP event listener fell behind; events were lost', 500, EXIT.launch),

  // --- launcher ----------------------------------------------------------------------------------
  SUP_ERR_LAUNCH_FAILED: def('QEMU failed to start', 500, EXIT.launch),
  SUP_ERR_LAUNCH_TIMEOUT: def('QEMU did not become ready in time', 504, EXIT.launch),
  SUP_ERR_QEMU_EXITED: def('QEMU exited unexpectedly', 500, EXIT.launch),
  SUP_ERR_QEMU_SIGNALLED: def('QEMU was ended by a signal sevsup did not send', 500, EXIT.launch),
  SUP_ERR_SHUTDOWN_ABNORMAL: def('QEMU did not stop gracefully and was killed', 500, EXIT.launch),
  SUP_ERR_RUN_DIR: def('cannot prepare the VM run directory', 500, EXIT.launch),

  // --- fail-closed SEV checks after spawn ------------------------------------------------------
  SUP_ERR_CHECK_SEV_DISABLED: def('QEMU reports SEV is not enabled for the guest', 500, EXIT.check),
  SUP_ERR_CHECK_POLICY_MISMATCH: def('SEV policy applied differs from the policy requested', 500, EXIT.check),
  SUP_ERR_CHECK_SEV_TYPE_MISMATCH: def('SEV type reported differs from the type requested', 500, EXIT.check),
  SUP_ERR_CHECK_STATE: def('SEV guest is not in the state its launch expects (launch-secret; launch-update for SEV-SNP)', 500, EXIT.check),
  SUP_ERR_CHECK_MEASUREMENT: def('launch measurement unavailable or malformed', 500, EXIT.check),
  SUP_ERR_RECORD_WRITE: def('measurement record could not be written durably', 500, EXIT.check),
  SUP_ERR_SNP_LAUNCH_FAILED: def('SEV-SNP launch failed at its first run: QEMU exited right after cont', 500, EXIT.launch),

  // --- attestation hold ------------------------------------------------------------------------
  SUP_ERR_ATTEST_REJECTED: def('guest rejected by the guest owner', 409, EXIT.attest),
  SUP_ERR_ATTEST_TIMEOUT: def('attestation hold timed out; guest rejected', 409, EXIT.attest),
  SUP_ERR_ATTEST_NOT_HELD: def('guest is not held for attestation', 409, EXIT.attest),
  SUP_ERR_SECRET_NO_AREA: def('firmware declares no launch-secret area; give --gpa', 400, EXIT.attest),
  SUP_ERR_SECRET_REFUSED: def('launch secret refused by the platform', 409, EXIT.attest),
  SUP_ERR_SECRET_SNP: def('SEV-SNP guests take no launch secret (no host-side injection exists)', 409, EXIT.attest),
  SUP_ERR_ATTEST_RELAYED: def("guest is relayed to its owner's service; approve and inject need --force", 409, EXIT.attest),

  // --- attest: relay (the daemon asks the guest owner's service) -----------------------------------
  SUP_ERR_RELAY_REJECTED: def("guest rejected by the guest owner's service", 409, EXIT.attest),
  SUP_ERR_RELAY_ANSWER: def("malformed answer from the guest owner's service; guest rejected", 502, EXIT.attest),
  SUP_ERR_RELAY_TLS: def("TLS check of the guest owner's service failed; guest rejected", 502, EXIT.attest),
  SUP_ERR_RELAY_HTTP: def("the guest owner's service refused or redirected; guest rejected", 502, EXIT.attest),
  SUP_ERR_RELAY_UNREACHABLE: def("the guest owner's service did not answer (retried until the hold deadline)", 504, EXIT.attest),
  SUP_ERR_RELAY_CREDENTIALS: def(
    'relay CA, client certificate, key or token file unusable (checked before QEMU is spawned, and again at hold time); guest refused',
    500,
    EXIT.attest,
  ),

  // --- guest owner's verification (exit codes as virt-qemu-sev-validate) -------------------------
  SUP_ERR_VERIFY_MISMATCH: def('measurement does not match the expected launch digest', 409, 1),
  SUP_ERR_VERIFY_UNSUPPORTED: def('unsupported verification usage', 400, 2),
  SUP_ERR_VERIFY_INSECURE: def('insecure verification usage', 400, 3),
  SUP_ERR_VERIFY_CONFIG: def('incorrect verification configuration', 400, 4),
  SUP_ERR_VERIFY_STATE: def('guest is in the wrong state for verification', 409, 5),

  // --- the guest owner's service (`sevsup owner serve`) -------------------------------------------
  SUP_ERR_OWNER_STATE: def("the owner service's state file (answered launches) cannot be read or written", 500, EXIT.failure),
  SUP_ERR_OWNER_LISTEN: def('the owner service cannot listen (address, certificate or key)', 500, EXIT.failure),

  // --- SNP certificates: AMD's key server (KDS) and the certificate cache ------------------------
  SUP_ERR_KDS_FETCH: def('the AMD key server request failed', 502, EXIT.unreachable),
  SUP_ERR_KDS_RATE_LIMITED: def('the AMD key server kept answering 429 (rate limited)', 503, EXIT.unreachable),
  SUP_ERR_KDS_NOT_FOUND: def('the AMD key server has no such certificate (404)', 404, EXIT.notFound),
  SUP_ERR_KDS_BAD_CERT: def('a certificate from the key server or an import is not what was asked for', 502, EXIT.failure),
  SUP_ERR_CERTS_OFFLINE: def('certificate not in the cache, and --offline forbids the network', 404, EXIT.notFound),
  SUP_ERR_CERTS_CACHE: def('the SNP certificate cache cannot be read or written', 500, EXIT.failure),
  SUP_ERR_CERTS_INPUT: def('invalid certificate, report or chip input', 400, EXIT.usage),
  SUP_ERR_SNP_PLATFORM: def(
    "the SEV-SNP platform's identity (product, chip id, reported TCB) is unknown or its facts file is invalid",
    500,
    EXIT.failure,
  ),

  // --- QMP proxy ------------------------------------------------------------------------------------
  SUP_ERR_PROXY_REFUSED: def('command refused by sevsup', 403, EXIT.refused),
  SUP_ERR_PROXY_BAD_INPUT: def('malformed QMP input', 400, EXIT.refused),

  // --- control API and VM state -----------------------------------------------------------------
  SUP_ERR_API_UNREACHABLE: def('cannot reach the sevsup control socket', 503, EXIT.unreachable),
  SUP_ERR_API_BAD_REQUEST: def('malformed request', 400, EXIT.usage),
  SUP_ERR_API_NOT_FOUND: def('no such API route', 404, EXIT.notFound),
  SUP_ERR_API_TOO_LARGE: def('request body too large', 413, EXIT.usage),
  SUP_ERR_API_BUSY: def('the control API is at its limit for this client; try again', 503, EXIT.unreachable),
  SUP_ERR_VM_STATE: def('VM is in the wrong state for this operation', 409, EXIT.failure),

  // --- daemon: guest operations beyond the launch (seed's snapshot/migration rules) ------------
  SUP_ERR_DAEMON_RUNNING: def('another sevsup daemon already serves this socket', 409, EXIT.failure),
  SUP_ERR_DIR_LOCKED: def('another sevsup holds the lock on the run or state directory', 409, EXIT.failure),
  SUP_ERR_VM_UNREACHABLE: def("the guest's QEMU runs but its monitor cannot be reached; sevsup left it alone", 503, EXIT.failure),
  SUP_ERR_VM_ORPHANED: def('a QEMU of this guest may run unsupervised (its state file is unreadable)', 409, EXIT.failure),
  SUP_ERR_SNAPSHOT_UNSUPPORTED: def('this snapshot is not supported for the guest', 409, EXIT.refused),
  SUP_ERR_SNAPSHOT_FAILED: def('the disk snapshot failed', 500, EXIT.failure),
  SUP_ERR_MIGRATE_RUNNING: def('live migration is not supported by sevsup; stop the guest first', 409, EXIT.refused),
  SUP_ERR_MIGRATE_TARGET: def('a stopped guest is moved offline to a local directory', 400, EXIT.usage),
  SUP_ERR_MIGRATE_FAILED: def('the offline move failed', 500, EXIT.failure),

  // --- simulated platform: sim-only requests ------------------------------------------------------
  SUP_ERR_SIM_ONLY: def('this request exists only on the simulated platform', 409, EXIT.refused),

  // --- anything else ----------------------------------------------------------------------------
  SUP_ERR_INTERNAL: def('internal error', 500, EXIT.internal),
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof ERRORS;

const BRAND = Symbol.for('sevsup.error');

export interface SupervisorErrorOptions {
  /** Structured facts safe to log and return over the API. Never secrets. */
  readonly details?: Readonly<Record<string, unknown>>;
  readonly cause?: unknown;
}

export class SupervisorError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message?: string, options: SupervisorErrorOptions = {}) {
    super(message ?? ERRORS[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SupervisorError';
    this.code = code;
    this.details = options.details ?? {};
  }

  get status(): number {
    return ERRORS[this.code].status;
  }

  get exitCode(): number {
    return ERRORS[this.code].exit;
  }

  /** The API body shape: `{code, message, details?}`. */
  toJSON(): { code: ErrorCode; message: string; details?: Readonly<Record<string, unknown>> } {
    return Object.keys(this.details).length > 0
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

/** Brand check that works across module copies and realms (execa/undici). */
export function isSupervisorError(value: unknown): value is SupervisorError {
  return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
}

/** True when `value` is a SupervisorError with one of the given codes. */
export function hasCode(value: unknown, ...codes: ErrorCode[]): value is SupervisorError {
  return isSupervisorError(value) && codes.includes(value.code);
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}
