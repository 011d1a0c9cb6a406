// What the QMP proxy lets through: every QEMU 7.2 command (plus the 10.x additions sevsup knows)
// classified as allowed or refused with a reason, the HMP `info` allowlist, and the argument
// rules that close indirect paths to guest memory. Owns: classification data and lookups only.
// Must not: look at VM state or config (decide.ts combines this with the context), or do I/O.
// Invariant: a name not in the table is refused (default-deny); the memory family is never
// re-allowable, whatever a VM's qmp-allow says. docs: DESIGN "QMP proxy: what is refused".
import { SupervisorError } from '../errors.js';
import { SEV_OBJECT_ID } from '../qemu/sev.js';

/** Why the proxy refused a message. Codes are stable: audit logs and tests match on them. */
export type RefusalReason =
  /** Not a well-formed command (both/neither of execute and exec-oob, a non-string name...). */
  | 'bad-message'
  /** Copies guest memory and CPU state off the host (SEV guests are not migratable). */
  | 'migration'
  /** Snapshots that include memory (vmstate). */
  | 'snapshot-vmstate'
  /** Reads guest memory or CPU registers (with a debug-enabled policy QEMU can decrypt them). */
  | 'memory-dump'
  /** Maps guest memory into another process, adds RAM outside the launch, or shows where it is. */
  | 'guest-memory'
  /** Xen device-state save/load. */
  | 'xen-save-load'
  /** COLO: continuous replication of memory to another host. */
  | 'colo'
  /** Would cut or bypass sevsup's own monitor connection. */
  | 'supervisor-channel'
  /** sev-inject-launch-secret: goes through sevsup's attestation path only. */
  | 'launch-secret'
  /** cont while the guest is held for attestation. */
  | 'held'
  /** An HMP command other than a read-only `info`. */
  | 'hmp'
  /** The VM's qmp-deny names it. */
  | 'config-deny'
  /** An unstable `x-` command the VM's qmp-allow does not name. */
  | 'unstable'
  /** screendump: screen contents leave the VM (opt-in with qmp-allow). */
  | 'screen'
  /**
   * Makes QEMU (often root) open, create or listen on a host path, or run a host program: a
   * proxy client would borrow QEMU's privileges on the host. Opt in by name with qmp-allow.
   */
  | 'host-access'
  /**
   * Turns on QEMU-side tracing or logging (trace-event-set-state, HMP trace-event/log/logfile):
   * trace points print command arguments, launch secrets included, into QEMU's log. Final.
   */
  | 'tracing'
  /**
   * File-descriptor passing (getfd, add-fd, closefd, remove-fd): the proxy never relays SCM_RIGHTS,
   * so getfd/add-fd cannot work through it, and closefd/remove-fd would act on the fds of sevsup's
   * own monitor connection and the fd sets QEMU was started with. Final.
   */
  | 'fd-passing'
  /**
   * qom-set of a property no proxy client may change: `realized` (unrealizing a device aborts
   * QEMU), or any property of the confidential-guest object or a memory back-end (the attested
   * launch's policy, handle and guest RAM). Final.
   */
  | 'qom-property'
  /** Not a command sevsup knows. */
  | 'unknown';

/** Reasons a VM's qmp-allow can lift, by exact command name. Everything else is final. */
export const REALLOWABLE_REASONS: ReadonlySet<RefusalReason> = new Set<RefusalReason>(['unstable', 'screen', 'host-access', 'unknown']);

/** The memory family: refusals no config can lift. */
export const MEMORY_FAMILY: ReadonlySet<RefusalReason> = new Set<RefusalReason>([
  'migration',
  'snapshot-vmstate',
  'memory-dump',
  'guest-memory',
  'xen-save-load',
  'colo',
]);

/** What an allowed command is for; the audit log names it. */
export type AllowedKind =
  | 'query'
  | 'protocol'
  | 'lifecycle'
  | 'device'
  | 'block'
  | 'job'
  | 'chardev'
  | 'network'
  | 'display'
  | 'input'
  | 'object'
  | 'tuning'
  | 'diagnostic'
  | 'hmp';

