// `sevsup run <vm>`: one guest in the foreground, through the fail-closed lifecycle, with its
// control socket for `sevsup attest`. Declares the options only; cli/actions/run.ts (loaded on
// use) does the work. Must not: import the lifecycle eagerly.
import { Option, type Command } from 'commander';
import { DEFAULT_RUN_DIR, DEFAULT_STATE_DIR } from '../../paths.js';

export interface RunCliOptions {
  readonly platform: 'hardware' | 'sim';
  readonly stateDir: string;
  readonly runDir: string;
  readonly vmDir?: string;
  readonly hostCaps?: string;
  readonly qemu?: string;
  readonly sandbox?: boolean;
  readonly runas?: string;
  readonly hold?: boolean;
  readonly holdTimeout?: string;
  readonly qmpTimeout?: string;
  readonly powerdownTimeout?: string;
  readonly snpFirstRunWindow?: string;
  readonly json?: boolean;
  readonly simTik?: string;
  readonly simTek?: string;
  readonly simFault?: readonly string[];
  readonly simDelayMs?: string;
  readonly simReplyShape?: '7.2' | '9.1';
  readonly logLevel: string;
}

const collect = (value: string, previous: readonly string[] = []): string[] => [...previous, value];

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run one guest in the foreground: launch paused, verify SEV, record the measurement, [hold], resume')
    .argument('<vm>', 'VM name (<vm-dir>/<vm>.conf) or a path to a .conf file')
    .addOption(
      new Option('--platform <platform>', 'hardware (real /dev/sev) or sim (simulated SEV platform)')
        .choices(['hardware', 'sim'])
        .default('hardware'),
    )
    .option('--state-dir <dir>', 'where measurement records are kept (<dir>/<vm>/measurements/)', DEFAULT_STATE_DIR)
    .option('--run-dir <dir>', 'where sockets go (<dir>/<vm>/control.sock, …)', DEFAULT_RUN_DIR)
    .option('--vm-dir <dir>', 'directory of VM configs (default /etc/sevsup/vms)')
    .option('--host-caps <file>', 'host capabilities file (seed hw-params.json format); skips probing')
    .option('--qemu <path>', 'QEMU binary (with --platform sim: the QEMU the simulator runs)')
    .option('--sandbox', 'run QEMU under its seccomp sandbox (-sandbox on,obsolete=deny,spawn=deny,…)')
    .option('--runas <user>', 'QEMU drops to this user after start-up (-runas)')
    .option('--hold', 'stay paused after measuring until `sevsup attest` approves (as "attest: hold")')
    .option(
      '--hold-timeout <seconds>',
      "reject a held guest nobody approved after this long (default: the config's hold-timeout, else 600)",
    )
    .option('--qmp-timeout <ms>', 'QMP command reply timeout (default 30000)')
    .option('--powerdown-timeout <seconds>', 'on SIGINT/SIGTERM, how long a running guest gets to power off before QEMU quits (default 10)')
    .option(
      '--snp-first-run-window <ms>',
      "SEV-SNP: a QEMU exit this long after the guest's first cont is a failed launch (100 to 60000; default 3000, as the daemon's snp-first-run-window)",
    )
    .option('--json', 'print one JSON object per line per lifecycle event')
    .option('--sim-tik <file>', 'sim: the platform TIK (16 bytes; default: generated in the run dir)')
    .option('--sim-tek <file>', 'sim: the platform TEK (16 bytes; default: generated in the run dir)')
    .option(
      '--sim-fault <name>',
      'sim: inject a fault, repeatable: wrong-policy, sev-disabled, no-measurement, crash-on-cont, slow-qmp',
      collect,
    )
    .option('--sim-delay-ms <ms>', 'sim: reply delay for the slow-qmp fault')
    .addOption(new Option('--sim-reply-shape <version>', 'sim: query-sev reply shape of QEMU 7.2 or 9.1+').choices(['7.2', '9.1']))
    .addOption(
      new Option('--log-level <level>', 'log level of the JSON log on stderr')
        .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
        .default('error'),
    )
    .addHelpText(
      'after',
      [
        '',
        'The guest starts paused (-S). sevsup then requires query-sev to say enabled, the configured policy',
        'and state launch-secret, takes the launch measurement and writes the measurement record before',
        'anything resumes it. Any failed check stops QEMU; the guest never runs.',
        'SEV-SNP (type=snp): query-sev must say sev-snp, the exact 64-bit policy and state launch-update;',
        'there is no host-side measurement, so the record holds the expected launch digest and reference',
        'values (docs/snp-attestation.md). A QEMU exiting at or just after the first cont is a failed launch.',
        'While held: sevsup attest <vm> --approve | --reject | --inject-secret HEADER_FILE SECRET_FILE',
        '(no secrets for SEV-SNP).',
        'SIGINT/SIGTERM stop the guest (powerdown, then quit; a held guest is destroyed unrun).',
        '',
        'Exit codes:',
        '  0  the guest stopped (it shut down, or was stopped by a signal)',
        '  2  usage error             3  config error        4  host lacks SEV / bad host caps',
        '  5  QEMU failed to start, its monitor failed, or it died',
        '  6  a fail-closed check failed (SEV off, policy, state, measurement, record write)',
        '  7  rejected by the guest owner, or the hold timed out',
        '  70 internal error',
      ].join('\n'),
    )
    .action(async (vm: string, opts: RunCliOptions) => {
      const { runRun } = await import('../actions/run.js');
      await runRun(vm, opts);
    });
}
