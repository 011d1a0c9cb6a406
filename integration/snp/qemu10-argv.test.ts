// SEV-SNP command lines against the real QEMU 10 (Debian trixie's, from the root
// scripts/setup-qemu10-root.sh makes) and trixie's real OVMF.fd:
//  - `sevsup showcmd --json` for SNP VMs whose `qemu:` key names QEMU 10, run as printed except
//    `-accel tcg` (no KVM here): QEMU parses every option and creates every object and chardev,
//    then stops where SNP needs KVM ("cannot set up private guest memory for sev-snp-guest: KVM
//    required"; under KVM without /dev/sev the next stop would be sev_common_kvm_init's
//    "Failed to open /dev/sev"). A broken property (control case) fails earlier, in its own words;
//  - the QEMU-version rule: Debian 12's QEMU 7.2 is refused for SNP before anything else;
//  - trixie's OVMF.fd: SNP metadata, no KERNEL_HASHES section, so a kernel with kernel-hashes is
//    refused before any QEMU starts (showcmd and preflight), and `inspect-firmware` says so.
// Skipped, saying why, without the root or without root privileges (test/support/it-env.ts).
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseVmConfig } from '../../src/config/vm-config.js';
import { preflight } from '../../src/vm/preflight.js';
import { snpLaunchDigest } from '../../src/sev/snp-launch-digest.js';
import { readSnpFirmware } from '../../src/attestation/snp-inputs.js';
import { KERNEL, processesMentioning, QEMU10_ROOT, qemu10Unavailable, REAL_QEMU, REPO } from '../../test/support/it-env.js';
import { qemu10Dir, qemu10Workspace } from '../../test/support/qemu10.js';
import { runCliCaptured } from '../../test/support/run-cli.js';

const missing = qemu10Unavailable() ?? (existsSync(KERNEL) ? null : `${KERNEL} is missing (bash scripts/setup-test-assets.sh)`);
const TRIXIE_OVMF = join(QEMU10_ROOT, 'usr', 'share', 'ovmf', 'OVMF.fd');
const GENOA_CAPS = join(REPO, 'test', 'fixtures', 'host-caps', 'proxmox-epyc-genoa.json');
/** QEMU 10's own words where an SNP guest needs KVM (accel/kvm is absent under TCG). */
const NEEDS_KVM = 'qemu-system-x86_64: cannot set up private guest memory for sev-snp-guest: KVM required';

