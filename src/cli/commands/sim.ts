// `sevsup sim …`: requests that exist only on the SIMULATED platform (`--platform sim`), for
// development, tests and demos. On hardware they are refused: real QEMU has no such command.
import type { Command } from 'commander';
import { DEFAULT_RUN_DIR } from '../../paths.js';

export interface SimSnpReportCliOptions {
  readonly reportData: string;
  readonly out: string;
  readonly certsOut?: string;
  readonly runDir: string;
  readonly socket?: string;
  readonly timeout: string;
}

export function registerSim(program: Command): void {
  const sim = program.command('sim').description('SIMULATED platform only: requests a real SEV host does not have');
  sim
    .command('snp-report')
    .description("SIMULATED platform only: the attestation report an SNP guest would get for REPORT_DATA, signed by the sim's VCEK")
    .argument('<vm>', 'VM name')
    .requiredOption('--report-data <hex>', 'the 64-byte REPORT_DATA (your nonce), 128 hex digits')
    .requiredOption('--out <file>', 'where to write the 0x4A0-byte report (as snpguest report writes it)')
    .option('--certs-out <dir>', 'also write the chain as snpguest lays it out: ark.pem, ask.pem, vcek.pem')
    .option('--run-dir <dir>', 'sevsup run directory', DEFAULT_RUN_DIR)
    .option('--socket <path>', 'QMP socket path (default: <run-dir>/<vm>/qmp.sock, the proxy)')
    .option('--timeout <ms>', 'reply timeout in milliseconds', '30000')
    .addHelpText(
      'after',
      [
        '',
        'On SNP hardware the guest itself asks its PSP (snpguest report); a guest on the simulated',
        'platform runs under TCG and cannot, so the simulator answers the sim-only QMP request',
        "x-sevsup-sim-snp-report on the guest's behalf. The chain is the simulator's own, every subject",
        "labelled SIMULATED: AMD's pinned roots never verify it, so verify with its ark.pem pinned:",
        '  sevsup verify --report report.bin --certs DIR --ark DIR/ark.pem --expected-measurement … --host-data …',
        '',
        "The guest's proxy refuses x- commands (default deny): a simulated VM whose owner wants this",
        'names it in its config: qmp-allow: x-sevsup-sim-snp-report.',
        '',
        'Exit codes: 0 written; 10 not the simulated platform, or refused; 5 the request failed',
        '(e.g. the guest has not run yet); 8 the socket is unreachable; 2 usage error.',
      ].join('\n'),
    )
    .action(async (vm: string, opts: SimSnpReportCliOptions) => {
      const { runSimSnpReport } = await import('../actions/sim-snp-report.js');
      await runSimSnpReport(vm, opts);
    });
}
