// decide(): every refused family through execute and exec-oob, the HMP reading, argument rules,
// the hold, qmp-allow/qmp-deny, message shapes; and properties: it never throws and never
// allows a refused-family command however the message is built.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  HMP_FAMILIES,
  HMP_INFO_ALLOWED,
  QMP_COMMANDS,
  PATH_VALUED_PROPERTIES,
  REALLOWABLE_REASONS,
  TRANSACTION_ACTIONS,
  type RefusalReason,
} from '../../../src/policy/qmp-policy.js';
import { HMP_COMMANDS_7_2, HMP_INFO_COMMANDS_7_2 } from '../../../src/qemu/hmp.js';
import { decide, type DecideContext, type Decision } from '../../../src/proxy/decide.js';
import { parseStrictJson } from '../../../src/util/strict-json.js';

const CTX: DecideContext = { vmState: 'running', held: false, sev: true, allow: [], deny: [] };
const MEMBERS = ['execute', 'exec-oob'] as const;

const ctx = (over: Partial<DecideContext> = {}): DecideContext => ({ ...CTX, ...over });
const msg = (member: string, name: unknown, args?: unknown): Record<string, unknown> =>
  args === undefined ? { [member]: name, id: 7 } : { [member]: name, arguments: args, id: 7 };
const hmp = (line: string, member = 'execute'): Record<string, unknown> => msg(member, 'human-monitor-command', { 'command-line': line });

function reasonOf(decision: Decision): RefusalReason | 'allowed' {
  return decision.allow ? 'allowed' : decision.reason;
}

const REFUSED_ROWS = [...QMP_COMMANDS].flatMap(([name, cls]) => (cls.verdict === 'refused' ? [[name, cls.reason] as const] : []));
const ALLOWED_NAMES = [...QMP_COMMANDS].flatMap(([name, cls]) => (cls.verdict === 'allowed' ? [name] : []));

describe('refused families, through execute and exec-oob', () => {
  it.each(MEMBERS.flatMap((member) => REFUSED_ROWS.map(([name, reason]) => [member, name, reason] as const)))(
    '%s %s → %s',
    (member, name, reason) => {
      const decision = decide(msg(member, name, {}), CTX);
      expect(decision).toMatchObject({ allow: false, command: name, reason, message: `${name} refused by sevsup: ${reason}` });
    },
  );

  it.each(MEMBERS)('%s of a command not in the table is refused as unknown', (member) => {
    expect(decide(msg(member, 'query-accelerators'), CTX)).toMatchObject({ allow: false, reason: 'unknown' });
    expect(decide(msg(member, 'Query-Status'), CTX)).toMatchObject({ allow: false, reason: 'unknown' });
    expect(decide(msg(member, 'query_status'), CTX)).toMatchObject({ allow: false, reason: 'unknown' });
  });
});

describe('allowed commands', () => {
  const SIMPLE = ALLOWED_NAMES.filter(
    (n) =>
      ![
        'device_add',
        'object-add',
        'netdev_add',
        'add_client',
        'yank',
        'chardev-change',
        'chardev-remove',
        'human-monitor-command',
        'transaction',
        'qom-set',
        'object-del',
      ].includes(n),
  );
  it.each(MEMBERS.flatMap((member) => SIMPLE.map((name) => [member, name] as const)))('%s %s passes', (member, name) => {
    expect(decide(msg(member, name, {}), CTX)).toMatchObject({ allow: true, command: name });
  });
});

