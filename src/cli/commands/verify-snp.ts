// The SNP half of `sevsup verify`: `--report REPORT.bin` and the options that state the owner's
// expectations of an SNP attestation report, and the trust-model text (the argument parsers: args.ts).
// Must not: import the implementation (cli/actions/verify-snp.ts is loaded on use) or anything
// beyond commander.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_SNP_CERT_CACHE } from '../../paths.js';
import { bytesArg, majorMinorArg, productArg, tcbArg, type TcbLevels } from './args.js';

export interface SnpVerifyCliOptions {
  readonly report?: string;
  readonly referenceValues?: string;
  readonly certs?: string;
  readonly ark?: string;
  readonly cache?: string;
  readonly product?: 'Milan' | 'Genoa' | 'Turin';
  readonly expectedMeasurement?: Buffer;
  readonly hostData?: Buffer;
  readonly reportData?: Buffer;
  readonly idKeyDigest?: Buffer;
  readonly authorKeyDigest?: Buffer;
  readonly expectedPolicy?: number;
  readonly allowDebug?: boolean;
  readonly allowMigrationAgent?: boolean;
  readonly smt?: 'allowed' | 'forbidden';
  readonly minAbi?: { readonly major: number; readonly minor: number };
  readonly minTcb?: TcbLevels;
  readonly minGuestSvn?: number;
  readonly vmpl?: number;
  readonly json?: boolean;
  readonly quiet?: boolean;
}

function smallUint(max: number): (v: string) => number {
  return (v: string): number => {
    const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
    if (!(n <= max)) throw new InvalidArgumentError(`expected an integer from 0 to ${max}`);
    return n;
  };
}

export const SNP_TRUST_MODEL = [
  "Trust model for --report (SNP): the only root of trust is a pinned ARK: AMD's (Milan, Genoa and",
  'Turin built in) or yours (--ark). An ARK that comes with the evidence is used only if it is the',
  'pinned one; the ASK/ASVK and the VCEK/VLEK come from --certs or the certificate cache and are',
  "believed only because the pinned ARK's signatures chain to them. The report is believed only after",
  "its signature verifies under that VCEK/VLEK and the certificate's TCB, hwID and product match it.",
  'What the report must say comes from you, never from the host: --expected-measurement, --host-data,',
  '--report-data (your fresh nonce), key digests, policy limits, minimum TCB, guest SVN and VMPL. With',
  'none of them given, only the evidence is checked, and the result says so.',
].join('\n');

/** The SNP options on `verify` (only --report selects SNP verification). */
export function addSnpReportOptions(cmd: Command): Command {
  return cmd
    .option('--report <file>', "SNP: verify this attestation report (0x4a0 bytes, as the guest's /dev/sev-guest or snpguest writes it)")
    .option('--reference-values <file>', 'SNP: expectations from a sevsup.snp-reference-values/v1 file (options given too override it)')
    .option('--certs <dir>', 'SNP: certificates as snpguest writes them: ark.pem, ask.pem or asvk.pem, vcek.pem or vlek.pem (.der too)')
    .option('--ark <file>', "SNP: pin this ARK instead of AMD's built-in ones")
    .option('--cache <dir>', `SNP: the certificate cache to read (default ${DEFAULT_SNP_CERT_CACHE})`)
    .addOption(new Option('--product <name>', 'SNP: Milan, Genoa or Turin (default: from the chain and the report)').argParser(productArg))
    .addOption(
      new Option('--expected-measurement <hex>', 'SNP: the launch digest the report must carry (48 bytes)').argParser(bytesArg(48)),
    )
    .addOption(
      new Option('--host-data <hex|base64>', 'SNP: the host data the report must carry (32 bytes)').argParser(
        bytesArg(32, { base64: true }),
      ),
    )
    .addOption(
      new Option('--report-data <hex>', 'SNP: your nonce, as the guest put it in report data (64 bytes)').argParser(
        bytesArg(64, { pad: true }),
      ),
    )
    .addOption(new Option('--id-key-digest <hex>', 'SNP: SHA-384 of your ID key (48 bytes)').argParser(bytesArg(48)))
    .addOption(new Option('--author-key-digest <hex>', 'SNP: SHA-384 of your author key (48 bytes)').argParser(bytesArg(48)))
    .option('--allow-debug', 'SNP: accept a policy that allows debugging (refused by default)')
    .option('--allow-migration-agent', 'SNP: accept a policy that allows a migration agent (refused by default)')
    .addOption(new Option('--smt <allowed|forbidden>', 'SNP: require the policy to allow or forbid SMT').choices(['allowed', 'forbidden']))
    .addOption(
      new Option('--min-abi <major.minor>', 'SNP: require at least this minimum ABI in the policy').argParser(majorMinorArg('1.51')),
    )
    .addOption(new Option('--min-tcb <spls>', 'SNP: minimum reported TCB per component, e.g. bl=3,tee=0,snp=8,ucode=115').argParser(tcbArg))
    .addOption(new Option('--min-guest-svn <n>', 'SNP: minimum guest SVN').argParser(smallUint(0xffffffff)))
    .addOption(new Option('--vmpl <n>', 'SNP: the VMPL the report must have been requested at').argParser(smallUint(3)));
}
