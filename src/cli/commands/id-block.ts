// `sevsup id-block`: the SEV-SNP ID block and ID auth an owner signs, so the platform itself
// refuses a launch whose digest differs. Takes sev-snp-measure's `snp-create-id-block` option names
// too. Must not: import the implementation eagerly (cli/actions/id-block.ts is loaded on use).
import { Option, type Command } from 'commander';
import { addLaunchInputOptions, addSnpDigestOptions, type LaunchInputCliOptions, type SnpDigestCliOptions } from './measure.js';
import { u64Arg, uintArg } from './args.js';

export interface IdBlockCliOptions extends LaunchInputCliOptions, SnpDigestCliOptions {
  readonly measurement?: string;
  readonly launchDigest?: string;
  readonly idkey?: string;
  readonly idKey?: string;
  readonly authorkey?: string;
  readonly authorKey?: string;
  readonly familyId: string;
  readonly imageId: string;
  readonly svn: number;
  readonly policy: bigint;
  readonly idBlockFile?: string;
  readonly idAuthFile?: string;
  readonly json?: boolean;
  readonly summary?: boolean;
}

export function registerIdBlock(program: Command): void {
  const cmd = program
    .command('id-block')
    .description("sign an SEV-SNP ID block and ID auth with the owner's P-384 key, pinning the launch digest and policy")
    .option('--launch-digest <hex>', 'the expected launch digest (96 hex digits, from `sevsup measure --mode snp`)')
    .option('--measurement <base64>', "the same digest in base64 (sev-snp-measure's name)")
    .option('--id-key <pem>', "the owner's ID key: an ECDSA P-384 private key in PEM; alias --idkey")
    .addOption(new Option('--idkey <pem>').hideHelp())
    .option('--author-key <pem>', 'optional author key (ECDSA P-384 PEM) that signs the ID key; alias --authorkey')
    .addOption(new Option('--authorkey <pem>').hideHelp())
    .option('--family-id <hex>', 'family ID, 16 bytes as 32 hex digits', '0'.repeat(32))
    .option('--image-id <hex>', 'image ID, 16 bytes as 32 hex digits', '0'.repeat(32))
    .addOption(new Option('--svn <n>', 'guest SVN').argParser(uintArg(0xffffffff)).default(0))
    .addOption(
      new Option('--policy <n>', "the guest's SNP policy (must equal the one it launches with)")
        .argParser(u64Arg)
        .default(0x30000n, '0x30000'),
    )
    .option('--id-block-file <file>', 'also write the ID block (base64, as the id-block= config property takes it)')
    .option('--id-auth-file <file>', 'also write the ID auth (base64, as the id-auth= config property takes it)')
    .option('--json', 'print {idBlock, idAuth (base64), idKeyDigest, authorKeyDigest (hex)} as JSON')
    .option('--summary', 'print what was signed, the key digests and where the files went, not the base64 data');
  addSnpDigestOptions(addLaunchInputOptions(cmd))
    .addHelpText(
      'after',
      [
        '',
        'The digest comes from --launch-digest / --measurement, or is computed from the inputs as',
        '`sevsup measure --mode snp` computes it (--firmware, --kernel, --initrd, --cmdline, --vcpus, --vcpu-type, …).',
        "Without --json it prints what sev-snp-measure's snp-create-id-block prints: `id-block=B64,id-auth=B64`",
        "(ready for QEMU's sev-snp-guest object), then `id_key_hash: B64` and, with an author key, `author_key: B64`.",
        'With --summary it prints for a person instead: the launch digest, policy and IDs signed, the ID (and',
        'author) key digests, the sizes, and where --id-block-file / --id-auth-file were written.',
        'idKeyDigest is the ID_KEY_DIGEST every attestation report of the guest carries.',
        "The policy defaults to QEMU's 0x30000; give the guest's (`sevsup showcmd` or its record shows it),",
        'or the launch fails. Policies sevsup refuses (bit 17 clear, reserved bits, migration agent) are refused.',
        '',
        'Exit codes: 0 printed; 2 usage error; 3 unreadable key file.',
      ].join('\n'),
    )
    .action(async (opts: IdBlockCliOptions) => {
      const { runIdBlock } = await import('../actions/id-block.js');
      await runIdBlock(opts);
    });
}
