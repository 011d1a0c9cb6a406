// What the simulated platform needs to know from a QEMU argv: the sev-guest object and its machine
// link, the accelerators, the firmware, the direct-boot kernel, vCPUs, RAM, the QMP monitor socket.
// Owns: reading those out of buildQemuArgv's shape (and the common legacy spellings). Pure: no I/O.
// Must not: judge them (startup-checks.ts does) or rewrite them (argv-rewrite.ts does).
import { parseMemorySize, parseObjectOption, parseQemuOpts, qemuOptsToMap, splitQemuArgv, type QemuOption } from './qemu-opts.js';

/** The confidential-guest object types the simulated platform knows (QEMU 7.2's and QEMU 10's). */
export type SevObjectType = 'sev-guest' | 'sev-snp-guest';

export interface SevGuestObject {
  readonly qomType: SevObjectType;
  readonly id: string;
  readonly props: Readonly<Record<string, unknown>>;
  /** The option as given, for QEMU-style error locations (`-object …: …`). */
  readonly optionText: string;
  /** Given as JSON (`-object {…}`): QEMU's visitor words type errors differently than for keyval. */
  readonly json: boolean;
}

export interface AccelRequest {
  readonly name: string;
  /** QEMU prefixes init errors with the option's location only for `-accel` (facts §6). */
  readonly location: string | null;
}

export type FirmwareRef =
  | { readonly kind: 'pflash' | 'bios'; readonly path: string }
  | { readonly kind: 'unsupported'; readonly reason: string };

export interface MonitorRef {
  readonly kind: 'chardev' | 'qmp';
  readonly path: string;
  /** Chardev id for `-chardev` + `-mon`. */
  readonly chardevId: string | null;
  readonly server: boolean;
}

export interface QemuArgvModel {
  readonly options: readonly QemuOption[];
  readonly sevObjects: readonly SevGuestObject[];
  /** `-machine …,confidential-guest-support=ID` (or the legacy `memory-encryption=ID`). */
  readonly cgsId: string | null;
  readonly cgsKey: 'confidential-guest-support' | 'memory-encryption' | null;
  /** `-machine …,smm=…` as given (on/off/auto); null when absent. */
  readonly smm: string | null;
  /** In QEMU's try order; empty when none was asked for. */
  readonly accels: readonly AccelRequest[];
  readonly startPaused: boolean;
  readonly firmware: FirmwareRef | null;
  readonly kernel: string | null;
  readonly initrd: string | null;
  readonly append: string | null;
  readonly vcpus: number;
  readonly cpuModel: string | null;
  readonly memoryBytes: number;
  readonly monitor: MonitorRef | null;
  readonly pidfile: string | null;
  readonly onlyMigratable: boolean;
  readonly daemonize: boolean;
}

/** QEMU 7.2's default RAM size (-m absent). */
const DEFAULT_RAM_BYTES = 128 * 2 ** 20;

function optionValues(options: readonly QemuOption[], ...names: string[]): { option: QemuOption; value: string }[] {
  return options.filter((o) => names.includes(o.name) && o.value !== null).map((o) => ({ option: o, value: o.value as string }));
}

function lastValue(options: readonly QemuOption[], name: string): string | null {
  const all = optionValues(options, name);
  return all.length === 0 ? null : (all[all.length - 1] as { value: string }).value;
}

function findFirmware(options: readonly QemuOption[], machine: Map<string, string>): FirmwareRef | null {
  const pflash0 = machine.get('pflash0');
  if (pflash0 !== undefined) return resolveBlockdevFile(options, pflash0, 0);
  // -drive if=pflash / -pflash: units count up in order unless given.
  let unit = 0;
  for (const o of options) {
    if (o.value === null) continue;
    if (o.name === 'pflash') {
      if (unit === 0) return { kind: 'pflash', path: o.value };
      unit++;
    } else if (o.name === 'drive') {
      const props = qemuOptsToMap(o.value, 'file');
      if (props.get('if') !== 'pflash') continue;
      const thisUnit = props.has('unit') ? Number(props.get('unit')) : props.has('index') ? Number(props.get('index')) : unit;
      unit = thisUnit + 1;
      if (thisUnit !== 0) continue;
      const file = props.get('file');
      if (file === undefined) return { kind: 'unsupported', reason: 'pflash unit 0 has no file=' };
      const format = props.get('format');
      if (format !== undefined && format !== 'raw')
        return { kind: 'unsupported', reason: `pflash unit 0 has format=${format}; only raw images are measured here` };
      return { kind: 'pflash', path: file };
    }
  }
  const bios = lastValue(options, 'bios');
  return bios === null ? null : { kind: 'bios', path: bios };
}

/** Maximum blockdev reference depth followed (format → protocol is 2; more means a loop). */
const MAX_BLOCKDEV_DEPTH = 8;

/** Follow `-blockdev` node references from `nodeName` down to a `file` driver's filename. */
function resolveBlockdevFile(options: readonly QemuOption[], nodeName: string, depth: number): FirmwareRef {
  if (depth > MAX_BLOCKDEV_DEPTH) return { kind: 'unsupported', reason: `blockdev references of '${nodeName}' loop` };
  for (const { value } of optionValues(options, 'blockdev')) {
    const node = parseObjectOption(value, null);
    if (node === null || node['node-name'] !== nodeName) continue;
    return resolveBlockdevNode(options, node, depth);
  }
  return { kind: 'unsupported', reason: `no -blockdev with node-name '${nodeName}'` };
}

