// The QEMU command line for one VM, from (VmSpec, HostCaps, paths): an argv array, never a shell
// string, always starting the guest paused (-S) under KVM alone.
// Pure: no fs, no spawning, no probing (vm/preflight.ts reads files first; the launcher spawns).
// Must not: fall back to TCG (with SEV that is an assert in 7.2 or a silent unencrypted guest:
// qemu-sev-facts §6/§10.1), add a writable firmware VARS store (NVRAM is not measured), or let a
// user string add an option: user strings go through escape.ts (JSON form, or doubled commas in
// QemuOpts options), or are options QEMU 7.2 takes verbatim (-bios, -kernel, -initrd, -append,
// -pidfile, -runas).
import type { VmSpec } from '../config/vm-spec.js';
import type { HostCaps } from '../host/host-caps.js';
import { SupervisorError } from '../errors.js';
import { diskArgs, netArgs, type ArgGroup, type BackingLayer } from './devices.js';
import { assertQemuSafe, formatJsonOption, formatQemuOpts, type ValueOrigin } from './escape.js';
import { FIRMWARE_OPTION, firmwarePath } from './firmware.js';
import { resolveSevParams, sevGuestObject, SEV_OBJECT_ID } from './sev.js';
import { SNP_MACHINE_PROPERTIES, snpGuestObject, snpLaunchParams, type SnpLaunchFiles } from './snp.js';

export type { ArgGroup, BackingLayer } from './devices.js';

export interface QemuPaths {
  /** QEMU's QMP socket; QEMU is the server (`server=on,wait=off`). */
  readonly monitorSocket: string;
  readonly pidFile?: string;
  /** When given, the guest's first serial port is written to this file. */
  readonly serialLog?: string;
}

export interface QemuArgvOptions {
  /** seccomp: deny obsolete syscalls, privilege changes, spawning and resource control. */
  readonly sandbox?: boolean;
  /** Drop to this user (name or uid:gid) after start-up. */
  readonly runAs?: string;
}

export interface QemuArgvInput {
  readonly spec: VmSpec;
  readonly caps: HostCaps;
  readonly paths: QemuPaths;
  readonly options?: QemuArgvOptions;
  /**
   * Each qcow2 disk's checked backing chain by disk index (vm/disk-chain.ts), first layer directly
   * below the disk. A qcow2 disk without an entry opens no backing file at all (`backing: null`).
   */
  readonly backingChains?: ReadonlyMap<number, readonly BackingLayer[]>;
  /** An SNP guest's ID block, ID auth and host data as preflight read them (vm/snp-preflight.ts). */
  readonly snp?: SnpLaunchFiles;
}

/** The machine type: q35 (PCIe, what OVMF AmdSev builds and libvirt's SEV tests use). */
export const MACHINE_TYPE = 'q35';
/** Leave guest RAM out of QEMU's core dumps (madvise MADV_DONTDUMP). */
export const NO_GUEST_CORE = 'dump-guest-core=off';
/** The chardev id of the private monitor; also what the launcher and docs refer to. */
export const MONITOR_CHARDEV_ID = 'monitor';
/** Linux sockaddr_un.sun_path holds 108 bytes including the terminating NUL. */
export const MAX_UNIX_SOCKET_PATH_BYTES = 107;
/** `-sandbox` as libvirt sets it: seccomp on, obsolete syscalls, setuid, fork/exec and setrlimit denied. */
export const SANDBOX_OPTION = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';
/**
 * `-sandbox` with `-runas`: QEMU applies seccomp before it drops to the user, so denying set*id
 * kills it with SIGSYS at the drop (checked on 7.2; `elevateprivileges=children` too). Once it
 * runs as the unprivileged user it cannot regain root by set*id, and `spawn=deny` still stops it
 * from exec'ing anything that could.
 */
export const SANDBOX_OPTION_RUNAS = 'on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny';

/** `-cpu` splits its value on single commas into model and features, so only plain names pass. */
const CPU_MODEL = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * The argv (without the binary) as option groups, e.g. `[['-name', 'guest=vm1,debug-threads=on'], ['-S'], …]`,
 * for printing one option per line. See buildQemuArgv.
 */
