// `sevsup verify`: the guest owner's offline check of a launch measurement against their own
// inputs, with libvirt's virt-qemu-sev-validate's trust model and exit codes. Must not: import the
// implementation eagerly (cli/actions/verify.ts is loaded on use) or anything beyond commander.
import { Option, type Command } from 'commander';
import {
  addLaunchInputOptions,
  addSnpDigestOptions,
  SEV_ES_HELP,
  type LaunchInputCliOptions,
  type SnpDigestCliOptions,
} from './measure.js';
import { addSnpReportOptions, SNP_TRUST_MODEL, type SnpVerifyCliOptions } from './verify-snp.js';
import { collect, majorMinorArg, uintArg } from './args.js';

export interface VerifyCliOptions extends LaunchInputCliOptions, SnpVerifyCliOptions, SnpDigestCliOptions {
  readonly record?: string;
  readonly measurement?: string;
  readonly apiMajor?: number;
  readonly apiMinor?: number;
  readonly buildId?: number;
  readonly policy?: number;
  readonly tik?: string;
  readonly tek?: string;
  readonly tk?: string;
  readonly useRecordInputs?: boolean;
  readonly expectedPolicy?: number;
  readonly minApi?: { readonly major: number; readonly minor: number };
  readonly allowedBuildId?: readonly number[];
  readonly json?: boolean;
  readonly quiet?: boolean;
}

export const VERIFY_TRUST_MODEL = [
  "Trust model (libvirt's virt-qemu-sev-validate's): only the measurement, the policy, the SEV API",
  'version and the build id may come from the host; the HMAC under your TIK binds them. The firmware,',
  "kernel, initrd, cmdline, vCPU count and vCPU signature must be yours: a record's launch paths are the",
  "host's word and are used only with --use-record-inputs, which prints that this is insecure. Use a",
  'fresh TIK/TEK for every launch (sevctl session). The comparison is constant-time.',
].join('\n');

export function registerVerify(program: Command): void {
  const u8 = uintArg(0xff);
  const cmd = program
    .command('verify')
    .description("check a guest's launch measurement (SEV, SEV-ES) or attestation report (SNP, --report) offline against your own inputs")
    .option('--record <file>', 'a sevsup measurement record (sevsup.measurement/v1) for the host-reported values')
    .option('--measurement <base64>', 'the measurement query-sev-launch-measure returned (48 bytes, base64)')
    .addOption(new Option('--api-major <n>', 'SEV API major version (query-sev)').argParser(u8))
    .addOption(new Option('--api-minor <n>', 'SEV API minor version (query-sev)').argParser(u8))
    .addOption(new Option('--build-id <n>', 'SEV firmware build id (query-sev)').argParser(u8))
    .addOption(new Option('--policy <n>', 'guest policy (query-sev), decimal or 0x-hex').argParser(uintArg(0xffffffff)))
    .option('--tik <file>', 'your transport integrity key (16 bytes, e.g. from sevctl session)')
    .option('--tek <file>', 'your transport encryption key (16 bytes; not needed to verify)')
    .option('--tk <file>', 'TEK ‖ TIK in one 32-byte file (instead of --tik/--tek)');
  addLaunchInputOptions(cmd)
    .option('--use-record-inputs', "INSECURE: take missing launch inputs from the record (the host's word)")
    .addOption(new Option('--expected-policy <n>', 'also require this exact policy').argParser(uintArg(0xffffffff)))
    .addOption(new Option('--min-api <major.minor>', 'also require at least this SEV API version').argParser(majorMinorArg('0.24')))
    .addOption(new Option('--allowed-build-id <n>', 'also require one of these build ids (repeatable)').argParser(collect(u8)));
  addSnpReportOptions(addSnpDigestOptions(cmd))
    .option('--json', 'print the result as JSON')
    .option('-q, --quiet', 'print nothing; only the exit code tells')
    .addHelpText(
      'after',
      [
        '',
        'Computes the launch digest of your inputs (as `sevsup measure`), then HMAC(TIK, 0x04 ‖ api-major ‖',
        'api-minor ‖ build-id ‖ policy ‖ digest ‖ mnonce) and compares it with the reported measurement.',
        'The policy decides SEV or SEV-ES (bit 2); SEV-ES needs --vcpus and the vCPU signature.',
        'Host-reported values come from --record, or from --measurement, --api-major, --api-minor,',
        '--build-id and --policy (all five), never both.',
        '',
        VERIFY_TRUST_MODEL,
        '',
        SEV_ES_HELP,
        '',
        "Exit codes (libvirt's): 0 valid; 1 measurement mismatch or an owner check failed (not trustworthy);",
        '2 unsupported usage (missing or bad options, bad measurement); 3 insecure usage (an input would',
        'come from the host); 4 bad configuration (unreadable input, a firmware QEMU would refuse, bad',
        'record); 5 bad state (the record was not captured in launch-secret or running).',
        '',
        'SNP: --report REPORT.bin verifies an SEV-SNP attestation report offline (versions 2, 3, 5): its',
        "structure, the ECDSA P-384 signature, the certificate chain to a pinned ARK, the certificate's",
        'TCB, hwID and product against the report, and your expectations. Same exit codes; 4 also for a',
        'missing or unreadable certificate or report.',
        'The expected measurement is --expected-measurement, or computed from your launch inputs exactly as',
        '`sevsup measure --mode snp` computes it (--firmware, --kernel, --initrd, --cmdline, --vcpus, --vcpu-type',
        'or --vcpu-sig, --guest-features, --vmm-type, --snp-ovmf-hash); both, or inputs with --reference-values,',
        'must agree, or verify refuses to run (exit 2).',
        '',
        SNP_TRUST_MODEL,
      ].join('\n'),
    )
    .action(async (opts: VerifyCliOptions) => {
      if (opts.report !== undefined) {
        const { runVerifySnp } = await import('../actions/verify-snp.js');
        await runVerifySnp(opts);
        return;
      }
      const { runVerify } = await import('../actions/verify.js');
      await runVerify(opts);
    });
}