/** Mounts under `dir` (none may outlive a QEMU run: the wrapper's namespace is private). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line.includes(dir));
}

describe.skipIf(missing !== null)(`SNP command lines on QEMU 10${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  const { dir, qemu } = qemu10Workspace('sevsup-qemu10-argv-', missing === null);
  // The firmware with a KERNEL_HASHES section: trixie's OVMF.fd given AmdSev's layout by the test
  // firmware maker (scripts/make-test-firmware.mjs), for the measured direct boot.
  const hashesFw = join(dir, 'ovmf-snp-hashes.fd');
  const trixieFw = join(dir, 'OVMF.fd');

  /** Writes `<dir>/<name>.conf` and returns `sevsup showcmd --json` for it. */
  async function showcmd(name: string, lines: readonly string[]): Promise<{ code: number; out: string; err: string }> {
    const file = join(dir, `${name}.conf`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    return runCliCaptured('showcmd', '--json', '--host-caps', GENOA_CAPS, '--run-dir', join(dir, 'run'), file);
  }

  /** Runs QEMU 10 with showcmd's argv, `-accel tcg` for `-accel kvm`; its exit code and stderr. */
  async function runArgv(argv: readonly string[]): Promise<{ code: number | undefined; stderr: string }> {
    const [binary, ...args] = argv;
    // The run directory the launcher would have made (process/run-dir.ts): QEMU writes its pid
    // file, monitor socket and serial log there.
    const monitor = args
      .find((a) => a.startsWith('socket,id=monitor,path='))
      ?.replace(/^socket,id=monitor,path=|,server=on,wait=off$/g, '');
    mkdirSync(dirname(monitor ?? ''), { recursive: true });
    expect(binary).toBe(qemu);
    const accel = args.indexOf('-accel');
    expect(args[accel + 1]).toBe('kvm');
    args[accel + 1] = 'tcg';
    const r = await execa(binary ?? '', args, { reject: false, timeout: 60_000, stdin: 'ignore' });
    expect(processesMentioning(dir)).toEqual([]);
    expect(mountsUnder(dir)).toEqual([]);
    return { code: r.exitCode, stderr: String(r.stderr) };
  }

  beforeAll(async () => {
    copyFileSync(TRIXIE_OVMF, trixieFw);
    await execa('node', [join(REPO, 'scripts', 'make-test-firmware.mjs'), TRIXIE_OVMF, hashesFw, '--snp', 'kernel-hashes']);
    copyFileSync(KERNEL, join(dir, 'vmlinuz'));
    writeFileSync(join(dir, 'vm.idblock'), Buffer.alloc(96, 1).toString('base64'));
    writeFileSync(join(dir, 'vm.idauth'), Buffer.alloc(4096, 2));
    writeFileSync(join(dir, 'vm.hostdata'), Buffer.alloc(32, 3));
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'root.qcow2'), '64M']);
  });

  it('runs the whole argv of an SNP guest with every option up to where SNP needs KVM', async () => {
    const shown = await showcmd('full', [
      'memory: 512',
      'cores: 2',
      'cpu: EPYC-Milan',
      `qemu: ${qemu}`,
      `firmware: ${hashesFw}`,
      `kernel: ${join(dir, 'vmlinuz')}`,
      'cmdline: console=ttyS0',
      'serial: file',
      'disk0: file=root.qcow2',
      'net0: type=user',
      'amd-sev: type=snp,no-debug=1,kernel-hashes=1,id-block=vm.idblock,id-auth=vm.idauth,author-key=1,' +
        'host-data-file=vm.hostdata,vcek=0,guest-visible-workarounds=000102030405060708090a0b0c0d0e0f,' +
        'single-socket=1,cxl-allow=1,aes-256-xts=1,rapl-dis=1,ciphertext-hiding=1,page-swap-disable=1,abi=1.51',
    ]);
    expect(shown.err).toBe('');
    expect(shown.code).toBe(0);
    const argv = JSON.parse(shown.out) as string[];
    const object = JSON.parse(argv[argv.indexOf('-object') + 1] ?? '') as Record<string, unknown>;
    expect(object).toMatchObject({
      'qom-type': 'sev-snp-guest',
      'kernel-hashes': true,
      'author-key-enabled': true,
      'vcek-disabled': true,
      'host-data': Buffer.alloc(32, 3).toString('base64'),
      'id-auth': Buffer.alloc(4096, 2).toString('base64'),
    });
    expect(argv[argv.indexOf('-machine') + 1]).toBe('q35,dump-guest-core=off,confidential-guest-support=sev0,smm=off');
    expect(await runArgv(argv)).toEqual({ code: 1, stderr: NEEDS_KVM });

    // Control: the same argv with one bad property value stops at QEMU's setter instead.
    const broken = [...argv];
    broken[argv.indexOf('-object') + 1] = JSON.stringify({ ...object, 'host-data': Buffer.alloc(31).toString('base64') });
    expect(await runArgv(broken)).toEqual({ code: 1, stderr: 'qemu-system-x86_64: parameter length of 31 not equal to 32' });
  });

  it("runs a plain SNP guest on trixie's own OVMF.fd (no kernel) up to where SNP needs KVM", async () => {
    const shown = await showcmd('plain', [`qemu: ${qemu}`, `firmware: ${trixieFw}`, 'amd-sev: type=snp']);
    expect(shown.code).toBe(0);
    expect(await runArgv(JSON.parse(shown.out) as string[])).toEqual({ code: 1, stderr: NEEDS_KVM });
  });

  it("refuses a kernel with kernel-hashes on trixie's OVMF.fd before any QEMU starts", async () => {
    const lines = [`qemu: ${qemu}`, `firmware: ${trixieFw}`, `kernel: ${join(dir, 'vmlinuz')}`, 'amd-sev: type=snp,kernel-hashes=1'];
    const shown = await showcmd('trixie-kernel', lines);
    expect(shown.code).not.toBe(0);
    expect(shown.out).toBe('');
    expect(shown.err).toContain(
      `firmware: ${trixieFw} cannot launch this SEV-SNP guest: a kernel is given, but the firmware has no KERNEL_HASHES section`,
    );
    expect(shown.err).toContain('[SUP_ERR_FIRMWARE_SNP]');
    // The launch's own preflight refuses it the same way.
    const spec = parseVmConfig(`${lines.join('\n')}\n`, join(dir, 'trixie-kernel.conf'));
    await expect(preflight(spec)).rejects.toMatchObject({ code: 'SUP_ERR_FIRMWARE_SNP' });
  });

  it("inspect-firmware shows trixie's SNP metadata, without a KERNEL_HASHES section, and its digest part", async () => {
    const r = await runCliCaptured('inspect-firmware', '--json', TRIXIE_OVMF);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as {
      snp: { metadata: { status: string; sections: { name: string }[] }; firmwareDigest: string; problems: Record<string, string[]> };
    };
    expect(report.snp.metadata.status).toBe('found');
    const names = report.snp.metadata.sections.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(['SEC_MEM', 'SECRETS', 'CPUID', 'SVSM_CAA']));
    expect(names).not.toContain('KERNEL_HASHES');
    expect(report.snp.firmwareDigest).toMatch(/^[0-9a-f]{96}$/);
    expect(report.snp.problems['withoutKernel']).toEqual([]);
    expect(report.snp.problems['withKernelHashes']?.[0]).toMatch(/^a kernel is given, but the firmware has no KERNEL_HASHES section/);
    // And it is measurable as an SNP launch (no kernel).
    const fw = await readSnpFirmware(TRIXIE_OVMF);
    const sections = fw.metadata.status === 'found' ? fw.metadata.sections : [];
    const digest = snpLaunchDigest({
      firmware: fw.bytes,
      sections,
      resetAddress: fw.table.sevResetAddress ?? 0,
      vcpus: 2,
      vcpuSignature: 0x800f12,
      guestFeatures: 1n,
    });
    expect(digest.length).toBe(48);
  });
});

describe.runIf(existsSync(REAL_QEMU))("SNP on Debian 12's QEMU 7.2", () => {
  it('showcmd refuses it with the version found and what to install', async () => {
    const dir = qemu10Dir('sevsup-snp-qemu72-');
    try {
      const file = join(dir, 'snp.conf');
      writeFileSync(file, 'amd-sev: type=snp\n');
      const r = await runCliCaptured('showcmd', '--host-caps', GENOA_CAPS, file);
      expect(r.code).not.toBe(0);
      expect(r.out).toBe('');
      expect(r.err).toMatch(
        /SEV-SNP needs QEMU >= 9\.1 \(the sev-snp-guest object\), but \/usr\/bin\/qemu-system-x86_64 is QEMU 7\.2\.\d+ .*install QEMU 9\.1 or newer .*\[SUP_ERR_SEV_SNP_QEMU\]/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
