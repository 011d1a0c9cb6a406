// Classification data: every QEMU 7.2 command (qemu-sev-facts Appendix A) is in the table, each
// refused family holds the commands the fact sheet names, and the memory family can never be
// listed in a VM's qmp-allow. The real binary's list is checked in integration/proxy-classify/.
import { describe, expect, it } from 'vitest';
import { MONITOR_CHARDEV_ID } from '../../../src/qemu/argv.js';
import {
  MEMORY_FAMILY,
  SUPERVISOR_CHARDEV_IDS,
  QMP_COMMANDS,
  REALLOWABLE_REASONS,
  TRANSACTION_ACTIONS,
  classifyCommand,
  qomSetProblem,
  qmpAllowProblem,
  refusedDeviceDriver,
  refusedNetdevType,
  refusedObjectType,
  type RefusalReason,
} from '../../../src/policy/qmp-policy.js';

/** qemu-sev-facts.md Appendix A: `query-commands` of the real QEMU 7.2.22 (216 names). */
const APPENDIX_A = `
  add-fd add_client announce-self balloon block-commit block-dirty-bitmap-add
  block-dirty-bitmap-clear block-dirty-bitmap-disable block-dirty-bitmap-enable
  block-dirty-bitmap-merge block-dirty-bitmap-remove block-export-add block-export-del
  block-job-cancel block-job-complete block-job-dismiss block-job-finalize block-job-pause
  block-job-resume block-job-set-speed block-latency-histogram-set block-set-write-threshold
  block-stream block_resize block_set_io_throttle blockdev-add blockdev-backup
  blockdev-change-medium blockdev-close-tray blockdev-create blockdev-del blockdev-insert-medium
  blockdev-mirror blockdev-open-tray blockdev-remove-medium blockdev-reopen blockdev-snapshot
  blockdev-snapshot-delete-internal-sync blockdev-snapshot-internal-sync blockdev-snapshot-sync
  calc-dirty-rate cancel-vcpu-dirty-limit change-backing-file change-vnc-password chardev-add
  chardev-change chardev-remove chardev-send-break client_migrate_info closefd cont
  device-list-properties device_add device_del display-reload display-update drive-backup
  drive-mirror dump-guest-memory dumpdtb eject expire_password getfd human-monitor-command
  inject-nmi input-send-event job-cancel job-complete job-dismiss job-finalize job-pause job-resume
  memsave migrate migrate-continue migrate-incoming migrate-pause migrate-recover
  migrate-set-capabilities migrate-set-parameters migrate-start-postcopy migrate_cancel
  nbd-server-add nbd-server-remove nbd-server-start nbd-server-stop netdev_add netdev_del
  object-add object-del pmemsave qmp_capabilities qom-get qom-list qom-list-properties
  qom-list-types qom-set query-acpi-ospm-status query-balloon query-block query-block-exports
  query-block-jobs query-blockstats query-chardev query-chardev-backends query-colo-status
  query-command-line-options query-commands query-cpu-definitions query-cpu-model-expansion
  query-cpus-fast query-current-machine query-dirty-rate query-display-options query-dump
  query-dump-guest-memory-capability query-fdsets query-hotpluggable-cpus query-iothreads
  query-jobs query-kvm query-machines query-memdev query-memory-devices query-memory-size-summary
  query-mice query-migrate query-migrate-capabilities query-migrate-parameters query-name
  query-named-block-nodes query-pci query-pr-managers query-qmp-schema query-replay query-rocker
  query-rocker-of-dpa-flows query-rocker-of-dpa-groups query-rocker-ports query-rx-filter query-sev
  query-sev-attestation-report query-sev-capabilities query-sev-launch-measure query-sgx
  query-sgx-capabilities query-spice query-stats query-stats-schemas query-status query-target
  query-tpm query-tpm-models query-tpm-types query-uuid query-vcpu-dirty-limit query-version
  query-vm-generation-id query-vnc query-vnc-servers query-xen-replication-status query-yank quit
  remove-fd replay-break replay-delete-break replay-seek ringbuf-read ringbuf-write
  rtc-reset-reinjection screendump send-key set-action set-numa-node set-vcpu-dirty-limit set_link
  set_password sev-inject-launch-secret snapshot-delete snapshot-load snapshot-save stop
  system_powerdown system_reset system_wakeup trace-event-get-state trace-event-set-state
  transaction watchdog-set-action x-blockdev-amend x-blockdev-change x-blockdev-set-iothread
  x-colo-lost-heartbeat x-debug-block-dirty-bitmap-sha256 x-debug-query-block-graph
  x-exit-preconfig x-query-irq x-query-jit x-query-numa x-query-opcount x-query-profile
  x-query-ramblock x-query-rdma x-query-roms x-query-usb x-query-virtio
  x-query-virtio-queue-element x-query-virtio-queue-status x-query-virtio-status
  x-query-virtio-vhost-queue-status xen-colo-do-checkpoint xen-load-devices-state
  xen-save-devices-state xen-set-global-dirty-log xen-set-replication yank
`
  .split(/\s+/)
  .filter((n) => n !== '');