describe('message shape', () => {
  it.each<[string, unknown, string]>([
    ['not an object', [{ execute: 'query-status' }], 'QMP input must be a JSON object'],
    ['null', null, 'QMP input must be a JSON object'],
    ['a string', 'query-status', 'QMP input must be a JSON object'],
    ['both members, harmless first', { execute: 'query-status', 'exec-oob': 'migrate' }, "'execute' clashes with 'exec-oob'"],
    ['both members, harmless second', { 'exec-oob': 'migrate-pause', execute: 'query-status' }, "'execute' clashes with 'exec-oob'"],
    ['neither member', { arguments: {}, id: 1 }, "lacks member 'execute'"],
    ['numeric name', { execute: 1 }, "'execute' must be a string"],
    ['array name', { 'exec-oob': ['migrate'] }, "'exec-oob' must be a string"],
    ['object name', { execute: { name: 'migrate' } }, "'execute' must be a string"],
    ['null name', { execute: null }, "'execute' must be a string"],
    ['unknown member', { execute: 'query-status', control: {} }, "member 'control' is unexpected"],
    [
      'own __proto__ member',
      parseStrictJson('{"execute":"query-status","__proto__":{"execute":"migrate"}}'),
      "member '__proto__' is unexpected",
    ],
  ])('%s is refused as bad-message', (_label, value, detail) => {
    const decision = decide(value, CTX);
    expect(decision).toMatchObject({
      allow: false,
      command: null,
      reason: 'bad-message',
      message: 'QMP input refused by sevsup: bad-message',
    });
    if (!decision.allow) expect(decision.detail).toContain(detail);
  });

  it.each<[unknown]>([[[]], ['x'], [1], [null]])('arguments %j is refused as bad-message', (args) => {
    expect(decide({ execute: 'query-status', arguments: args }, CTX)).toMatchObject({
      allow: false,
      command: 'query-status',
      reason: 'bad-message',
    });
  });

  it('shortens a huge command name in the message but keeps it whole in `command`', () => {
    const name = `x-${'a'.repeat(10_000)}`;
    const decision = decide({ execute: name }, CTX);
    expect(decision.allow).toBe(false);
    if (decision.allow) return;
    expect(decision.command).toBe(name);
    expect(decision.message).toBe(`${name.slice(0, 64)}… refused by sevsup: unstable`);
  });

  it('reads a unicode-escaped name as the command it spells', () => {
    const value = parseStrictJson('{"exe\\u0063ute":"\\u006digrate","arguments":{"uri":"exec:cat"}}');
    expect(decide(value, CTX)).toMatchObject({ allow: false, command: 'migrate', reason: 'migration' });
  });
});

