// SEV-SNP on the simulated platform: the argv QEMU 10 takes for a sev-snp-guest (written by hand
// here until the argv builder emits it), test firmware with SNP metadata (scripts/make-test-firmware.mjs
// over Debian's OVMF.fd), and ID blocks signed with fresh keys.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { computeSnpExpectedDigest } from '../../src/attestation/snp-inputs.js';
import { parseOvmfTable } from '../../src/sev/ovmf-table.js';
import { buildIdAuth, buildIdBlock } from '../../src/sev/snp-id-block.js';
import { parseSnpMetadata } from '../../src/sev/snp-metadata.js';
import { ASSETS, CMDLINE, DEBIAN_OVMF, KERNEL, REPO, SIM, type Paths } from './harness.js';

/** Debian's OVMF.fd with a hashes area and SNP metadata (`kernel-hashes`: with a KERNEL_HASHES page). */
export function makeSnpFirmware(dir: string, preset: 'kernel-hashes' | 'debian' = 'kernel-hashes'): string {
  const out = join(dir, `snp-${preset}.fd`);
  const args = [join(REPO, 'scripts', 'make-test-firmware.mjs'), DEBIAN_OVMF, out, ...(preset === 'debian' ? [] : ['--snp', preset])];
  execFileSync(process.execPath, args, { stdio: 'ignore' });
  return out;
}

/** A copy of `firmware` whose `ASEV` header signature is broken: QEMU 10 then finds no metadata. */
export function withoutSnpMetadata(firmware: string, out: string): string {
  const bytes = readFileSync(firmware);
  const md = parseSnpMetadata(bytes, parseOvmfTable(bytes));
  if (md.status !== 'found') throw new Error(`${firmware} has no SNP metadata`);
  bytes.write('XSEV', md.offset, 'latin1');
  writeFileSync(out, bytes);
  return out;
}

export interface SnpArgvOptions {
  readonly firmware: string;
  /** Extra sev-snp-guest properties, keyval (`policy=0x30000,host-data=…`). */
  readonly object?: string;
  /** The whole -object value instead (e.g. JSON). */
  readonly objectText?: string;
  readonly machine?: string;
  readonly kernel?: boolean;
  readonly vcpus?: number;
  readonly paused?: boolean;
}

/** QEMU 10's command line for an SNP guest, as libvirt and Proxmox write it (-bios, smm=off). */
export function snpArgv(p: Paths, o: SnpArgvOptions): string[] {
  const kernel = o.kernel ?? true;
  return [
    ...(o.paused === false ? [] : ['-S']),
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
    '-machine',
    o.machine ?? 'q35,confidential-guest-support=sev0,smm=off',
    '-accel',
    'kvm',
    '-cpu',
    'EPYC',
    '-smp',
    String(o.vcpus ?? 1),
    '-m',
    '256',
    '-bios',
    o.firmware,
    ...(kernel ? ['-kernel', KERNEL, '-append', CMDLINE] : []),
    '-object',
    o.objectText ??
      `sev-snp-guest,id=sev0,cbitpos=47,reduced-phys-bits=1${kernel ? ',kernel-hashes=on' : ''}${o.object === undefined ? '' : `,${o.object}`}`,
    '-chardev',
    `socket,id=mon,path=${p.monitor},server=on,wait=off`,
    '-mon',
    'chardev=mon,mode=control',
    '-pidfile',
    p.pidfile,
  ];
}

/** The launch digest an owner expects for `snpArgv(…, {firmware, kernel: true, vcpus})`. */
export async function expectedDigest(firmware: string, vcpus = 1, o: { cmdline?: string } = {}): Promise<Buffer> {
  const r = await computeSnpExpectedDigest({
    firmware,
    kernel: KERNEL,
    cmdline: o.cmdline ?? CMDLINE,
    vcpus,
    vcpuSignature: 0x800f12, // EPYC: family 23, model 1, stepping 2
    guestFeatures: 0x1n,
    vmmType: 'QEMU',
  });
  return r.digest;
}

export const p384 = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;

/** `id-block=…,id-auth=…` for `digest` and `policy`, signed with `idKey` (and `authorKey`). */
export function idBlockProps(digest: Buffer, policy: bigint, idKey: KeyObject, authorKey?: KeyObject): string {
  const block = buildIdBlock({
    launchDigest: digest,
    familyId: Buffer.alloc(16, 0xf1),
    imageId: Buffer.alloc(16, 0x1a),
    guestSvn: 7,
    policy,
  });
  const auth = buildIdAuth(block, idKey, authorKey);
  return `id-block=${block.toString('base64')},id-auth=${auth.idAuth.toString('base64')}${authorKey === undefined ? '' : ',author-key-enabled=on'}`;
}

/** The sim state directory the tests share (scripts/setup-test-assets.sh makes it: sim-state). */
export const SIM_STATE = join(ASSETS, 'sim-state');

/**
 * Make the simulated SNP platform's chain in SIM_STATE unless it is there (two RSA-4096 keys:
 * up to a minute on a busy machine, once).
 */
export function ensureSimState(): string {
  execFileSync(process.execPath, [SIM, '--sim-init-snp-platform', '--sim-state-dir', SIM_STATE], { stdio: 'ignore', timeout: 300_000 });
  return SIM_STATE;
}
