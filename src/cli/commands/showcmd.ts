// `sevsup showcmd <vm>`: print the QEMU command line sevsup would run for a VM, without running it.
// Must not: import the implementation eagerly (cli/actions/showcmd.ts is loaded on use).
import { Option, type Command } from 'commander';
import { DEFAULT_RUN_DIR } from '../../paths.js';

export interface ShowcmdCliOptions {
  readonly hostCaps?: string;
  readonly vmDir?: string;
  readonly runDir: string;
  readonly json?: boolean;
  readonly platform: 'hardware' | 'sim';
  readonly qemu?: string;
  readonly sandbox?: boolean;
  readonly runas?: string;
}

export function registerShowcmd(program: Command): void {
  program
    .command('showcmd')
    .description('print the QEMU command line for a VM (checked as for a start, but nothing is started)')
    .argument('<vm>', 'VM name (<vm-dir>/<vm>.conf) or a path to a .conf file')
    .option('--host-caps <file>', 'host capabilities file to use instead of the usual lookup')
    .option('--vm-dir <dir>', 'VM config directory (default: /etc/sevsup/vms)')
    .option('--run-dir <dir>', 'sevsup run directory (monitor socket, pid file, serial log)', DEFAULT_RUN_DIR)
    .addOption(
      new Option('--platform <platform>', "hardware: the real host; sim: the simulated SEV platform's host capabilities")
        .choices(['hardware', 'sim'])
        .default('hardware'),
    )
    .option('--qemu <binary>', 'QEMU binary to show and probe (default: qemu-system-x86_64)')
    .option('--sandbox', "add QEMU's seccomp sandbox (-sandbox on,obsolete=deny,…)")
    .option('--runas <user>', 'add -runas USER (QEMU drops to this user after start-up)')
    .option('--json', 'print a JSON array of strings, the binary first')
    .addHelpText(
      'after',
      [
        '',
        'The VM config, the host capabilities and the firmware, kernel and initrd files are checked as for',
        "a start (the seed's SEV rules, a pinned firmware sha256, a kernel-hashes area QEMU accepts), then",
        'the argv is printed shell-quoted, one option per line. The guest would start paused (-S) under',
        "KVM, with QEMU's monitor on <run-dir>/<vm>/private/monitor.sock.",
        'Exit codes: 0 printed; 3 config or firmware problem; 4 host cannot run this guest (no SEV/SEV-ES);',
        '9 no such VM.',
      ].join('\n'),
    )
    .action(async (vm: string, opts: ShowcmdCliOptions) => {
      const { runShowcmd } = await import('../actions/showcmd.js');
      await runShowcmd(vm, opts);
    });
}