describe('human-monitor-command', () => {
  it.each<[string, RefusalReason | 'allowed', string | null]>([
    ['info status', 'allowed', 'info'],
    ['info', 'allowed', 'info'],
    ['  info   status  ', 'allowed', 'info'],
    ['\tinfo\tstatus', 'allowed', 'info'],
    ['\v\finfo \r\nstatus', 'allowed', 'info'],
    ['info sev', 'allowed', 'info'],
    ['info block -v', 'allowed', 'info'],
    ['info migrate', 'allowed', 'info'],
    ['info mem', 'memory-dump', 'info'],
    ['info tlb', 'memory-dump', 'info'],
    ['info registers', 'memory-dump', 'info'],
    ['info lapic', 'memory-dump', 'info'],
    ['info pic', 'memory-dump', 'info'],
    ['info lapic -a', 'memory-dump', 'info'],
    ['trace-event qmp_enter_sev_inject_launch_secret on', 'tracing', 'trace-event'],
    ['trace-event * on', 'tracing', 'trace-event'],
    ['log all', 'tracing', 'log'],
    ['logfile /tmp/x', 'tracing', 'logfile'],
    ['trace-file on', 'tracing', 'trace-file'],
    ['  info  registers -a', 'memory-dump', 'info'],
    ['info ramblock', 'guest-memory', 'info'],
    ['info history', 'hmp', 'info'],
    ['info usbhost', 'hmp', 'info'],
    ['info virtio-queue-element /machine/x 0', 'hmp', 'info'],
    ['info STATUS', 'hmp', 'info'],
    ['info/status', 'hmp', 'info'],
    ['info \u00a0status', 'hmp', 'info'],
    ['info nosuch', 'hmp', 'info'],
    ['Info status', 'hmp', 'Info'],
    ['savevm t1', 'snapshot-vmstate', 'savevm'],
    ['\tsavevm t2', 'snapshot-vmstate', 'savevm'],
    ['  \t savevm', 'snapshot-vmstate', 'savevm'],
    ['loadvm t1', 'snapshot-vmstate', 'loadvm'],
    ['delvm t1', 'snapshot-vmstate', 'delvm'],
    ['SAVEVM t1', 'hmp', 'SAVEVM'],
    ['migrate -d tcp:1.2.3.4:4444', 'migration', 'migrate'],
    ['migrate_incoming tcp:0:4444', 'migration', 'migrate_incoming'],
    ['migrate-incoming tcp:0:4444', 'hmp', 'migrate-incoming'],
    ['migrate_set_capability x-colo on', 'migration', 'migrate_set_capability'],
    ['dump-guest-memory /tmp/core', 'memory-dump', 'dump-guest-memory'],
    ['memsave 0 4096 /tmp/m', 'memory-dump', 'memsave'],
    ['pmemsave 0 4096 /tmp/m', 'memory-dump', 'pmemsave'],
    ['x/10x 0', 'memory-dump', 'x'],
    ['xp /10x 0', 'memory-dump', 'xp'],
    ['sum 0 4096', 'memory-dump', 'sum'],
    ['gva2gpa 0', 'memory-dump', 'gva2gpa'],
    ['p $rax', 'memory-dump', 'print'],
    ['print/x $pc', 'memory-dump', 'print'],
    ['gdbserver tcp::1234', 'memory-dump', 'gdbserver'],
    ['gpa2hva 0', 'guest-memory', 'gpa2hva'],
    ['gpa2hpa 0', 'guest-memory', 'gpa2hpa'],
    ['x_colo_lost_heartbeat', 'colo', 'x_colo_lost_heartbeat'],
    ['c', 'hmp', 'cont'],
    ['cont', 'hmp', 'cont'],
    ['s', 'hmp', 'stop'],
    ['q', 'hmp', 'quit'],
    ['help', 'hmp', 'help'],
    ['? info', 'hmp', 'help'],
    ['system_reset', 'hmp', 'system_reset'],
    ['qemu-io drive0 "write 0 4k"', 'hmp', 'qemu-io'],
    ['', 'hmp', null],
    ['   ', 'hmp', null],
  ])('%j → %s', (line, expected, name) => {
    for (const member of MEMBERS) {
      const decision = decide(hmp(line, member), CTX);
      expect(reasonOf(decision)).toBe(expected);
      if (!decision.allow) {
        expect(decision.command).toBe('human-monitor-command');
        expect(decision.message).toBe(`human-monitor-command refused by sevsup: ${expected}`);
        if (decision.reason !== 'bad-message') expect(decision.hmp?.name).toBe(name);
      }
    }
  });

  it.each<[unknown]>([
    [undefined],
    [{}],
    [{ 'command-line': 1 }],
    [{ command_line: 'info status' }],
    [{ 'command-line': ['info status'] }],
  ])('arguments %j are refused as bad-message', (args) => {
    expect(reasonOf(decide(msg('execute', 'human-monitor-command', args), CTX))).toBe('bad-message');
  });

  it('lets qmp-deny remove even the read-only info commands', () => {
    expect(reasonOf(decide(hmp('info status'), ctx({ deny: ['human-monitor-command'] })))).toBe('config-deny');
  });

  it('never lets qmp-allow lift an HMP refusal', () => {
    const all = ctx({ allow: ['human-monitor-command', 'savevm', 'help', 'info registers', 'registers'] });
    expect(reasonOf(decide(hmp('savevm x'), all))).toBe('snapshot-vmstate');
    expect(reasonOf(decide(hmp('help'), all))).toBe('hmp');
    expect(reasonOf(decide(hmp('info registers'), all))).toBe('memory-dump');
  });
});