/** qemu-sev-facts §8: commands QEMU 10.x added that sevsup classifies too. */
const ADDITIONS_10 = ['query-migrationthreads', 'blockdev-set-active'];

const reasonOf = (name: string): RefusalReason | 'allowed' => {
  const cls = classifyCommand(name);
  return cls.verdict === 'allowed' ? 'allowed' : cls.reason;
};

describe('the command table', () => {
  it('knows all 216 commands of QEMU 7.2 and the 10.x additions, and nothing else', () => {
    expect(APPENDIX_A).toHaveLength(216);
    expect([...QMP_COMMANDS.keys()].sort()).toEqual([...APPENDIX_A, ...ADDITIONS_10].sort());
  });

  it('gives every entry a short reason', () => {
    for (const [name, cls] of QMP_COMMANDS) {
      expect(cls.why.length, name).toBeGreaterThan(10);
      expect(cls.why.length, name).toBeLessThan(200);
    }
  });

  it.each<[RefusalReason, string[]]>([
    [
      'migration',
      [
        'migrate',
        'migrate-incoming',
        'migrate-recover',
        'migrate-pause',
        'migrate-continue',
        'migrate-start-postcopy',
        'migrate_cancel',
        'migrate-set-capabilities',
        'migrate-set-parameters',
        'client_migrate_info',
      ],
    ],
    ['snapshot-vmstate', ['snapshot-save', 'snapshot-load', 'snapshot-delete', 'replay-seek']],
    ['memory-dump', ['dump-guest-memory', 'memsave', 'pmemsave']],
    ['guest-memory', ['x-query-ramblock', 'x-query-virtio-vhost-queue-status']],
    ['xen-save-load', ['xen-save-devices-state', 'xen-load-devices-state', 'xen-set-global-dirty-log']],
    ['colo', ['x-colo-lost-heartbeat', 'xen-colo-do-checkpoint', 'xen-set-replication']],
    ['launch-secret', ['sev-inject-launch-secret']],
    ['tracing', ['trace-event-set-state']],
    ['fd-passing', ['getfd', 'add-fd', 'closefd', 'remove-fd']],
    ['screen', ['screendump']],
    [
      'host-access',
      [
        'blockdev-add',
        'blockdev-create',
        'blockdev-reopen',
        'blockdev-change-medium',
        'blockdev-snapshot-sync',
        'change-backing-file',
        'drive-backup',
        'drive-mirror',
        'block-export-add',
        'nbd-server-add',
        'nbd-server-start',
        'chardev-add',
        'chardev-change',
        'netdev_add',
        'object-add',
        'dumpdtb',
      ],
    ],
    ['unstable', ['x-exit-preconfig', 'x-query-virtio-queue-element', 'x-blockdev-change', 'x-debug-query-block-graph']],
  ])('refuses the %s family', (reason, names) => {
    for (const name of names) expect(reasonOf(name), name).toBe(reason);
  });

  it('refuses every x- command unless it is in the memory family', () => {
    for (const [name, cls] of QMP_COMMANDS) {
      if (!name.startsWith('x-')) continue;
      expect(cls.verdict, name).toBe('refused');
      if (cls.verdict === 'refused' && cls.reason !== 'unstable') expect(MEMORY_FAMILY.has(cls.reason), name).toBe(true);
    }
  });

  it.each([
    // Read-only status of refused families, disk-only snapshots, disk exports, attestation evidence.
    'query-migrate',
    'query-dump',
    'query-colo-status',
    'blockdev-snapshot-internal-sync',
    'transaction',
    'nbd-server-stop',
    'block-export-del',
    'query-sev',
    'query-sev-launch-measure',
    'query-sev-attestation-report',
    'chardev-remove',
    'device_add',
    'object-del',
    'cont',
    'quit',
    'qmp_capabilities',
    'human-monitor-command',
  ])('allows %s (rules for arguments, HMP and hold apply in decide)', (name) => {
    expect(reasonOf(name)).toBe('allowed');
  });
});

