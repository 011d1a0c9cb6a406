// Test support: the SEV-SNP command-line scenarios, as config lines plus what preflight would have
// read (the ID block, ID auth and host data files). One list for the golden argv files
// (test/unit/qemu/argv.test.ts) and for QEMU 10 itself (integration/snp/qemu10-object.test.ts), so
// every object the golden files show is one the real QEMU 10 accepted.
import type { SnpLaunchFiles, SnpLaunchParams } from '../../src/qemu/snp.js';

export const FW = 'firmware: /usr/share/ovmf/OVMF.fd';
export const KERNEL = ['kernel: /srv/boot/vmlinuz', 'initrd: /srv/boot/initrd.img', 'cmdline: console=ttyS0 root=/dev/vda1'];
export const AMDSEV_FW = 'firmware: /srv/fw/OVMF.amdsev.fd';
export const ID_FILES = 'id-block=/srv/owner/vm1.idblock,id-auth=/srv/owner/vm1.idauth';

/** Base64 of `n` bytes of `fill`: the byte values preflight hands over for SNP guests. */
export const b64 = (n: number, fill: number): string => Buffer.alloc(n, fill).toString('base64');

/** The object parameters of a plain SNP guest (QEMU's default policy) that single-value tests vary. */
export const PLAIN_SNP_PARAMS: SnpLaunchParams = {
  policy: 0x30000n,
  cbitpos: 51,
  reducedPhysBits: 1,
  kernelHashes: false,
  authorKey: false,
  vcekDisabled: false,
};

export interface SnpScenario {
  readonly lines: readonly string[];
  readonly snp?: SnpLaunchFiles;
}

export const SNP_SCENARIOS: Readonly<Record<string, SnpScenario>> = {
  // `sev-snp-guest` (QEMU >= 9.1): Proxmox's default policy 0xb0000 (DEBUG set) unless no-debug=1.
  snp: { lines: ['amd-sev: type=snp', FW] },
  'snp-nodbg-kernel-hashes': { lines: ['amd-sev: type=snp,no-debug=1,kernel-hashes=1', AMDSEV_FW, ...KERNEL] },
  'snp-id-block-author-key': {
    lines: [`amd-sev: type=snp,no-debug=1,${ID_FILES},author-key=1`, FW],
    snp: { idBlock: b64(96, 1), idAuth: b64(4096, 2) },
  },
  'snp-host-data': {
    lines: ['amd_sev: type=snp,no-debug=1,host-data=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', FW],
    snp: { hostData: Buffer.from('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 'hex').toString('base64') },
  },
  'snp-host-data-file': {
    lines: ['amd_sev: type=snp,no-debug=1,host-data-file=/srv/owner/vm1.hostdata', FW],
    snp: { hostData: b64(32, 3) },
  },
  'snp-vcek0': { lines: ['amd-sev: type=snp,no-debug=1,vcek=0', FW] },
  'snp-workarounds': { lines: ['amd-sev: type=snp,no-debug=1,guest-visible-workarounds=000102030405060708090a0b0c0d0e0f', FW] },
  'snp-all-policy-bits': {
    lines: [
      'amd-sev: type=snp,allow-smt=1,no-debug=0,single-socket=1,cxl-allow=1,aes-256-xts=1,rapl-dis=1,ciphertext-hiding=1,' +
        'page-swap-disable=1,abi=1.55',
      FW,
    ],
  },
  'snp-no-smt-host-params': { lines: ['amd-sev: type=snp,no-debug=1,allow-smt=0,cbitpos=51,reduced-phys-bits=5', FW] },
  'snp-everything': {
    lines: [
      `amd-sev: type=snp,no-debug=1,kernel-hashes=1,${ID_FILES},author-key=1,host-data-file=/srv/owner/vm1.hostdata,vcek=0,` +
        'guest-visible-workarounds=AAECAwQFBgcICQoLDA0ODw==',
      AMDSEV_FW,
      ...KERNEL,
      'disk0: file=/srv/images/root.qcow2',
      'net0: type=user',
    ],
    snp: { idBlock: b64(96, 1), idAuth: b64(4096, 2), hostData: b64(32, 3) },
  },
};