describe('argument rules', () => {
  it.each<[string, Record<string, unknown> | undefined, RefusalReason | 'allowed']>([
    ['device_add', { driver: 'virtio-net-pci', id: 'n1' }, 'allowed'],
    ['device_add', { driver: 'pc-dimm', id: 'd1', memdev: 'm1' }, 'guest-memory'],
    ['device_add', { driver: 'virtio-mem-pci', memdev: 'm1' }, 'guest-memory'],
    ['device_add', { driver: 'vhost-user-fs-pci', chardev: 'c' }, 'guest-memory'],
    ['device_add', { driver: 'ivshmem-plain', memdev: 'm' }, 'guest-memory'],
    ['device_add', { driver: 'vfio-pci', host: '0000:01:00.0' }, 'guest-memory'],
    ['device_add', { driver: 'loader', addr: 0, data: 1, 'data-len': 4 }, 'guest-memory'],
    ['device_add', { id: 'no-driver' }, 'bad-message'],
    ['device_add', { driver: 5 }, 'bad-message'],
    ['device_add', undefined, 'bad-message'],
    ['object-add', { 'qom-type': 'iothread', id: 'io1' }, 'allowed'],
    ['object-add', { 'qom-type': 'memory-backend-file', id: 'm1', 'mem-path': '/dev/shm/x', share: true, size: 1 }, 'guest-memory'],
    ['object-add', { 'qom-type': 'memory-backend-memfd', id: 'm1', size: 1 }, 'guest-memory'],
    ['object-add', { 'qom-type': 'memory-backend-ram', id: 'm1', size: 1 }, 'guest-memory'],
    ['object-add', { id: 'm1' }, 'bad-message'],
    ['device_add', { driver: 'virtio-net-pci', id: 'n1', romfile: '/etc/shadow' }, 'host-access'],
    ['device_add', { driver: 'virtio-net-pci', id: 'n1', romfile: '' }, 'allowed'],
    ['netdev_add', { type: 'user', id: 'n' }, 'allowed'],
    ['netdev_add', { type: 'vhost-user', id: 'n', chardev: 'c' }, 'guest-memory'],
    ['netdev_add', { type: 'vhost-vdpa', id: 'n' }, 'guest-memory'],
    ['add_client', { protocol: 'vnc', fdname: 'f' }, 'allowed'],
    ['add_client', { protocol: 'spice', fdname: 'f' }, 'allowed'],
    ['add_client', { protocol: 'monitor', fdname: 'f' }, 'supervisor-channel'],
    ['add_client', { protocol: '@dbus-display', fdname: 'f' }, 'supervisor-channel'],
    ['chardev-remove', { id: 'serial0' }, 'allowed'],
    ['chardev-remove', { id: 'monitor' }, 'supervisor-channel'],
    ['chardev-change', { id: 'monitor', backend: { type: 'null', data: {} } }, 'supervisor-channel'],
    ['yank', { instances: [{ type: 'block-node', 'node-name': 'n' }] }, 'allowed'],
    ['yank', { instances: [{ type: 'chardev', id: 'serial0' }] }, 'allowed'],
    ['yank', { instances: [{ type: 'migration' }, { type: 'chardev', id: 'monitor' }] }, 'supervisor-channel'],
    ['yank', { instances: 'monitor' }, 'bad-message'],
    ['yank', { instances: [1] }, 'bad-message'],
  ])('%s %j → %s', (name, args, expected) => {
    // host-access commands reach their argument rules only once the VM's qmp-allow lifts them.
    const context = ctx({ allow: [name] });
    for (const member of MEMBERS) expect(reasonOf(decide(msg(member, name, args), context))).toBe(expected);
  });

  it('refuses host-access commands unless qmp-allow names them, and qmp-deny still wins', () => {
    expect(reasonOf(decide(msg('execute', 'chardev-add', { id: 'c', backend: { type: 'file', data: { out: '/etc/x' } } }), CTX))).toBe(
      'host-access',
    );
    expect(reasonOf(decide(msg('execute', 'netdev_add', { type: 'tap', id: 'n', script: '/tmp/x' }), CTX))).toBe('host-access');
    expect(reasonOf(decide(msg('execute', 'dumpdtb', { filename: '/etc/passwd' }), ctx({ deny: ['dumpdtb'] })))).toBe('config-deny');
    expect(
      reasonOf(
        decide(msg('execute', 'blockdev-add', { driver: 'file', 'node-name': 'f', filename: '/x' }), ctx({ allow: ['blockdev-add'] })),
      ),
    ).toBe('allowed');
  });

  it('applies the rules even when qmp-allow names the command', () => {
    const allowAll = ctx({ allow: ['device_add', 'object-add', 'pc-dimm', 'memory-backend-file'] });
    expect(reasonOf(decide(msg('execute', 'device_add', { driver: 'pc-dimm' }), allowAll))).toBe('guest-memory');
    expect(reasonOf(decide(msg('execute', 'object-add', { 'qom-type': 'memory-backend-file', id: 'm' }), allowAll))).toBe('guest-memory');
  });
});

// --- issue 9: host paths, tracing, fd passing, qom-set, transaction ----------------------------

/** A transaction of one action. */
const tx = (type: string, data?: unknown): Record<string, unknown> =>
  msg('execute', 'transaction', { actions: [data === undefined ? { type } : { type, data }] });