export type CommandClass =
  | { readonly verdict: 'allowed'; readonly kind: AllowedKind; readonly why: string }
  | { readonly verdict: 'refused'; readonly reason: RefusalReason; readonly why: string };

type Row = readonly [names: string, cls: CommandClass];

const allowed = (kind: AllowedKind, why: string, names: string): Row => [names, { verdict: 'allowed', kind, why }];
const refused = (reason: RefusalReason, why: string, names: string): Row => [names, { verdict: 'refused', reason, why }];

/**
 * Every command of QEMU 7.2's query-commands (qemu-sev-facts Appendix A, 216 names) and the 10.x
 * additions named in §8. The integration test integration/proxy-classify/ fails when the real
 * binary lists a command that is in neither column.
 */
const ROWS: readonly Row[] = [
  allowed('protocol', 'capabilities negotiation (answered by the proxy itself)', 'qmp_capabilities'),
  allowed(
    'query',
    'read-only query',
    `query-acpi-ospm-status query-balloon query-block query-block-exports query-block-jobs
     query-blockstats query-chardev query-chardev-backends query-command-line-options query-commands
     query-cpu-definitions query-cpu-model-expansion query-cpus-fast query-current-machine
     query-dirty-rate query-display-options query-fdsets query-hotpluggable-cpus query-iothreads
     query-jobs query-kvm query-machines query-memdev query-memory-devices query-memory-size-summary
     query-mice query-name query-named-block-nodes query-pci query-pr-managers query-qmp-schema
     query-replay query-rocker query-rocker-of-dpa-flows query-rocker-of-dpa-groups
     query-rocker-ports query-rx-filter query-sgx query-sgx-capabilities query-spice query-stats
     query-stats-schemas query-status query-target query-tpm query-tpm-models query-tpm-types
     query-uuid query-vcpu-dirty-limit query-version query-vm-generation-id query-vnc
     query-vnc-servers query-yank device-list-properties qom-get qom-list qom-list-properties
     qom-list-types trace-event-get-state`,
  ),
  allowed(
    'query',
    'read-only status of a refused family: reports, never starts anything',
    `query-migrate query-migrate-capabilities query-migrate-parameters query-migrationthreads
     query-dump query-dump-guest-memory-capability query-colo-status query-xen-replication-status`,
  ),
  allowed(
    'query',
    'SEV status and attestation evidence for the guest owner; reveals no guest memory',
    'query-sev query-sev-capabilities query-sev-launch-measure query-sev-attestation-report',
  ),
  allowed(
    'lifecycle',
    'run-state control sevsup permits (cont is refused while held for attestation)',
    'cont stop system_powerdown system_reset system_wakeup quit',
  ),
  allowed('lifecycle', 'what the guest does on reboot, panic or watchdog expiry', 'set-action watchdog-set-action'),
  allowed('device', 'device hot-plug (device_add drivers that reach guest memory are refused)', 'device_add device_del'),
  allowed(
    'block',
    'disk management: disk data only, never guest RAM (disk-only snapshots included)',
    `block-commit block-dirty-bitmap-add block-dirty-bitmap-clear block-dirty-bitmap-disable
     block-dirty-bitmap-enable block-dirty-bitmap-merge block-dirty-bitmap-remove
     block-latency-histogram-set block-set-write-threshold block-stream block_resize
     block_set_io_throttle blockdev-backup blockdev-close-tray blockdev-del blockdev-insert-medium
     blockdev-mirror blockdev-open-tray blockdev-remove-medium blockdev-snapshot
     blockdev-snapshot-delete-internal-sync blockdev-snapshot-internal-sync eject transaction
     blockdev-set-active`,
  ),
  allowed('block', 'stops a disk export (starting one needs qmp-allow: host-access)', 'block-export-del nbd-server-remove nbd-server-stop'),
  allowed(
    'job',
    'block job control (no job that saves memory can be started through the proxy)',
    `block-job-cancel block-job-complete block-job-dismiss block-job-finalize block-job-pause
     block-job-resume block-job-set-speed job-cancel job-complete job-dismiss job-finalize job-pause
     job-resume`,
  ),
  allowed(
    'chardev',
    'character devices carry only bytes a guest device sends; the paths that would make one a memory channel (gdbserver, vhost-user) are refused on their own',
    'chardev-remove chardev-send-break ringbuf-read ringbuf-write',
  ),
  allowed('network', 'network back-ends and links (vhost-user and vhost-vdpa back-ends are refused)', 'netdev_del set_link announce-self'),
  allowed(
    'display',
    'remote display access and passwords (add_client only for vnc and spice)',
    'add_client change-vnc-password display-reload display-update expire_password set_password',
  ),
  allowed('input', 'keyboard and pointer input', 'input-send-event send-key'),
  allowed('object', 'QOM objects (memory back-ends and vhost-user objects are refused)', 'object-del qom-set'),
  allowed(
    'tuning',
    'resource tuning; dirty-rate tools report rates, never page contents',
    `balloon calc-dirty-rate cancel-vcpu-dirty-limit set-vcpu-dirty-limit set-numa-node
     rtc-reset-reinjection`,
  ),
  allowed('diagnostic', 'diagnostics that read no guest memory', 'inject-nmi replay-break replay-delete-break yank'),
  allowed('hmp', 'human monitor: only the read-only `info` sub-commands sevsup lists pass', 'human-monitor-command'),

  refused(
    'migration',
    'migration copies guest memory and CPU state off the host; SEV guests are not migratable',
    `migrate migrate-continue migrate-incoming migrate-pause migrate-recover
     migrate-set-capabilities migrate-set-parameters migrate-start-postcopy migrate_cancel
     client_migrate_info`,
  ),
  refused(
    'snapshot-vmstate',
    'Snapshots that include memory are not supported while memory is encrypted by AMD SEV.',
    'snapshot-save snapshot-load snapshot-delete replay-seek',
  ),
  refused('memory-dump', 'writes guest memory to a file', 'dump-guest-memory memsave pmemsave'),
  refused(
    'guest-memory',
    'reveals where guest RAM lives in the QEMU process (host addresses)',
    'x-query-ramblock x-query-virtio-vhost-queue-status',
  ),
  refused(
    'xen-save-load',
    'saves or restores device state outside the attested launch',
    'xen-save-devices-state xen-load-devices-state xen-set-global-dirty-log',
  ),
  refused('colo', 'COLO replicates guest memory to a secondary host', 'x-colo-lost-heartbeat xen-colo-do-checkpoint xen-set-replication'),
  refused(
    'launch-secret',
    "launch secrets are injected through sevsup's attestation path (sevsup attest --inject-secret)",
    'sev-inject-launch-secret',
  ),
  refused(
    'tracing',
    "turns on QEMU's trace points: they print command arguments (launch secrets included) into QEMU's log and can fill the disk",
    'trace-event-set-state',
  ),
  refused(
    'fd-passing',
    "the proxy never passes file descriptors (SCM_RIGHTS), and the fds and fd sets QEMU holds are sevsup's own; give QEMU files through the VM config",
    'getfd add-fd closefd remove-fd',
  ),
  refused('screen', 'copies the guest display to a host file; opt in with qmp-allow', 'screendump'),
  refused(
    'host-access',
    'makes QEMU open, create or listen on a host path, or run a host program (tap scripts), with its privileges; opt in by name with qmp-allow',
    `blockdev-add blockdev-create blockdev-reopen blockdev-change-medium blockdev-snapshot-sync
     change-backing-file drive-backup drive-mirror block-export-add nbd-server-add nbd-server-start
     chardev-add chardev-change netdev_add object-add dumpdtb`,
  ),
  refused(
    'unstable',
    "unstable x- command; only by exact name in the VM's qmp-allow",
    `x-blockdev-amend x-blockdev-change x-blockdev-set-iothread x-debug-block-dirty-bitmap-sha256
     x-debug-query-block-graph x-exit-preconfig x-query-irq x-query-jit x-query-numa x-query-opcount
     x-query-profile x-query-rdma x-query-roms x-query-usb x-query-virtio x-query-virtio-queue-element
     x-query-virtio-queue-status x-query-virtio-status`,
  ),
];

