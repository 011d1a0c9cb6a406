// Shared inputs for the simulated platform's unit tests: a VM spec and buildQemuArgv's argv for it.
import type { VmSpec } from '../../../../src/config/vm-spec.js';
import { SIMULATED_HOST_CAPS } from '../../../../src/host/simulated.js';
import { buildQemuArgv } from '../../../../src/qemu/argv.js';

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