describe('host paths, tracing, fd passing and qom-set (issue 9)', () => {
  it.each<[string, Record<string, unknown> | undefined, RefusalReason | 'allowed']>([
    ['block-stream', { device: 'disk0', 'backing-file': '/etc/shadow' }, 'host-access'],
    ['block-stream', { device: 'disk0', 'backing-file': '' }, 'host-access'],
    ['block-stream', { device: 'disk0' }, 'allowed'],
    ['block-commit', { device: 'disk0', 'backing-file': '/etc/shadow' }, 'host-access'],
    ['block-commit', { device: 'disk0', top: 'x' }, 'allowed'],
    ['display-update', { type: 'vnc', addresses: [{ type: 'unix', path: '/etc/x.sock' }] }, 'host-access'],
    ['display-update', { type: 'vnc', addresses: [{ type: 'inet', host: '0.0.0.0', port: '5901' }] }, 'host-access'],
    ['display-update', { type: 'vnc' }, 'allowed'],
    ['trace-event-set-state', { name: 'qmp_enter_sev_inject_launch_secret', enable: true }, 'tracing'],
    ['trace-event-set-state', { name: '*', enable: true }, 'tracing'],
    ['trace-event-get-state', { name: '*' }, 'allowed'],
    ['getfd', { fdname: 'x' }, 'fd-passing'],
    ['add-fd', {}, 'fd-passing'],
    ['closefd', { fdname: 'x' }, 'fd-passing'],
    ['remove-fd', { fdset_id: 0 }, 'fd-passing'],
    ['qom-set', { path: '/machine/peripheral/nic0', property: 'realized', value: false }, 'qom-property'],
    ['qom-set', { path: '/machine/peripheral/nic0', property: 'romfile', value: '/etc/shadow' }, 'host-access'],
    ['qom-set', { path: '/objects/sev0', property: 'policy', value: 0 }, 'qom-property'],
    ['qom-set', { path: 'sev0', property: 'handle', value: 1 }, 'qom-property'],
    ['qom-set', { path: '/machine/confidential-guest-support', property: 'policy', value: 0 }, 'qom-property'],
    ['qom-set', { path: '/objects/pc.ram', property: 'dump', value: true }, 'qom-property'],
    ['qom-set', { path: '/machine/peripheral/balloon0', property: 'guest-stats-polling-interval', value: 2 }, 'allowed'],
    ['qom-set', { path: '/machine/peripheral/nic0' }, 'bad-message'],
    ['object-del', { id: 'sev0' }, 'qom-property'],
    ['object-del', { id: 'pc.ram' }, 'qom-property'],
    ['object-del', { id: 'iothread0' }, 'allowed'],
    ['object-del', {}, 'bad-message'],
    ['device_add', { driver: 'guest-loader', kernel: '/etc/shadow', addr: 0 }, 'host-access'],
    ['device_add', { driver: 'usb-mtp', rootdir: '/' }, 'host-access'],
    ['device_add', { driver: 'usb-host', hostbus: 1, hostaddr: 2 }, 'host-access'],
    ['device_add', { driver: 'u2f-passthru', hidraw: '/dev/hidraw0' }, 'host-access'],
    ['device_add', { driver: 'vhost-vsock-pci', 'guest-cid': 3 }, 'host-access'],
    ['device_add', { driver: 'vhost-scsi-pci', wwpn: 'naa.1' }, 'host-access'],
    ['device_add', { driver: 'e1000', romfile: '/etc/shadow' }, 'host-access'],
    ['device_add', { driver: 'e1000', romfile: '' }, 'allowed'],
    ['device_add', { driver: 'virtio-net-pci', vhostfd: '3' }, 'host-access'],
  ])('%s %j → %s', (name, args, expected) => {
    expect(reasonOf(decide(msg('execute', name, args), CTX))).toBe(expected);
  });

  it("a VM's qmp-allow cannot lift tracing, fd passing or a qom-set rule", () => {
    const lifting = ctx({ allow: ['trace-event-set-state', 'getfd', 'qom-set', 'block-stream'] });
    expect(reasonOf(decide(msg('execute', 'trace-event-set-state', { name: '*', enable: true }), lifting))).toBe('tracing');
    expect(reasonOf(decide(msg('execute', 'getfd', { fdname: 'x' }), lifting))).toBe('fd-passing');
    expect(reasonOf(decide(msg('execute', 'qom-set', { path: 'sev0', property: 'policy', value: 0 }), lifting))).toBe('qom-property');
    expect(reasonOf(decide(msg('execute', 'block-stream', { device: 'd', 'backing-file': '/x' }), lifting))).toBe('host-access');
  });
});