describe('classifyCommand for names outside the table', () => {
  it.each<[string, RefusalReason]>([
    ['migrate-foo', 'migration'],
    ['x-migrate-cpr', 'migration'],
    ['MIGRATE', 'migration'],
    ['x-colo-new', 'colo'],
    ['colo_checkpoint', 'colo'],
    ['xen-event-inject', 'xen-save-load'],
    ['x-snapshot-save-v2', 'snapshot-vmstate'],
    ['savevm', 'snapshot-vmstate'],
    ['dump-guest-memory-v2', 'memory-dump'],
    ['x-query-ramblock2', 'memory-dump'],
    ['sev-snp-inject-launch-secret', 'launch-secret'],
    ['x-query-new', 'unstable'],
    ['query-accelerators', 'unknown'],
    ['query_status', 'unknown'],
    ['Query-Status', 'unknown'],
    ['human_monitor_command', 'unknown'],
    ['device-add', 'unknown'],
    ['', 'unknown'],
  ])('%j is refused as %s', (name, reason) => {
    expect(reasonOf(name)).toBe(reason);
  });
});

describe('re-allowable reasons', () => {
  it('keeps the memory family, launch secrets, HMP and the supervisor channel final', () => {
    for (const reason of MEMORY_FAMILY) expect(REALLOWABLE_REASONS.has(reason)).toBe(false);
    for (const reason of [
      'launch-secret',
      'hmp',
      'held',
      'supervisor-channel',
      'bad-message',
      'config-deny',
      'tracing',
      'fd-passing',
      'qom-property',
    ] as const) {
      expect(REALLOWABLE_REASONS.has(reason)).toBe(false);
    }
  });

  it.each<[string, boolean]>([
    ['migrate', false],
    ['dump-guest-memory', false],
    ['x-query-ramblock', false],
    ['x-colo-lost-heartbeat', false],
    ['snapshot-save', false],
    ['sev-inject-launch-secret', false],
    ['migrate-new-thing', false],
    ['x-exit-preconfig', true],
    ['screendump', true],
    ['query-accelerators', true],
    ['query-status', true],
  ])('qmp-allow may name %s: %s', (name, ok) => {
    const problem = qmpAllowProblem(name);
    expect(problem === null).toBe(ok);
    if (problem !== null) expect(problem).toContain('cannot be allowed');
  });
});

