// `sevsup measure`: the expected SEV / SEV-ES launch digest (GCTX.LD) from the owner's files, with
// sev-snp-measure's option names and defaults. Also the launch-input options that `verify` and
// `id-block` share (the argument parsers: args.ts). Must not: import the implementation eagerly
// (cli/actions/measure.ts is loaded on use) or anything beyond commander.
import { Option, type Command } from 'commander';
import { bytesArg, tcbArg, u64Arg, uintArg, type TcbLevels } from './args.js';

/** Launch-input options as commander hands them over (aliases still separate). */
export interface LaunchInputCliOptions {
  readonly firmware?: string;
  readonly ovmf?: string;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  readonly append?: string;
  readonly vcpus?: number;
  readonly numCpus?: number;
  readonly vcpuType?: string;
  readonly vcpuSig?: number;
  readonly vcpuFamily?: number;
  readonly vcpuModel?: number;
  readonly vcpuStepping?: number;
  readonly cpuFamily?: number;
  readonly cpuModel?: number;
  readonly cpuStepping?: number;
  readonly vmsaInit: 'legacy' | 'init2';
  readonly sevFeatures: bigint;
}

/** The SNP digest options `measure`, `id-block` and `verify --report` share (sev-snp-measure's). */
export interface SnpDigestCliOptions {
  /** SNP: the VMSA SEV_FEATURES word (default 0x1). */
  readonly guestFeatures: bigint;
  readonly vmmType: 'QEMU' | 'ec2' | 'gce';
  /** SNP: the firmware part of the chain, precomputed (96 hex digits). */
  readonly snpOvmfHash?: string;
}

export interface MeasureCliOptions extends LaunchInputCliOptions, SnpDigestCliOptions {
  readonly mode: 'sev' | 'seves' | 'sev-es' | 'snp' | 'snp:ovmf-hash';
  readonly outputFormat: 'hex' | 'base64';
  readonly json?: boolean;
  /** SNP: print the reference values (sevsup.snp-reference-values/v1) instead of the digest. */
  readonly referenceValues?: boolean;
  readonly policy?: bigint;
  readonly hostData?: Buffer;
  readonly idKeyDigest?: Buffer;
  readonly authorKeyDigest?: Buffer;
  readonly minTcb?: TcbLevels;
  readonly minGuestSvn?: number;
  readonly vmpl?: number;
}

const U8 = 0xff;
const U32 = 0xffffffff;
/** QEMU's x86 machines stop far below this; it only keeps the VMSA loop bounded. */
const MAX_VCPUS_ARG = 1024;

/** The owner's firmware/kernel/initrd/cmdline and SEV-ES vCPU options, with their aliases. */
export function addLaunchInputOptions(cmd: Command): Command {
  const hidden = (flags: string, parse?: (v: string) => unknown): Option => {
    const o = new Option(flags).hideHelp();
    return parse === undefined ? o : o.argParser(parse);
  };
  return cmd
    .option('--firmware <file>', 'the firmware image QEMU measures (pflash unit 0 or -bios); alias --ovmf')
    .addOption(hidden('--ovmf <file>'))
    .option('--kernel <file>', 'the -kernel bzImage (measured through the kernel-hashes table)')
    .option('--initrd <file>', 'the -initrd image (needs --kernel)')
    .option('--cmdline <text>', 'the -append kernel command line, exactly as given (needs --kernel); alias --append')
    .addOption(hidden('--append <text>'))
    .addOption(new Option('--vcpus <n>', 'SEV-ES and SNP: number of vCPUs (-smp); alias --num-cpus').argParser(uintArg(MAX_VCPUS_ARG)))
    .addOption(hidden('--num-cpus <n>', uintArg(MAX_VCPUS_ARG)))
    .option('--vcpu-type <name>', 'SEV-ES and SNP: QEMU CPU model (EPYC, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, their -vN)')
    .addOption(new Option('--vcpu-sig <n>', 'SEV-ES and SNP: vCPU signature (CPUID 1 EAX)').argParser(uintArg(U32)))
    .addOption(
      new Option('--vcpu-family <n>', 'SEV-ES: vCPU family (with --vcpu-model, --vcpu-stepping); alias --cpu-family').argParser(
        uintArg(0x10e),
      ),
    )
    .addOption(new Option('--vcpu-model <n>', 'SEV-ES: vCPU model; alias --cpu-model').argParser(uintArg(U8)))
    .addOption(new Option('--vcpu-stepping <n>', 'SEV-ES: vCPU stepping; alias --cpu-stepping').argParser(uintArg(0xf)))
    .addOption(hidden('--cpu-family <n>', uintArg(0x10e)))
    .addOption(hidden('--cpu-model <n>', uintArg(U8)))
    .addOption(hidden('--cpu-stepping <n>', uintArg(0xf)))
    .addOption(
      new Option('--vmsa-init <kind>', 'SEV-ES: how KVM created the guest: legacy (KVM_SEV_ES_INIT) or init2 (KVM_SEV_INIT2)')
        .choices(['legacy', 'init2'])
        .default('legacy'),
    )
    .addOption(
      new Option('--sev-features <n>', 'SEV-ES: the VMSA SEV_FEATURES word the host kernel set').argParser(u64Arg).default(0n, '0'),
    );
}

