// `sevsup qmp` and `sevsup monitor`: one QMP command, or an interactive line mode, through a
// guest's filtering proxy socket (<run-dir>/<vm>/qmp.sock). Never QEMU's private monitor.
import type { Command } from 'commander';
import { DEFAULT_RUN_DIR } from '../../paths.js';

export function registerQmp(program: Command): void {
  program
    .command('qmp')
    .description("send one QMP command through a guest's proxy socket and print the reply")
    .argument('<vm>', 'VM name')
    .argument('<command>', 'a QMP command as JSON (\'{"execute":"query-status"}\') or just its name (query-status)')
    .option('--run-dir <dir>', 'sevsup run directory', DEFAULT_RUN_DIR)
    .option('--socket <path>', 'proxy socket path (default: <run-dir>/<vm>/qmp.sock)')
    .option('--timeout <ms>', 'reply timeout in milliseconds', '30000')
    .option('--json', 'print the raw reply as one JSON line')
    .addHelpText(
      'after',
      [
        '',
        'Refused commands never reach QEMU; they get a QMP error "<command> refused by sevsup: <reason>".',
        '',
        'Exit codes: 0 the command returned; 10 refused by sevsup or QEMU returned an error;',
        '8 the proxy socket is unreachable or closed the connection; 2 usage error.',
      ].join('\n'),
    )
    .action(async (vm: string, command: string, opts: QmpCliOptions) => {
      const { runQmp } = await import('../actions/qmp.js');
      await runQmp(vm, command, opts);
    });

  program
    .command('monitor')
    .description("interactive QMP line mode through a guest's proxy socket (events are shown as they arrive)")
    .argument('<vm>', 'VM name')
    .option('--run-dir <dir>', 'sevsup run directory', DEFAULT_RUN_DIR)
    .option('--socket <path>', 'proxy socket path (default: <run-dir>/<vm>/qmp.sock)')
    .addHelpText(
      'after',
      '\nType a command name (query-status), a name and JSON arguments (qom-list {"path":"/"}), or a full JSON command.\nWorks through a pipe too (no prompt then). Ctrl-D (end of input) quits; exit code 8 if the proxy closes the connection.',
    )
    .action(async (vm: string, opts: MonitorCliOptions) => {
      const { runMonitor } = await import('../actions/qmp.js');
      await runMonitor(vm, opts);
    });
}

export interface QmpCliOptions {
  readonly runDir: string;
  readonly socket?: string;
  readonly timeout: string;
  readonly json?: boolean;
}

export interface MonitorCliOptions {
  readonly runDir: string;
  readonly socket?: string;
}