describe('argument rules', () => {
  it("protects the chardev id argv gives sevsup's own monitor", () => {
    expect(SUPERVISOR_CHARDEV_IDS.has(MONITOR_CHARDEV_ID)).toBe(true);
  });

  const rules = { driver: refusedDeviceDriver, 'qom-type': refusedObjectType, 'netdev type': refusedNetdevType };
  it.each<[keyof typeof rules, string, boolean]>([
    ['driver', 'pc-dimm', true],
    ['driver', 'nvdimm', true],
    ['driver', 'virtio-mem-pci', true],
    ['driver', 'virtio-mem', true],
    ['driver', 'virtio-pmem-pci', true],
    ['driver', 'sgx-epc', true],
    ['driver', 'loader', true],
    ['driver', 'vhost-user-fs-pci', true],
    ['driver', 'vhost-user-blk-pci', true],
    ['driver', 'ivshmem-plain', true],
    ['driver', 'ivshmem-doorbell', true],
    ['driver', 'vfio-pci', true],
    ['driver', 'VFIO-PCI', true],
    ['driver', 'vhost-vdpa-device-pci', true],
    ['driver', 'virtio-net-pci', false],
    ['driver', 'virtio-blk-pci', false],
    ['driver', 'e1000', false],
    ['driver', 'virtio-balloon-pci', false],
    ['driver', 'qemu-xhci', false],
    ['qom-type', 'memory-backend-file', true],
    ['qom-type', 'memory-backend-memfd', true],
    ['qom-type', 'memory-backend-ram', true],
    ['qom-type', 'memory-backend-epc', true],
    ['qom-type', 'vhost-user-backend', true],
    ['qom-type', 'cryptodev-vhost-user', true],
    ['qom-type', 'iothread', false],
    ['qom-type', 'secret', false],
    ['qom-type', 'rng-random', false],
    ['qom-type', 'tls-creds-x509', false],
    ['netdev type', 'vhost-user', true],
    ['netdev type', 'vhost-vdpa', true],
    ['netdev type', 'user', false],
    ['netdev type', 'tap', false],
    ['netdev type', 'stream', false],
  ])('%s %s refused: %s', (rule, value, refused) => {
    expect(rules[rule](value)).toBe(refused ? 'guest-memory' : null);
  });

  // Devices that open a host file, directory or device node with QEMU's privileges (issue 9 #11).
  it.each([
    'guest-loader',
    'usb-mtp',
    'usb-host',
    'USB-HOST',
    'u2f-passthru',
    'u2f-emulated',
    'ccid-card-emulated',
    'vhost-vsock-pci',
    'vhost-vsock-device',
    'vhost-vsock-pci-non-transitional',
    'vhost-vsock-ccw',
    'vhost-scsi',
    'vhost-scsi-pci',
    'vhost-scsi-pci-non-transitional',
    'pvrdma',
    'x-pci-proxy-dev',
  ])('driver %s is host-access', (driver) => {
    expect(refusedDeviceDriver(driver)).toBe('host-access');
  });

  it.each<[string, string, RefusalReason | null]>([
    ['/machine/peripheral/dev0', 'realized', 'qom-property'],
    ['dev0', 'REALIZED', 'qom-property'],
    ['/machine/peripheral/nic0', 'romfile', 'host-access'],
    ['/machine/peripheral/x', 'rootdir', 'host-access'],
    ['/objects/sev0', 'policy', 'qom-property'],
    ['/objects/sev0', 'handle', 'qom-property'],
    ['sev0', 'cbitpos', 'qom-property'],
    ['//objects///sev0', 'policy', 'qom-property'],
    ['/machine/confidential-guest-support', 'policy', 'qom-property'],
    ['/objects/pc.ram', 'dump', 'qom-property'],
    ['pc.ram', 'merge', 'qom-property'],
    ['/machine/peripheral/dimm0', 'memdev', 'qom-property'],
    ['/machine/peripheral/balloon0', 'guest-stats-polling-interval', null],
    ['/objects/iothread0', 'poll-max-ns', null],
  ])('qom-set %s %s → %s', (path, property, expected) => {
    expect(qomSetProblem(path, property)?.reason ?? null).toBe(expected);
  });

  it('every transaction action type but abort is a command in the table', () => {
    for (const type of TRANSACTION_ACTIONS) {
      if (type !== 'abort') expect(QMP_COMMANDS.has(type), type).toBe(true);
    }
  });

  it.each<[string, string | null]>([
    ['dump-guest-memory', 'memory-dump'],
    ['migrate', 'migration'],
    ['trace-event-set-state', 'tracing'],
    ['getfd', 'fd-passing'],
    ['add-fd', 'fd-passing'],
    ['sev-inject-launch-secret', 'launch-secret'],
    ['drive-backup', null],
    ['screendump', null],
    ['x-query-roms', null],
  ])('qmp-allow: %s → problem %s', (name, reason) => {
    const problem = qmpAllowProblem(name);
    if (reason === null) expect(problem).toBeNull();
    else expect(problem).toContain(`(${reason})`);
  });
});