/** --guest-features, --vmm-type and --snp-ovmf-hash, with sev-snp-measure's defaults. */
export function addSnpDigestOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--guest-features <n>', 'SNP: the VMSA SEV_FEATURES word (default 0x1; see `sevsup measure --help`)')
        .argParser(u64Arg)
        .default(1n, '0x1'),
    )
    .addOption(
      new Option('--vmm-type <type>', 'SNP: whose VMM launches the guest (case-sensitive)').choices(['QEMU', 'ec2', 'gce']).default('QEMU'),
    )
    .option('--snp-ovmf-hash <hex>', 'SNP: the firmware part of the digest, precomputed with `sevsup measure --mode snp:ovmf-hash`');
}

/** Help text shared by measure and verify: what the SEV-ES options mean and why they fail. */
export const SEV_ES_HELP = [
  'SEV-ES: one 4 KiB VMSA page per vCPU is measured after the firmware (vCPU 0 at the reset vector,',
  "the others at the AP reset address from the firmware's SEV info block), carrying the vCPU signature",
  "(--vcpu-type: QEMU's -cpu model, or --vcpu-sig / --vcpu-family/--vcpu-model/--vcpu-stepping).",
  "The host kernel decides the rest of the VMSA, and that is the most common reason an owner's SEV-ES",
  'check fails:',
  '  --vmsa-init legacy (default): KVM_SEV_ES_INIT, what QEMU 7.2 and 10.x use unless legacy-vm-type=off;',
  "                    x87/SSE control words zero, as libvirt's virt-qemu-sev-validate computes.",
  '  --vmsa-init init2: KVM_SEV_INIT2 (Linux >= 6.10 with legacy-vm-type=off): FCW 0x37f, MXCSR 0x1f80,',
  '                    as sev-snp-measure computes.',
  '  --sev-features N: the VMSA SEV_FEATURES word (default 0); some host kernels set DebugSwap (0x20).',
].join('\n');

/** Help text for `--mode snp`. */
export const SNP_HELP = [
  'SEV-SNP (--mode snp): the SHA-384 PAGE_INFO chain the secure processor builds, which reports carry as',
  "MEASUREMENT: every firmware page (-bios, ending at 4 GiB), the firmware's SNP metadata sections in table",
  'order (the kernel-hashes table in the KERNEL_HASHES section with --kernel), then one VMSA per vCPU.',
  "Options are sev-snp-measure's: --vcpus, --vcpu-type (or --vcpu-sig, --vcpu-family/-model/-stepping),",
  '--guest-features, --vmm-type QEMU|ec2|gce, --snp-ovmf-hash, --mode snp:ovmf-hash, --output-format.',
  '  --guest-features N (default 0x1): SEV_FEATURES in every VMSA. 0x1 (SNPActive) is what QEMU 10 + KVM',
  '                    give a stock guest (KVM_SEV_INIT2 with vmsa_features 0). 0x21 adds DebugSwap, which',
  '                    host kernels 6.6 to 6.9 enabled by default; use it only if your host kernel does that.',
  '  --mode snp:ovmf-hash prints the firmware part alone; --snp-ovmf-hash HEX starts the chain from it.',
  'Refused, because QEMU would never launch them (sev-snp-measure still prints a digest): a firmware without',
  'SNP metadata or SEV info block, a size that is not a multiple of 64 KiB, --kernel without a KERNEL_HASHES',
  'section or usable hashes area, a table crossing its page, 0 vCPUs, guest features without bit 0.',
].join('\n');