function resolveBlockdevNode(options: readonly QemuOption[], node: Record<string, unknown>, depth: number): FirmwareRef {
  const driver = node['driver'];
  if (driver === 'file' || driver === 'host_device') {
    const filename = node['filename'];
    return typeof filename === 'string'
      ? { kind: 'pflash', path: filename }
      : { kind: 'unsupported', reason: 'file blockdev without filename' };
  }
  if (driver === 'raw') {
    if (node['offset'] !== undefined || node['size'] !== undefined) {
      return { kind: 'unsupported', reason: 'raw blockdev with offset/size' };
    }
    const file = node['file'];
    if (typeof file === 'string') return resolveBlockdevFile(options, file, depth + 1);
    if (typeof file === 'object' && file !== null) return resolveBlockdevNode(options, file as Record<string, unknown>, depth + 1);
    return { kind: 'unsupported', reason: 'raw blockdev without file' };
  }
  return { kind: 'unsupported', reason: `firmware blockdev driver '${String(driver)}' (only file and raw are measured here)` };
}

function countVcpus(smp: string | null): number {
  if (smp === null) return 1;
  const props = qemuOptsToMap(smp, 'cpus');
  const cpus = props.get('cpus');
  if (cpus !== undefined) return Number(cpus);
  // QEMU 7.2 computes cpus from the topology when only that is given.
  let product = 1;
  for (const key of ['sockets', 'dies', 'clusters', 'cores', 'threads']) {
    const v = props.get(key);
    if (v !== undefined) product *= Number(v);
  }
  return product;
}

function findMonitor(options: readonly QemuOption[]): MonitorRef | null {
  for (const { value } of optionValues(options, 'mon')) {
    const mon = qemuOptsToMap(value, 'chardev');
    if (mon.get('mode') !== 'control') continue;
    const id = mon.get('chardev');
    for (const chardev of optionValues(options, 'chardev')) {
      const props = qemuOptsToMap(chardev.value, 'backend');
      if (props.get('id') !== id) continue;
      const path = props.get('path');
      if (props.get('backend') !== 'socket' || path === undefined) return null;
      const server = props.get('server');
      return { kind: 'chardev', path, chardevId: id ?? null, server: server === 'on' || server === 'yes' || server === 'true' };
    }
  }
  for (const { value } of optionValues(options, 'qmp')) {
    if (!value.startsWith('unix:')) continue;
    const parts = parseQemuOpts(value.slice('unix:'.length));
    const first = parts[0];
    if (first === undefined || first.key !== null) continue;
    const server = parts.find((p) => p.key === 'server');
    return { kind: 'qmp', path: first.value, chardevId: null, server: server !== undefined && server.value !== 'off' };
  }
  return null;
}

/** Read what the simulated platform needs out of QEMU's argv. */
export function readQemuArgv(argv: readonly string[]): QemuArgvModel {
  const options = splitQemuArgv(argv);
  // QEMU merges every -machine into one set of properties.
  const machine = new Map<string, string>();
  for (const { value } of optionValues(options, 'machine', 'M')) {
    for (const [k, v] of qemuOptsToMap(value, 'type')) machine.set(k, v);
  }
  const sevObjects: SevGuestObject[] = [];
  for (const { value } of optionValues(options, 'object')) {
    const props = parseObjectOption(value, 'qom-type');
    const qomType = props?.['qom-type'];
    if (props === null || (qomType !== 'sev-guest' && qomType !== 'sev-snp-guest')) continue;
    sevObjects.push({
      qomType,
      id: typeof props['id'] === 'string' ? props['id'] : '',
      props,
      optionText: `-object ${value}`,
      json: value.trimStart().startsWith('{'),
    });
  }
  const cgs = machine.get('confidential-guest-support');
  const legacy = machine.get('memory-encryption');
  const accels: AccelRequest[] = [];
  for (const o of options) {
    if (o.name === 'accel' && o.value !== null) {
      accels.push({ name: qemuOptsToMap(o.value, 'accel').get('accel') ?? '', location: `-accel ${o.value}` });
    } else if (o.name === 'enable-kvm') accels.push({ name: 'kvm', location: null });
  }
  const machineAccel = machine.get('accel');
  if (accels.length === 0 && machineAccel !== undefined) {
    for (const name of machineAccel.split(':')) accels.push({ name, location: null });
  }
  const mem = lastValue(options, 'm');
  const memSize = mem === null ? null : (qemuOptsToMap(mem, 'size').get('size') ?? null);
  return {
    options,
    sevObjects,
    cgsId: cgs ?? legacy ?? null,
    cgsKey: cgs !== undefined ? 'confidential-guest-support' : legacy !== undefined ? 'memory-encryption' : null,
    smm: machine.get('smm') ?? null,
    accels,
    startPaused: options.some((o) => o.name === 'S'),
    firmware: findFirmware(options, machine),
    kernel: lastValue(options, 'kernel'),
    initrd: lastValue(options, 'initrd'),
    append: lastValue(options, 'append'),
    vcpus: countVcpus(lastValue(options, 'smp')),
    cpuModel: lastValue(options, 'cpu'),
    memoryBytes: (memSize === null ? null : parseMemorySize(memSize)) ?? DEFAULT_RAM_BYTES,
    monitor: findMonitor(options),
    pidfile: lastValue(options, 'pidfile'),
    onlyMigratable: options.some((o) => o.name === 'only-migratable'),
    daemonize: options.some((o) => o.name === 'daemonize'),
  };
}

/** The sev-guest object the machine links to, if any (an unlinked one makes a plain VM, facts §2.3). */
export function linkedSevObject(model: QemuArgvModel): SevGuestObject | null {
  if (model.cgsId === null) return null;
  return model.sevObjects.find((o) => o.id === model.cgsId) ?? null;
}