function buildTable(rows: readonly Row[]): ReadonlyMap<string, CommandClass> {
  const table = new Map<string, CommandClass>();
  for (const [names, cls] of rows) {
    for (const name of names.split(/\s+/).filter((n) => n !== '')) {
      if (table.has(name)) throw new SupervisorError('SUP_ERR_INTERNAL', `qmp-policy: ${name} is classified twice`);
      table.set(name, cls);
    }
  }
  return table;
}

/** Every command sevsup knows, by exact QMP name. */
export const QMP_COMMANDS: ReadonlyMap<string, CommandClass> = buildTable(ROWS);

/**
 * Names QEMU may add later are still caught by their family: a command not in the table whose
 * name says migration, snapshot, dump, COLO, Xen or secret injection is refused for that family
 * (and so can never be re-allowed), not merely as unknown.
 */
const FAMILY_PATTERNS: readonly (readonly [RegExp, RefusalReason, string])[] = [
  [/migrat/, 'migration', 'looks like a migration command'],
  [/(^|[-_])colo([-_]|$)/, 'colo', 'looks like a COLO command'],
  [/^xen[-_]/, 'xen-save-load', 'looks like a Xen save/restore command'],
  [/savevm|loadvm|vmstate|snapshot[-_](save|load|delete)/, 'snapshot-vmstate', 'looks like a snapshot with memory'],
  [/dump|memsave|pmemsave|ramblock/, 'memory-dump', 'looks like a memory dump'],
  [/inject.*secret|secret.*inject|launch[-_]secret/, 'launch-secret', 'looks like launch-secret injection'],
];

