// Where the demo finds what it runs: sevsup and the simulated platform in this checkout, the demo
// kernel, initrd and test firmware that scripts/setup.sh puts in .cache/test-assets/, and the system
// Python with libvirt's virt-qemu-sev-validate. Owns: these paths, defined once. Pure: no I/O.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const ASSETS = join(REPO, '.cache', 'test-assets');

export const DEMO_PATHS = {
  /** bin/sevsup: the demo drives the real command line. */
  sevsup: join(REPO, 'bin', 'sevsup'),
  /** The simulated SEV platform (QEMU's argv, real QEMU underneath). */
  sim: join(REPO, 'bin', 'sevsup-sim-qemu'),
  kernel: join(ASSETS, 'vmlinuz'),
  initrd: join(ASSETS, 'demo-initrd.img'),
  firmware: join(ASSETS, 'ovmf-sev-test.fd'),
  /** The SNP guest's firmware: Debian's OVMF.fd with SNP metadata and a KERNEL_HASHES section, made by setup. */
  snpFirmware: join(ASSETS, 'ovmf-snp-test.fd'),
  /** The simulated SNP platform's state directory (its SIMULATED chain), made by scripts/setup-test-assets.sh. */
  simState: join(ASSETS, 'sim-state'),
  /** libvirt's validator is a Python script; it runs under the system Python, not a venv's. */
  python: '/usr/bin/python3',
  /** The owner service's CA and server certificate are made with the openssl CLI. */
  openssl: '/usr/bin/openssl',
  validator: '/usr/bin/virt-qemu-sev-validate',
} as const;