export function buildQemuCommandLine(input: QemuArgvInput): readonly ArgGroup[] {
  const { spec, caps, paths, options = {} } = input;
  const sev = resolveSevParams(spec, caps);
  const origin = (key: string): ValueOrigin => ({ file: spec.source, key });
  const groups: ArgGroup[] = [
    [
      '-name',
      formatQemuOpts(null, [
        ['guest', assertQemuSafe(spec.name, origin('name'))],
        ['debug-threads', 'on'],
      ]),
    ],
    ['-no-user-config'],
    ['-nodefaults'],
    ['-S'],
    ['-accel', 'kvm'],
    // dump-guest-core=off: a QEMU core dump (an abort, a crash) would otherwise hold guest RAM; the
    // launcher also sets a zero core limit (process/launcher.ts).
    ['-machine', [MACHINE_TYPE, NO_GUEST_CORE, ...machineSevProperties(sev)].join(',')],
  ];
  if (sev?.type === 'snp') {
    // The firmware is -bios (FIRMWARE_OPTION), the only way SNP can load it: copied into
    // guest_memfd RAM and measured at the first run (snp-facts §1.2); argv never has pflash.
    groups.push(['-object', formatJsonOption(snpGuestObject(snpLaunchParams(sev, input.snp)))]);
  } else if (sev !== null) {
    groups.push(['-object', formatJsonOption(sevGuestObject(sev, spec))]);
  }
  if (!CPU_MODEL.test(spec.cpu)) {
    throw new SupervisorError(
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${spec.source}: cpu: ${JSON.stringify(spec.cpu)} is not a QEMU CPU model name (letters, digits, '.', '_', '-'; ` +
        'no feature flags); run `qemu-system-x86_64 -cpu help` for the names',
      { details: { file: spec.source, key: 'cpu' } },
    );
  }
  groups.push(
    ['-cpu', spec.cpu],
    ['-m', String(positiveInteger(spec.memory, origin('memory')))],
    ['-smp', String(positiveInteger(spec.cores, origin('cores')))],
  );
  const firmware = firmwarePath(spec);
  if (firmware !== null) groups.push([FIRMWARE_OPTION, assertQemuSafe(firmware, origin('firmware'))]);
  if (spec.kernel !== undefined) groups.push(['-kernel', assertQemuSafe(spec.kernel, origin('kernel'))]);
  // Verbatim for a Linux bzImage; only a multiboot kernel would read -initrd as a comma list of
  // modules (QEMU's multiboot loader), and kernel-hashes measures the bzImage path alone.
  if (spec.initrd !== undefined) groups.push(['-initrd', assertQemuSafe(spec.initrd, origin('initrd'))]);
  if (spec.cmdline !== undefined) groups.push(['-append', assertQemuSafe(spec.cmdline, origin('cmdline'))]);
  for (const disk of spec.disks) groups.push(...diskArgs(disk, spec, sev !== null, input.backingChains?.get(disk.index)));
  for (const net of spec.nets) groups.push(...netArgs(net, spec, sev !== null));
  if (paths.serialLog !== undefined) {
    const log = assertQemuSafe(paths.serialLog, { file: 'run directory', key: 'serial log' });
    groups.push(
      [
        '-chardev',
        formatQemuOpts('file', [
          ['id', 'serial0'],
          ['path', log],
        ]),
      ],
      ['-device', formatJsonOption({ driver: 'isa-serial', chardev: 'serial0', id: 'serial0' })],
    );
  }
  groups.push(['-display', 'none']);
  const monitor = assertQemuSafe(paths.monitorSocket, { file: 'run directory', key: 'monitor socket' });
  const monitorBytes = Buffer.byteLength(monitor);
  if (monitorBytes > MAX_UNIX_SOCKET_PATH_BYTES) {
    throw new SupervisorError(
      'SUP_ERR_CONFIG_BAD_VALUE',
      `monitor socket path ${monitor} is ${monitorBytes} bytes, but a unix socket path may have at most ` +
        `${MAX_UNIX_SOCKET_PATH_BYTES}: use a shorter run directory or VM name`,
      { details: { key: 'run-dir', path: monitor } },
    );
  }
  groups.push(
    [
      '-chardev',
      formatQemuOpts('socket', [
        ['id', MONITOR_CHARDEV_ID],
        ['path', monitor],
        ['server', 'on'],
        ['wait', 'off'],
      ]),
    ],
    ['-mon', `chardev=${MONITOR_CHARDEV_ID},mode=control`],
  );
  if (paths.pidFile !== undefined) {
    groups.push(['-pidfile', assertQemuSafe(paths.pidFile, { file: 'run directory', key: 'pid file' })]);
  }
  if (options.sandbox === true) groups.push(['-sandbox', options.runAs === undefined ? SANDBOX_OPTION : SANDBOX_OPTION_RUNAS]);
  if (options.runAs !== undefined) {
    groups.push(['-runas', assertQemuSafe(options.runAs, { file: 'options', key: 'runas' })]);
  }
  return groups;
}

/**
 * The QEMU argv for `input.spec`, without the binary. Starts paused (-S) with only the private
 * monitor, under `-accel kvm` alone; with SEV, the `sev-guest` object linked from the machine;
 * with SEV-SNP, the `sev-snp-guest` object (QEMU >= 9.1: the caller checks the version) and smm=off.
 * @throws SUP_ERR_SEV_BIOS_NOT_OVMF, SUP_ERR_SEV_UNSUPPORTED, SUP_ERR_SEV_ES_UNSUPPORTED (the seed's
 *   checks, in its order), SUP_ERR_SEV_HOST_PARAMS (cbitpos/reduced-phys-bits unknown),
 *   SUP_ERR_CONFIG_BAD_VALUE (a value QEMU could not receive unchanged), SUP_ERR_SEV_SNP_UNSUPPORTED,
 *   SUP_ERR_INTERNAL (an SNP file preflight did not read).
 */
export function buildQemuArgv(input: QemuArgvInput): readonly string[] {
  return buildQemuCommandLine(input).flat();
}

/** The machine's link to the SEV object; SNP adds smm=off (QEMU 10: "SEV-SNP does not support SMM."). */
function machineSevProperties(sev: ReturnType<typeof resolveSevParams>): readonly string[] {
  if (sev === null) return [];
  return sev.type === 'snp' ? SNP_MACHINE_PROPERTIES : [`confidential-guest-support=${SEV_OBJECT_ID}`];
}

function positiveInteger(value: number, origin: ValueOrigin): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new SupervisorError('SUP_ERR_CONFIG_BAD_VALUE', `${origin.file}: ${origin.key}: ${value} is not a positive whole number`, {
      details: { file: origin.file, key: origin.key },
    });
  }
  return value;
}