/**
 * Classifies a QMP command name: the table first, then family patterns for names the table
 * does not know, then `x-` names as unstable, then unknown. Exact and case-sensitive, as QEMU's
 * own lookup (no dash/underscore folding); patterns match case-insensitively (refusing more).
 */
export function classifyCommand(name: string): CommandClass {
  const known = QMP_COMMANDS.get(name);
  if (known !== undefined) return known;
  const lower = name.toLowerCase();
  for (const [pattern, reason, why] of FAMILY_PATTERNS) {
    if (pattern.test(lower)) return { verdict: 'refused', reason, why: `not a known command and ${why}` };
  }
  if (name.startsWith('x-')) {
    return { verdict: 'refused', reason: 'unstable', why: 'unknown unstable x- command; only by exact name in qmp-allow' };
  }
  return { verdict: 'refused', reason: 'unknown', why: 'not a command sevsup knows; refused by default' };
}

/**
 * Why `name` cannot be listed in a VM's qmp-allow, or null when it can (config validation).
 * Allowed commands can be listed harmlessly; HMP commands are never re-allowable by name.
 */
export function qmpAllowProblem(name: string): string | null {
  const cls = classifyCommand(name);
  if (cls.verdict === 'allowed' || REALLOWABLE_REASONS.has(cls.reason)) return null;
  return `${name} is refused by sevsup (${cls.reason}) and cannot be allowed: ${cls.why}`;
}

// --- HMP (human-monitor-command) -----------------------------------------------------------

/**
 * `info` sub-commands that pass: read-only views of configuration and run state that show no
 * guest memory, guest registers or host addresses. Everything else is refused.
 */
