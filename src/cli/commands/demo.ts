// `sevsup demo`: one SEV guest end to end on the simulated platform, narrated for newcomers.
// Declares the options only; cli/actions/demo.ts (loaded on use) calls demo/demo.ts, which runs it.
import { Option, type Command } from 'commander';

export interface DemoCliOptions {
  readonly keep?: boolean;
  readonly via: 'auto' | 'daemon' | 'run';
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('launch, attest and run a demo SEV guest and SEV-SNP guest on the simulated platform, explaining each step')
    .option('--keep', 'keep the temporary work directory (config, keys, record, serial log) for inspection')
    .addOption(
      new Option('--via <supervisor>', 'drive the guest through `sevsup daemon` or `sevsup run` (auto: the daemon when it is built)')
        .choices(['auto', 'daemon', 'run'])
        .default('auto'),
    )
    .addHelpText(
      'after',
      [
        '',
        "Needs what `bash scripts/setup.sh` installs (QEMU, libvirt's virt-qemu-sev-validate, Debian's OVMF,",
        'openssl, and in .cache/test-assets/ the demo kernel, initrd, test firmware and the simulated SNP chain).',
        'Everything runs in a temporary directory on the SIMULATED SEV platform: no SEV hardware, nothing',
        'encrypted, not a security boundary.',
        '',
        "SEV: the owner makes the TIK/TEK and a simulated launch session; with the daemon (default) the owner's",
        'service (sevsup owner serve, TLS on loopback) gets the held guest from the relay, injects a secret and',
        'approves, and rejects a second launch with a changed command line; with --via run the owner injects and',
        "approves by hand. The record is verified off-host with virt-qemu-sev-validate and the owner's TIK;",
        "migrate and dump-guest-memory are refused by the QMP proxy; the guest's serial console is shown.",
        "SEV-SNP: the owner's expected digest pinned in an ID block, host data; the launch record; a report for",
        'a fresh nonce verified offline, a tampered one refused; a changed command line refused by the platform.',
        'Then everything is stopped.',
        '',
        'Exit codes: 0 every step did what it should; non-zero with the failed step named otherwise',
        '(130 after Ctrl-C). Nothing is left running on any exit.',
      ].join('\n'),
    )
    .action(async (opts: DemoCliOptions) => {
      const { runDemoCommand } = await import('../actions/demo.js');
      await runDemoCommand(opts);
    });
}
