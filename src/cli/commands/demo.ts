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
    .description('launch, attest and run a demo SEV guest on the simulated platform, explaining each step')
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
        "Needs what `bash scripts/setup.sh` installs (QEMU, libvirt's virt-qemu-sev-validate, the demo kernel,",
        'initrd and test firmware in .cache/test-assets/). Everything runs in a temporary directory on the',
        'SIMULATED SEV platform: no SEV hardware, nothing encrypted, not a security boundary.',
        '',
        'Steps: start the supervisor; the guest is measured and held paused; print the measurement record;',
        "verify it off-host with virt-qemu-sev-validate and the owner's TIK; build and inject a launch secret;",
        "approve; try migrate and dump-guest-memory through the QMP proxy (both refused); show the guest's",
        'serial console; stop everything.',
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