export const HMP_INFO_ALLOWED: ReadonlySet<string> = new Set([
  'balloon',
  'block',
  'block-jobs',
  'blockstats',
  'capture',
  'chardev',
  'cpus',
  'dirty_rate',
  'dump',
  'hotpluggable-cpus',
  'iothreads',
  'irq',
  'jit',
  'kvm',
  'memdev',
  'memory-devices',
  'memory_size_summary',
  'mice',
  'migrate',
  'migrate_capabilities',
  'migrate_parameters',
  'mtree',
  'name',
  'network',
  'numa',
  'opcount',
  'pci',
  'profile',
  'qdm',
  'qom-tree',
  'qtree',
  'rdma',
  'replay',
  'rocker',
  'rocker-of-dpa-flows',
  'rocker-of-dpa-groups',
  'rocker-ports',
  'roms',
  'sev',
  'sgx',
  'snapshots',
  'spice',
  'stats',
  'status',
  'sync-profile',
  'tpm',
  'trace-events',
  'usb',
  'usernet',
  'uuid',
  'vcpu_dirty_limit',
  'version',
  'virtio',
  'virtio-status',
  'vm-generation-id',
  'vnc',
]);

/**
 * `info` sub-commands refused for a named family. `mem` and `tlb` walk the guest's page tables,
 * `registers`, `lapic` and `pic` print guest CPU and interrupt-controller register state,
 * `ramblock` (newer QEMU) the host address of guest RAM.
 * The rest not allowed (history, usbhost, virtio-queue-*) are refused as plain `hmp`.
 */
export const HMP_INFO_REFUSED: ReadonlyMap<string, RefusalReason> = new Map<string, RefusalReason>([
  ['mem', 'memory-dump'],
  ['tlb', 'memory-dump'],
  ['registers', 'memory-dump'],
  ['lapic', 'memory-dump'],
  ['pic', 'memory-dump'],
  ['ramblock', 'guest-memory'],
]);

/**
 * HMP commands with a family of their own (names after alias resolution); every other HMP
 * command is refused as `hmp`. x/xp/sum/gva2gpa/print read guest memory or registers, gdbserver
 * gives a debugger both, gpa2hva/gpa2hpa reveal host addresses of guest RAM.
 */
export const HMP_FAMILIES: ReadonlyMap<string, RefusalReason> = new Map<string, RefusalReason>([
  ...[
    'migrate',
    'migrate_cancel',
    'migrate_continue',
    'migrate_incoming',
    'migrate_pause',
    'migrate_recover',
    'migrate_set_capability',
    'migrate_set_parameter',
    'migrate_start_postcopy',
    'client_migrate_info',
  ].map((n) => [n, 'migration'] as const),
  ...['savevm', 'loadvm', 'delvm', 'replay_seek'].map((n) => [n, 'snapshot-vmstate'] as const),
  ...['dump-guest-memory', 'memsave', 'pmemsave', 'x', 'xp', 'sum', 'gva2gpa', 'print', 'gdbserver'].map(
    (n) => [n, 'memory-dump'] as const,
  ),
  ...['gpa2hva', 'gpa2hpa'].map((n) => [n, 'guest-memory'] as const),
  ['x_colo_lost_heartbeat', 'colo'],
  // trace-file exists only in builds with the simple trace backend; listed so it stays final.
  ...['trace-event', 'trace-file', 'log', 'logfile'].map((n) => [n, 'tracing'] as const),
]);

// --- argument rules --------------------------------------------------------------------------

/**
 * The chardev id of sevsup's own monitor (qemu/argv.ts: `-chardev socket,id=monitor,...`).
 * Yanking, changing or removing it would cut the supervisor off from QEMU.
 */
export const SUPERVISOR_CHARDEV_IDS: ReadonlySet<string> = new Set(['monitor']);

