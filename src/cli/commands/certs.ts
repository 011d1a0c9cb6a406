// `sevsup certs`: AMD SEV-SNP certificates for the host and the owner: fetch from AMD's key server
// into the cache (cache first, 429-aware), import a directory snpguest wrote (air-gapped), show a
// certificate's AMD extensions, verify a chain on its own. Must not: import the implementation
// eagerly (cli/actions/certs.ts is loaded on use) or anything beyond commander.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_SNP_CERT_CACHE } from '../../paths.js';
import { bytesArg, productArg, u64Arg } from './args.js';

export interface CertsCommonOptions {
  readonly cache?: string;
  readonly json?: boolean;
}

export interface CertsFetchOptions extends CertsCommonOptions {
  readonly report?: string;
  readonly chipId?: Buffer;
  readonly tcb?: bigint;
  readonly product?: 'Milan' | 'Genoa' | 'Turin';
  readonly vlek?: boolean;
  readonly crl?: boolean;
  readonly offline?: boolean;
  readonly refresh?: boolean;
  readonly kdsUrl?: string;
  readonly maxWait?: number;
}

export interface CertsTableOptions extends CertsCommonOptions {
  readonly report?: string;
  readonly chipId?: Buffer;
  readonly tcb?: bigint;
  readonly product?: 'Milan' | 'Genoa' | 'Turin';
  readonly out: string;
}

export interface CertsImportOptions extends CertsCommonOptions {
  readonly ark?: string;
}

export interface CertsVerifyOptions extends CertsCommonOptions {
  readonly ark?: string;
}

function secondsArg(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(n <= 3600)) throw new InvalidArgumentError('expected seconds from 0 to 3600');
  return n;
}

/** Which chip and TCB: a report, or a chip id with a TCB (and the product when the report does not say). */
function chipOptions(cmd: Command): Command {
  return cmd
    .option('--report <file>', 'the chip (CHIP_ID) and REPORTED_TCB from this attestation report')
    .addOption(new Option('--chip-id <hex>', 'the chip (CHIP_ID, 64 bytes hex) instead of --report').argParser(bytesArg(64)))
    .addOption(new Option('--tcb <u64>', 'REPORTED_TCB as a 64-bit value (with --chip-id)').argParser(u64Arg))
    .addOption(new Option('--product <name>', 'Milan, Genoa or Turin (needed unless the report names it: v3+)').argParser(productArg));
}

const CACHE_HELP = `the certificate cache (default ${DEFAULT_SNP_CERT_CACHE})`;

export function registerCerts(program: Command): void {
  const certs = program.command('certs').description('AMD SEV-SNP certificates: fetch (cache first), import, show, verify');

  chipOptions(certs.command('fetch').description("fetch the product's cert_chain and a chip's VCEK from AMD's key server into the cache"))
    .option('--vlek', 'also fetch the VLEK chain (ASVK, ARK); VLEKs themselves come from your cloud provider: import them')
    .option('--crl', "also fetch the product's certificate revocation list")
    .option('--cache <dir>', CACHE_HELP)
    .option('--offline', 'never touch the network: only report what the cache has (exit 9 on a miss)')
    .option('--refresh', 'fetch even when cached (a cached file is replaced only by a checked one)')
    .option('--kds-url <url>', 'the key server (default https://kdsintf.amd.com)')
    .addOption(new Option('--max-wait <seconds>', 'the longest Retry-After to honour on HTTP 429 (default 120)').argParser(secondsArg))
    .option('--json', 'print what was fetched or found as JSON')
    .addHelpText(
      'after',
      [
        '',
        'The cache is keyed by product, chip and TCB: <cache>/<Product>/cert_chain.pem, crl.der,',
        'vcek/<hwid>/<tcb>.der (docs/snp-attestation.md). Every command reads it first. Requests go one',
        'at a time; a 429 waits what Retry-After says (up to --max-wait), 5xx backs off; 404 is final.',
      ].join('\n'),
    )
    .action(async (opts: CertsFetchOptions) => {
      const { runCertsFetch } = await import('../actions/certs.js');
      await runCertsFetch(opts);
    });

  chipOptions(
    certs
      .command('table')
      .description('write the GHCB extended-guest-request certificate table (ARK, ASK, VCEK) for a chip and TCB, from the cache only'),
  )
    .requiredOption('--out <file>', 'where to write the table (atomically)')
    .option('--cache <dir>', CACHE_HELP)
    .option('--json', 'print what was written as JSON')
    .addHelpText(
      'after',
      '\nThe format (entries of GUID, offset, length; a zero entry; the DER certificates; 4 KiB pages) is in docs/snp-attestation.md.',
    )
    .action(async (opts: CertsTableOptions) => {
      const { runCertsTable } = await import('../actions/certs.js');
      await runCertsTable(opts);
    });

  certs
    .command('import')
    .description('import a directory snpguest wrote (ark.pem, ask.pem|asvk.pem, vcek.pem|vlek.pem) into the cache, air-gapped')
    .argument('<dir>', 'the directory')
    .option('--ark <file>', "accept this ARK instead of AMD's built-in ones (e.g. a test or simulated root)")
    .option('--cache <dir>', CACHE_HELP)
    .option('--json', 'print what was imported as JSON')
    .action(async (dir: string, opts: CertsImportOptions) => {
      const { runCertsImport } = await import('../actions/certs.js');
      await runCertsImport(dir, opts);
    });

  certs
    .command('show')
    .description('decode certificates (subject, validity, key, AMD extensions); with no file, list the cache')
    .argument('[files...]', 'PEM or DER certificates (a PEM bundle shows each)')
    .option('--cache <dir>', CACHE_HELP)
    .option('--json', 'print as JSON')
    .action(async (files: string[], opts: CertsCommonOptions) => {
      const { runCertsShow } = await import('../actions/certs.js');
      await runCertsShow(files, opts);
    });

  certs
    .command('verify')
    .description('verify a certificate chain on its own: pinned ARK → ASK → VCEK (or ASVK → VLEK)')
    .argument('<dir>', 'a directory as snpguest writes it')
    .option('--ark <file>', "pin this ARK instead of AMD's built-in ones")
    .option('--json', 'print the verdicts as JSON')
    .addHelpText('after', '\nExit codes: 0 the chain verifies; 1 it does not; 2 usage; 4 a certificate is missing or unreadable.')
    .action(async (dir: string, opts: CertsVerifyOptions) => {
      const { runCertsVerify } = await import('../actions/certs.js');
      await runCertsVerify(dir, opts);
    });
}
