// `sevsup attest <vm>`: the guest owner's decision on a held guest, over the daemon's control
// socket or a `sevsup run` guest's own control socket.
// Declares the options only; cli/actions/attest.ts (loaded on use) talks to the socket.
import type { Command } from 'commander';

export interface AttestCliOptions {
  readonly approve?: boolean;
  readonly reject?: boolean;
  readonly injectSecret?: readonly string[];
  readonly gpa?: string;
  readonly force?: boolean;
  readonly runDir?: string;
  readonly socket?: string;
  readonly json?: boolean;
}

export function registerAttest(program: Command): void {
  program
    .command('attest')
    .description('approve, reject or inject a launch secret into a guest held for attestation')
    .argument('<vm>', 'VM name')
    .option('--approve', 'resume the held guest')
    .option('--reject', 'destroy the held guest; it never runs')
    .option('--inject-secret <files...>', 'HEADER_B64_FILE SECRET_B64_FILE: inject a launch secret (repeatable before --approve)')
    .option('--gpa <address>', "guest physical address for the secret (decimal or 0x hex; default: the firmware's secret area)")
    .option('--force', "approve or inject into a guest relayed to its owner's service (attest: relay); logged as an override")
    .option('--run-dir <dir>', '`sevsup run` guest: use <dir>/<vm>/control.sock')
    .option(
      '--socket <path>',
      "control socket (default: $SEVSUP_SOCKET; else /run/sevsup/<vm>/control.sock when a `sevsup run` guest has one; else the daemon's /run/sevsup/sevsup.sock)",
    )
    .option('--json', 'print the API reply as JSON')
    .addHelpText(
      'after',
      [
        '',
        'The secret files hold base64 text, as `virt-qemu-sev-validate --secret-header F --secret-payload F`',
        'writes them; their contents never appear on the command line or in logs.',
        '',
        'Exit codes: 0 done; 2 usage; 7 not held, refused by the platform, no secret area (give --gpa), or the',
        "guest is relayed to its owner's service (SUP_ERR_ATTEST_RELAYED: only --reject, or --force);",
        '8 control socket unreachable; 9 no such VM on that socket; 5/6 the guest failed while resuming.',
      ].join('\n'),
    )
    .action(async (vm: string, opts: AttestCliOptions) => {
      const { runAttest } = await import('../actions/attest.js');
      await runAttest(vm, opts);
    });
}