/**
 * device_add drivers refused, with why. guest-memory: memory devices add RAM outside the launch
 * measurement (pc-dimm, nvdimm, virtio-mem, virtio-pmem, sgx-epc, hv-balloon), `loader` writes
 * into guest memory, vhost-user devices map all guest RAM into another process, ivshmem shares
 * memory with one, vfio passes a host device with DMA. host-access: the device opens a host file,
 * directory or device node with QEMU's privileges: guest-loader (a host file into guest memory),
 * usb-mtp (`rootdir`), usb-host and u2f-passthru (host USB/hidraw devices), u2f-emulated (`dir`),
 * ccid-card-emulated (`db`), every other vhost-* (vsock, scsi, net: /dev/vhost-*), pvrdma (a host
 * RDMA device), x-pci-proxy-dev (a remote process's fd). Matched case-insensitively on the whole
 * name or a prefix, so the `-pci`/`-device`/`-ccw` variants and aliases are covered.
 */
const REFUSED_DRIVER_PATTERNS: readonly (readonly [RegExp, RefusalReason])[] = [
  [/^(pc-dimm|nvdimm|sgx-epc|loader|hv-balloon)$/, 'guest-memory'],
  [/^virtio-p?mem/, 'guest-memory'],
  [/vhost-user/, 'guest-memory'],
  [/vhost-vdpa/, 'guest-memory'],
  [/ivshmem/, 'guest-memory'],
  [/vfio/, 'guest-memory'],
  [/^guest-loader$/, 'host-access'],
  [/^usb-(mtp|host)$/, 'host-access'],
  [/^u2f-/, 'host-access'],
  [/^ccid-card-emulated$/, 'host-access'],
  [/vhost-/, 'host-access'],
  [/^pvrdma$/, 'host-access'],
  [/pci-proxy-dev/, 'host-access'],
];

export function refusedDeviceDriver(driver: string): RefusalReason | null {
  const lower = driver.toLowerCase();
  return REFUSED_DRIVER_PATTERNS.find(([pattern]) => pattern.test(lower))?.[1] ?? null;
}

/**
 * Property names whose value is a host path, a host device or a host fd, for any QOM type: a
 * non-empty value makes QEMU open, create or read it with its privileges (device_add, qom-set).
 * romfile (every PCI device), file (loader), kernel/initrd (guest-loader), rootdir (usb-mtp),
 * dir (u2f-emulated), db (ccid-card-emulated), hostdevice/hidraw (usb-host, u2f-passthru),
 * sysfsdev/host (vfio), vhostfd/vhostfds/fd (vhost-*, vfio), mem-path (memory-backend-file),
 * filename/path/logfile/bios/dtb (any future property of that kind).
 */
export const PATH_VALUED_PROPERTIES: ReadonlySet<string> = new Set([
  'romfile',
  'file',
  'filename',
  'kernel',
  'initrd',
  'rootdir',
  'dir',
  'db',
  'hostdevice',
  'hidraw',
  'sysfsdev',
  'host',
  'vhostfd',
  'vhostfds',
  'fd',
  'fds',
  'mem-path',
  'path',
  'logfile',
  'bios',
  'dtb',
]);

/** The path-valued property named `property` (any case), or null. */
export function pathValuedProperty(property: string): boolean {
  return PATH_VALUED_PROPERTIES.has(property.toLowerCase());
}

/**
 * QOM path components that lead to the confidential-guest object or a memory back-end: the
 * `sev-guest` object's id (qemu/sev.ts), the machine's link to it, the default RAM back-end QEMU
 * creates under /objects (`pc.ram`; `<machine>.ram` on others) and the names that link to
 * back-ends. QOM resolves partial paths and follows link properties, so every component counts.
 */
const GUARDED_QOM_COMPONENTS: readonly RegExp[] = [
  new RegExp(`^${SEV_OBJECT_ID}$`),
  /^confidential-guest-support$/,
  /\.ram$/,
  /^memdev$/,
  /^memory-backend/,
];

