// Shared inputs for the simulated platform's unit tests: a VM spec and buildQemuArgv's argv for it,
// and a firmware's OVMF table as the start-up checks are given it.
import type { VmSpec } from '../../../../src/config/vm-spec.js';
import { SIMULATED_HOST_CAPS } from '../../../../src/host/simulated.js';
import { buildQemuArgv } from '../../../../src/qemu/argv.js';
import { SEV_HASH_TABLE_RV_GUID, SEV_INFO_BLOCK_GUID, type Area, type OvmfTable } from '../../../../src/sev/ovmf-table.js';

export function simSpec(overrides: Partial<VmSpec> = {}): VmSpec {
  return {
    name: 'vm1',
    source: '/etc/sevsup/vms/vm1.conf',
    memory: 512,
    cores: 2,
    cpu: 'EPYC',
    bios: 'ovmf',
    firmware: { path: '/fw/OVMF,sev.fd' },
    kernel: '/boot/vmlinuz',
    initrd: '/boot/initrd.img',
    cmdline: 'console=ttyS0 panic=-1',
    disks: [],
    nets: [],
    attest: 'hold',
    autostart: false,
    serial: 'none',
    sev: { type: 'std', nodbg: true, noks: false, kernelHashes: true, key: 'amd_sev' },
    qmpAllow: [],
    qmpDeny: [],
    ...overrides,
  };
}

export const MONITOR = '/run/sevsup/vm1/private/monitor.sock';
export const PIDFILE = '/run/sevsup/vm1/qemu.pid';

export function simArgv(overrides: Partial<VmSpec> = {}): string[] {
  return [...buildQemuArgv({ spec: simSpec(overrides), caps: SIMULATED_HOST_CAPS, paths: { monitorSocket: MONITOR, pidFile: PIDFILE } })];
}

/** buildQemuArgv's argv for the same VM without SEV. */
export function plainArgv(): string[] {
  const { sev: _sev, ...spec } = simSpec();
  return [...buildQemuArgv({ spec, caps: SIMULATED_HOST_CAPS, paths: { monitorSocket: MONITOR, pidFile: PIDFILE } })];
}

/**
 * A firmware's OVMF table as sev/ovmf-table.ts reads it: a kernel-hashes area and a reset address
 * unless given (null: absent). An SEV firmware has a launch-secret area; an SNP one (`snp`) has SNP
 * metadata and no secret area.
 */
export function ovmfTable(o: { hashes?: Area | null; reset?: number | null; snp?: boolean } = {}): OvmfTable {
  const hashes = o.hashes === undefined ? { base: 0x80fc00, size: 0x400 } : o.hashes;
  const reset = o.reset === undefined ? 0x80b004 : o.reset;
  return {
    found: true,
    entries: [
      ...(hashes === null ? [] : [{ guid: SEV_HASH_TABLE_RV_GUID, name: null, offset: 0, length: 8 }]),
      ...(reset === null ? [] : [{ guid: SEV_INFO_BLOCK_GUID, name: null, offset: 8, length: 4 }]),
    ],
    badEntry: null,
    sevResetAddress: reset === 0 ? null : reset,
    sevInfoSource: reset === null ? null : 'table',
    sevInfoResetAddress: reset,
    hashesArea: hashes,
    secretArea: o.snp === true ? null : { base: 0x80f000, size: 0xc00 },
    snpMetadata: o.snp === true,
  };
}
