// `sevsup secret build`: the guest owner's LAUNCH_SECRET packet (header + encrypted secret table)
// for QEMU's sev-inject-launch-secret, bound to one launch's measurement. Must not: import the
// implementation eagerly (cli/actions/secret.ts is loaded on use) or anything beyond commander.
import type { Command } from 'commander';
import { collect } from './args.js';

export interface SecretBuildCliOptions {
  readonly tik?: string;
  readonly tek?: string;
  readonly tk?: string;
  readonly measurement?: string;
  readonly record?: string;
  readonly secret: readonly string[];
  readonly headerOut: string;
  readonly payloadOut: string;
  readonly firmware?: string;
  readonly json?: boolean;
}

export function registerSecret(program: Command): void {
  const secret = program.command('secret').description('build launch secrets for a guest held in launch-secret (sev-inject-launch-secret)');
  secret
    .command('build')
    .description('encrypt secrets under your TEK and bind them to the launch measurement with your TIK')
    .option('--tik <file>', 'your transport integrity key (16 bytes)')
    .option('--tek <file>', 'your transport encryption key (16 bytes)')
    .option('--tk <file>', 'TEK ‖ TIK in one 32-byte file (instead of --tik/--tek)')
    .option('--measurement <base64>', 'the launch measurement (query-sev-launch-measure), after you verified it')
    .option('--record <file>', 'take the measurement from a sevsup measurement record instead')
    .requiredOption(
      '--secret <guid-or-alias:file>',
      'a secret: GUID (or alias luks-key) and the file holding its bytes (repeatable)',
      collect((v: string) => v),
    )
    .requiredOption('--header-out <file>', 'where to write the packet header (base64, as QMP packet-header takes it)')
    .requiredOption('--payload-out <file>', 'where to write the encrypted secret table (base64, as QMP secret takes it)')
    .option('--firmware <file>', "check that the table fits the firmware's launch-secret area")
    .option('--json', 'print what was written as JSON (never the secrets)')
    .addHelpText(
      'after',
      [
        '',
        "The secret table is the one OVMF and Linux's efi_secret read (GUID 1e74f542-71dd-4d66-963e-ef4287ff173b,",
        'entries GUID ‖ u32 length ‖ data, then 16 - length % 16 zero bytes, as libvirt pads it),',
        'encrypted with AES-128-CTR under the TEK; the header is flags ‖ IV ‖ HMAC(TIK, 0x01 ‖ flags ‖ IV ‖',
        'lengths ‖ ciphertext ‖ measurement MAC), so the platform accepts it only for this launch.',
        'Verify the measurement first (`sevsup verify`): this command does not. Then inject while the guest',
        'is paused in launch-secret: `sevsup attest <vm> --inject-secret HEADER_FILE PAYLOAD_FILE`.',
        'Files are written 0600; the secrets never appear in output.',
        'Exit codes: 0 written; 2 usage error (bad keys, measurement, secret spec or size);',
        '3 unreadable firmware; 4 not a measurement record; 5 the record is not in launch-secret.',
      ].join('\n'),
    )
    .action(async (opts: SecretBuildCliOptions) => {
      const { runSecretBuild } = await import('../actions/secret.js');
      await runSecretBuild(opts);
    });
}