/** Whether `part` (one QOM path component or an object id) leads to a guarded object. */
export function guardedQomComponent(part: string): boolean {
  const lower = part.toLowerCase();
  return GUARDED_QOM_COMPONENTS.some((pattern) => pattern.test(lower));
}

/** Properties no qom-set may change on any object: see {@link RefusalReason} 'qom-property'. */
const GUARDED_QOM_PROPERTIES: ReadonlySet<string> = new Set(['realized', 'memdev', 'memory-backend', 'confidential-guest-support']);

/** Why qom-set of `property` at `path` is refused, or null (pure; see decide.ts). */
export function qomSetProblem(path: string, property: string): { reason: RefusalReason; why: string } | null {
  const prop = property.toLowerCase();
  if (GUARDED_QOM_PROPERTIES.has(prop)) {
    return { reason: 'qom-property', why: `property '${prop}' changes device realization or memory wiring` };
  }
  if (pathValuedProperty(prop)) return { reason: 'host-access', why: `property '${prop}' names a host path or device` };
  const guarded = path.split('/').find((part) => part !== '' && guardedQomComponent(part));
  return guarded === undefined
    ? null
    : { reason: 'qom-property', why: `'${guarded}' is the confidential-guest object or a memory back-end` };
}

/**
 * transaction action types of QEMU 7.2 (qapi/transaction.json), each run with the verdict of the
 * command of the same name; `abort` only makes the transaction fail. Any other type is refused.
 */
export const TRANSACTION_ACTIONS: ReadonlySet<string> = new Set([
  'abort',
  'block-dirty-bitmap-add',
  'block-dirty-bitmap-remove',
  'block-dirty-bitmap-clear',
  'block-dirty-bitmap-enable',
  'block-dirty-bitmap-disable',
  'block-dirty-bitmap-merge',
  'blockdev-backup',
  'blockdev-snapshot',
  'blockdev-snapshot-internal-sync',
  'blockdev-snapshot-sync',
  'drive-backup',
]);

/**
 * Arguments that make an otherwise allowed command open, create or rewrite a host path (surveyed
 * over the arguments of every command in 7.2's query-qmp-schema): block-stream and block-commit
 * write `backing-file` into an image header (what change-backing-file does), and QEMU opens it as
 * the disk's backing at the next start; display-update's `addresses` make the VNC server listen on
 * a new host socket path or port. Any value counts, even "" (QEMU writes it to the header).
 */
export const PATH_VALUED_ARGUMENTS: ReadonlyMap<string, { readonly key: string; readonly why: string }> = new Map([
  ['block-stream', { key: 'backing-file', why: 'writes a host path into an image header, which QEMU opens at the next start' }],
  ['block-commit', { key: 'backing-file', why: 'writes a host path into an image header, which QEMU opens at the next start' }],
  ['display-update', { key: 'addresses', why: 'makes the VNC server listen on a host socket path or port' }],
]);

/**
 * object-add types refused: any memory back-end (hot-plugged RAM is not in the launch
 * measurement, and a file or memfd back-end with share=on puts it where other processes can map
 * it), and vhost-user back-ends (they map guest RAM into another process).
 */
export function refusedObjectType(qomType: string): RefusalReason | null {
  const lower = qomType.toLowerCase();
  return lower.startsWith('memory-backend') || lower.includes('vhost-user') ? 'guest-memory' : null;
}

/** netdev_add types refused: vhost-user maps guest RAM into another process, vhost-vdpa into a device. */
export function refusedNetdevType(type: string): RefusalReason | null {
  const lower = type.toLowerCase();
  return lower.includes('vhost-user') || lower.includes('vhost-vdpa') ? 'guest-memory' : null;
}

/**
 * add_client protocols allowed. Any other value names a chardev (monitor/qmp-cmds.c): handing a
 * socket to the monitor chardev would give the client an unfiltered QMP session.
 */
export const ADD_CLIENT_PROTOCOLS: ReadonlySet<string> = new Set(['vnc', 'spice']);
