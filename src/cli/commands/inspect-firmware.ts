// `sevsup inspect-firmware FILE`: what QEMU will read from a firmware image's OVMF footer table.
// Must not: import the implementation eagerly (cli/actions/inspect-firmware.ts is loaded on use).
import type { Command } from 'commander';

export interface InspectFirmwareCliOptions {
  readonly json?: boolean;
}

export function registerInspectFirmware(program: Command): void {
  program
    .command('inspect-firmware')
    .description("show a firmware image's OVMF footer table: SEV-ES reset address, kernel-hashes and secret areas")
    .argument('<file>', 'firmware image (e.g. /usr/share/ovmf/OVMF.fd, or an OVMF AmdSev build)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      [
        '',
        "Reads the table exactly as QEMU does and says, with QEMU's own words, whether kernel-hashes=on,",
        'SEV-ES and sev-inject-launch-secret without a gpa would work with this image.',
        'Exit codes: 0 inspected (whatever the verdicts); 3 unreadable file or invalid footer table.',
      ].join('\n'),
    )
    .action(async (file: string, opts: InspectFirmwareCliOptions) => {
      const { runInspectFirmware } = await import('../actions/inspect-firmware.js');
      await runInspectFirmware(file, opts);
    });
}
