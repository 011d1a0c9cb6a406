// `sevsup owner serve|check|session`: the guest owner's side of `attest: relay` (docs/relay-protocol.md).
// Must not: import the implementation eagerly (cli/actions/owner.ts is loaded on use) or anything beyond commander.
import type { Command } from 'commander';

export interface OwnerConfigCliOptions {
  readonly config: string;
  readonly json?: boolean;
}

export interface OwnerSessionCliOptions {
  readonly tik: string;
  readonly tek: string;
  readonly out: string;
}

export function registerOwner(program: Command): void {
  const owner = program.command('owner').description("the guest owner's attestation service, which the daemon's `attest: relay` asks");
  owner
    .command('serve')
    .description('serve relayed attestation requests over HTTPS (foreground; systemd Type=notify)')
    .requiredOption('--config <file>', 'the owner config (docs/relay-protocol.md "The owner\'s config")')
    .addHelpText(
      'after',
      [
        '',
        "Verifies each held guest's measurement with your reference inputs and TIK (as `sevsup verify`), answers",
        'approve, inject (a launch secret built as `sevsup secret build` does) or reject, and refuses a measurement it',
        'has already answered (409). Logs decisions as JSON lines on stdout, never keys or secrets.',
        'SIGTERM or SIGINT: stop accepting, finish requests in flight, exit 0.',
        'Exit codes: 0 stopped cleanly; 3 config error; 1 cannot listen or use its state file.',
      ].join('\n'),
    )
    .action(async (opts: OwnerConfigCliOptions) => {
      const { runOwnerServe } = await import('../actions/owner.js');
      await runOwnerServe(opts);
    });
  owner
    .command('check')
    .description("load the owner config and everything it names, compute each guest's expected digest, and exit")
    .requiredOption('--config <file>', 'the owner config')
    .option('--json', 'print the guests and their expected digests as JSON')
    .action(async (opts: OwnerConfigCliOptions) => {
      const { runOwnerCheck } = await import('../actions/owner.js');
      await runOwnerCheck(opts);
    });
  owner
    .command('session')
    .description('write a SIMULATED launch session (dh-cert, session) that carries your TIK and TEK to the simulated platform')
    .requiredOption('--tik <file>', 'your transport integrity key (16 bytes)')
    .requiredOption('--tek <file>', 'your transport encryption key (16 bytes)')
    .requiredOption('--out <dir>', 'directory for the files `dh-cert` and `session` (written 0600)')
    .addHelpText(
      'after',
      [
        '',
        'For `platform: sim` only: give them to the guest as `launch: dh-cert=DIR/dh-cert,session=DIR/session`.',
        'The keys are in the clear and the files say SIMULATED; on hardware make the session with sevctl, whose',
        'blobs the platform unwraps with its own key. Make fresh keys per launch, as with sevctl.',
      ].join('\n'),
    )
    .action(async (opts: OwnerSessionCliOptions) => {
      const { runOwnerSession } = await import('../actions/owner.js');
      await runOwnerSession(opts);
    });
}