describe('properties of the issue 9 argument rules', () => {
  const segment = fc.stringMatching(/^[a-z0-9.[\]-]{1,12}$/);
  it('refuses qom-set on any path with a guarded component, however the path is spelled', () => {
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 3 }),
        fc.constantFrom('sev0', 'SEV0', 'confidential-guest-support', 'pc.ram', 'memdev', 'memory-backend-ram'),
        fc.array(segment, { maxLength: 2 }),
        fc.constantFrom('', '/', '//'),
        fc.string({ maxLength: 12 }),
        ctxArb(fc.constantFrom('qom-set')),
        (before, guarded, after, lead, property, context) => {
          const path = lead + [...before, guarded, ...after].join(lead === '' ? '/' : lead);
          expect(decide(msg('execute', 'qom-set', { path, property, value: 0 }), context).allow).toBe(false);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('refuses device_add with any non-empty path-valued property, whatever the driver', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...PATH_VALUED_PROPERTIES),
        fc.oneof(fc.string({ minLength: 1 }), fc.integer(), fc.boolean()),
        fc.constantFrom('e1000', 'virtio-net-pci', 'virtio-blk-pci', 'qemu-xhci', 'isa-serial'),
        ctxArb(fc.constantFrom('device_add')),
        (property, value, driver, context) => {
          const decision = decide(msg('execute', 'device_add', { driver, id: 'd', [property]: value }), context);
          expect(decision.allow).toBe(false);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('transaction: each action gets the verdict of its command sent alone', () => {
  it.each<[string, unknown, RefusalReason | 'allowed']>([
    ['drive-backup', { device: 'disk0', target: '/var/lib/other/measurement.json', sync: 'full', mode: 'existing' }, 'host-access'],
    ['blockdev-snapshot-sync', { device: 'disk0', 'snapshot-file': '/srv/other.qcow2', mode: 'existing' }, 'host-access'],
    ['blockdev-snapshot', { node: 'disk0', overlay: 'ov' }, 'allowed'],
    ['blockdev-snapshot-internal-sync', { device: 'disk0', name: 's1' }, 'allowed'],
    ['blockdev-backup', { device: 'disk0', target: 'disk1', sync: 'full' }, 'allowed'],
    ['block-dirty-bitmap-add', { node: 'disk0', name: 'b' }, 'allowed'],
    ['abort', {}, 'allowed'],
    ['abort', undefined, 'allowed'],
    ['transaction', { actions: [] }, 'unknown'],
    ['migrate', { uri: 'exec:cat' }, 'unknown'],
    ['x-block-dirty-bitmap-enable', { node: 'd', name: 'b' }, 'unknown'],
    ['drive-backup', 'not-an-object', 'bad-message'],
  ])('action %s %j → %s', (type, data, expected) => {
    expect(reasonOf(decide(tx(type, data), CTX))).toBe(expected);
  });

  it.each<[unknown, RefusalReason | 'allowed']>([
    [undefined, 'bad-message'],
    [{}, 'bad-message'],
    [{ actions: 'x' }, 'bad-message'],
    [{ actions: [5] }, 'bad-message'],
    [{ actions: [{ data: {} }] }, 'bad-message'],
    [{ actions: [] }, 'allowed'],
  ])('transaction arguments %j → %s', (args, expected) => {
    expect(reasonOf(decide(msg('execute', 'transaction', args), CTX))).toBe(expected);
  });

  it('refuses the whole transaction when any action is refused, naming it', () => {
    const decision = decide(
      msg('execute', 'transaction', {
        actions: [
          { type: 'block-dirty-bitmap-add', data: { node: 'disk0', name: 'b' } },
          { type: 'drive-backup', data: { device: 'disk0', target: '/tmp/x', sync: 'full' } },
        ],
      }),
      CTX,
    );
    expect(decision).toMatchObject({
      allow: false,
      command: 'transaction',
      reason: 'host-access',
      message: 'transaction refused by sevsup: host-access',
    });
    expect(!decision.allow && decision.detail).toContain('action 1 (drive-backup)');
  });

  it("follows the VM's qmp-allow and qmp-deny exactly as for the command alone", () => {
    const data = { device: 'disk0', target: '/tmp/x', sync: 'full' };
    expect(reasonOf(decide(tx('drive-backup', data), ctx({ allow: ['drive-backup'] })))).toBe('allowed');
    expect(reasonOf(decide(tx('blockdev-snapshot', { node: 'a', overlay: 'b' }), ctx({ deny: ['blockdev-snapshot'] })))).toBe(
      'config-deny',
    );
  });

  it('property: an action is allowed exactly when its command alone is (any context, any data)', () => {
    const types = [...TRANSACTION_ACTIONS].filter((t) => t !== 'abort');
    fc.assert(
      fc.property(
        fc.constantFrom(...types),
        fc.dictionary(fc.constantFrom('device', 'node', 'target', 'snapshot-file', 'mode', 'name', 'overlay', 'sync'), fc.jsonValue()),
        ctxArb(fc.constantFrom(...types)),
        (type, data, context) => {
          const alone = decide(msg('execute', type, data), context);
          const inside = decide(tx(type, data), context);
          expect(inside.allow).toBe(alone.allow);
          if (!alone.allow && !inside.allow) expect(inside.reason).toBe(alone.reason);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('hold and VM config', () => {
  it.each(MEMBERS)('refuses %s cont while held, allows it otherwise', (member) => {
    expect(decide(msg(member, 'cont'), ctx({ held: true }))).toMatchObject({
      allow: false,
      reason: 'held',
      message: 'cont refused by sevsup: held',
    });
    expect(decide(msg(member, 'cont'), ctx({ held: true, allow: ['cont'] }))).toMatchObject({ allow: false, reason: 'held' });
    expect(decide(msg(member, 'cont'), ctx({ held: false }))).toMatchObject({ allow: true });
    expect(decide(msg(member, 'stop'), ctx({ held: true }))).toMatchObject({ allow: true });
    expect(decide(msg(member, 'query-sev-launch-measure'), ctx({ held: true }))).toMatchObject({ allow: true });
  });

  it.each<[string, Partial<DecideContext>, RefusalReason | 'allowed']>([
    ['query-status', { deny: ['query-status'] }, 'config-deny'],
    ['system_reset', { deny: ['system_reset', 'quit'] }, 'config-deny'],
    ['system_reset', { deny: ['system-reset'] }, 'allowed'],
    ['x-query-jit', {}, 'unstable'],
    ['x-query-jit', { allow: ['x-query-jit'] }, 'allowed'],
    ['x-query-jit', { allow: ['x-query-JIT'] }, 'unstable'],
    ['x-query-jit', { allow: ['x-query-jit'], deny: ['x-query-jit'] }, 'config-deny'],
    ['x-brand-new', { allow: ['x-brand-new'] }, 'allowed'],
    ['screendump', {}, 'screen'],
    ['screendump', { allow: ['screendump'] }, 'allowed'],
    ['query-accelerators', { allow: ['query-accelerators'] }, 'allowed'],
    ['migrate', { allow: ['migrate'] }, 'migration'],
    ['migrate', { deny: ['migrate'] }, 'migration'],
    ['dump-guest-memory', { allow: ['dump-guest-memory'] }, 'memory-dump'],
    ['x-query-ramblock', { allow: ['x-query-ramblock'] }, 'guest-memory'],
    ['x-colo-lost-heartbeat', { allow: ['x-colo-lost-heartbeat'] }, 'colo'],
    ['snapshot-save', { allow: ['snapshot-save'] }, 'snapshot-vmstate'],
    ['xen-save-devices-state', { allow: ['xen-save-devices-state'] }, 'xen-save-load'],
    ['sev-inject-launch-secret', { allow: ['sev-inject-launch-secret'] }, 'launch-secret'],
    ['migrate-brand-new', { allow: ['migrate-brand-new'] }, 'migration'],
  ])('%s with %j → %s', (name, over, expected) => {
    expect(reasonOf(decide(msg('execute', name), ctx(over)))).toBe(expected);
  });

  it('does not loosen anything for a VM without SEV', () => {
    for (const [name, reason] of REFUSED_ROWS) expect(reasonOf(decide(msg('execute', name), ctx({ sev: false })))).toBe(reason);
  });
});

// --- properties -------------------------------------------------------------------------------

const RUNS = 3000;
const HARD_NAMES = REFUSED_ROWS.filter(([, reason]) => !REALLOWABLE_REASONS.has(reason)).map(([name]) => name);
const SOFT_NAMES = REFUSED_ROWS.filter(([, reason]) => REALLOWABLE_REASONS.has(reason)).map(([name]) => name);
const PATTERN_NAMES = ['migrate-next', 'x-colo-next', 'xen-next', 'snapshot-save-next', 'dump-next', 'sev-inject-launch-secret-v2'];
const HMP_SPACES = [' ', '\t', '\n', '\v', '\f', '\r'];

const ctxArb = (names: fc.Arbitrary<string>): fc.Arbitrary<DecideContext> =>
  fc.record({
    vmState: fc.constantFrom('running', 'held', 'paused', 'failed'),
    held: fc.boolean(),
    sev: fc.boolean(),
    allow: fc.array(fc.oneof(names, fc.string()), { maxLength: 4 }),
    deny: fc.array(fc.oneof(names, fc.string()), { maxLength: 2 }),
  });

/** A message naming `name` in any way QMP lets it be named, with noise around it. */
const messageFor = (name: fc.Arbitrary<string>): fc.Arbitrary<Record<string, unknown>> =>
  fc
    .record({
      member: fc.constantFrom('execute', 'exec-oob'),
      name,
      args: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }), { nil: undefined }),
      id: fc.option(fc.jsonValue({ maxDepth: 1 }), { nil: undefined }),
      extra: fc.option(fc.constantFrom('execute', 'exec-oob', 'control', '__proto__'), { nil: undefined }),
    })
    .map(({ member, name: n, args, id, extra }) => {
      const out: Record<string, unknown> = {};
      if (extra !== undefined)
        Object.defineProperty(out, extra, { value: 'query-status', enumerable: true, writable: true, configurable: true });
      out[member] = n;
      if (args !== undefined) out['arguments'] = args;
      if (id !== undefined) out['id'] = id;
      return out;
    });

const ws = fc.array(fc.constantFrom(...HMP_SPACES), { maxLength: 3 }).map((a) => a.join(''));

describe('properties', () => {
  it('never throws, whatever the value and context', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.anything(), messageFor(fc.constantFrom(...QMP_COMMANDS.keys()))),
        ctxArb(fc.string()),
        (value, context) => {
          const decision = decide(value, context);
          expect(typeof decision.allow).toBe('boolean');
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('never allows a memory-family, launch-secret or pattern-matched command, whatever the config', () => {
    fc.assert(
      fc.property(messageFor(fc.constantFrom(...HARD_NAMES, ...PATTERN_NAMES)), fc.nat(), (message, seed) => {
        const name = (message['execute'] ?? message['exec-oob']) as string;
        const decision = decide(message, ctx({ allow: [name, `${name}x`], held: seed % 2 === 0 }));
        expect(decision.allow).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('allows a re-allowable command only when qmp-allow names it and qmp-deny does not', () => {
    fc.assert(
      fc.property(messageFor(fc.constantFrom(...SOFT_NAMES)), ctxArb(fc.constantFrom(...SOFT_NAMES)), (message, context) => {
        const decision = decide(message, context);
        if (!decision.allow) return;
        expect(context.allow).toContain(decision.command);
        expect(context.deny).not.toContain(decision.command);
      }),
      { numRuns: RUNS },
    );
  });

  it('never allows an HMP command of a refused family, however it is spaced or aliased', () => {
    const familyNames = HMP_COMMANDS_7_2.flatMap((entry) => {
      const names = entry.split('|');
      const canonical = names.reduce((a, b) => (b.length > a.length ? b : a));
      return HMP_FAMILIES.has(canonical) ? names : [];
    });
    fc.assert(
      fc.property(
        ws,
        fc.constantFrom(...familyNames),
        fc.constantFrom('', ' ', '\t', '/'),
        fc.string({ maxLength: 12 }),
        ctxArb(fc.constantFrom('human-monitor-command', ...familyNames)),
        (lead, name, sep, rest, context) => {
          const decision = decide(hmp(`${lead}${name}${sep}${sep === '' ? '' : rest}`), context);
          expect(decision.allow).toBe(false);
          if (!decision.allow && decision.reason !== 'config-deny') expect(REALLOWABLE_REASONS.has(decision.reason)).toBe(false);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('allows an HMP line only when it is `info` alone or an allowed info sub-command', () => {
    const subs = [...HMP_INFO_COMMANDS_7_2, 'STATUS', 'nosuch'];
    const allowedLine = new RegExp(
      `^[ \\t\\n\\v\\f\\r]*info([ \\t\\n\\v\\f\\r]+(${[...HMP_INFO_ALLOWED].join('|')})([ \\t\\n\\v\\f\\r/][^]*)?)?[ \\t\\n\\v\\f\\r]*$`,
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc
            .tuple(ws, fc.constantFrom('info', 'Info', 'info/', 'c', 'savevm'), ws, fc.constantFrom(...subs), fc.string({ maxLength: 6 }))
            .map((p) => p.join('')),
          fc.string({ maxLength: 20 }),
        ),
        (line) => {
          const decision = decide(hmp(line), CTX);
          if (decision.allow) expect(line).toMatch(allowedLine);
        },
      ),
      { numRuns: RUNS },
    );
  });
});