export function registerMeasure(program: Command): void {
  const cmd = program
    .command('measure')
    .description('compute the expected SEV / SEV-ES launch digest (GCTX.LD) from your own firmware, kernel, initrd and cmdline')
    .addOption(
      new Option('--mode <mode>', 'guest type: sev, seves (alias sev-es), snp, or snp:ovmf-hash (the firmware part only)')
        .choices(['sev', 'seves', 'sev-es', 'snp', 'snp:ovmf-hash'])
        .makeOptionMandatory(),
    );
  addSnpDigestOptions(addLaunchInputOptions(cmd))
    .addOption(new Option('--output-format <format>', 'how to print the digest').choices(['hex', 'base64']).default('hex'))
    .option('--json', "print the digest with every input's sha256, the kernel-hashes table and the VMSA variant as JSON")
    .option('--reference-values', 'SNP: print the reference values (sevsup.snp-reference-values/v1 JSON) a verifier loads')
    .addOption(new Option('--policy <n>', "SNP reference values: the guest policy, 64-bit (default 0x30000, QEMU's)").argParser(u64Arg))
    .addOption(
      new Option('--host-data <hex|base64>', 'SNP reference values: the host data (32 bytes)').argParser(bytesArg(32, { base64: true })),
    )
    .addOption(
      new Option('--id-key-digest <hex>', 'SNP reference values: the ID key digest `sevsup id-block` printed (48 bytes)').argParser(
        bytesArg(48),
      ),
    )
    .addOption(new Option('--author-key-digest <hex>', 'SNP reference values: the author key digest (48 bytes)').argParser(bytesArg(48)))
    .addOption(
      new Option('--min-tcb <spls>', 'SNP reference values: minimum TCB, e.g. bl=3,tee=0,snp=8,ucode=115 (unnamed: 0)').argParser(tcbArg),
    )
    .addOption(new Option('--min-guest-svn <n>', 'SNP reference values: minimum guest SVN').argParser(uintArg(U32)))
    .addOption(new Option('--vmpl <n>', 'SNP reference values: the VMPL reports must be requested at').argParser(uintArg(3)))
    .addHelpText(
      'after',
      [
        '',
        'Prints the launch digest: sha256 over the firmware image, the kernel-hashes table (with --kernel;',
        'the table exactly as QEMU builds it for kernel-hashes=on) and, for SEV-ES, one VMSA per vCPU.',
        "This is GCTX.LD, not the measurement: QEMU's query-sev-launch-measure returns HMAC(TIK, … ‖ digest",
        '‖ mnonce) ‖ mnonce; `sevsup verify` checks that against these same inputs.',
        "Options and defaults are sev-snp-measure's (--mode, --ovmf, --append, --vcpus, --vcpu-type,",
        "--output-format hex); digests agree with it and with libvirt's virt-qemu-sev-validate.",
        'A kernel with a firmware that declares no usable kernel-hashes area is refused: QEMU would not',
        'launch it (use an OVMF AmdSev build).',
        '',
        SEV_ES_HELP,
        '',
        SNP_HELP,
        '  --reference-values prints what a verifier must expect (docs/snp-attestation.md): the digest, the',
        '                    policy, and --host-data, --id-key-digest, --author-key-digest, --min-tcb,',
        '                    --min-guest-svn, --vmpl when given; `sevsup verify --report R --reference-values F`',
        '                    reads it.',
        '',
        'Exit codes: 0 printed; 2 usage error (and inputs QEMU would refuse); 3 unreadable file or unusable firmware.',
      ].join('\n'),
    )
    .action(async (opts: MeasureCliOptions) => {
      const { runMeasure } = await import('../actions/measure.js');
      await runMeasure(opts);
    });
}
