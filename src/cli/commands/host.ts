// `sevsup host`: what sevsup knows about this host's SEV support, and where each fact came from.
// Must not: import the implementation eagerly (cli/actions/host.ts is loaded on use).
import type { Command } from 'commander';
import { DEFAULT_CACHE_FILE, DEFAULT_RUN_DIR } from '../../paths.js';

export interface HostCliOptions {
  readonly json?: boolean;
  readonly hostCaps?: string;
  readonly write?: string;
  readonly qemu?: string;
  /** commander's `--no-probe`: false when given. */
  readonly probe: boolean;
  readonly live?: boolean;
  readonly cache?: string;
  readonly runDir?: string;
}

export function registerHost(program: Command): void {
  program
    .command('host')
    .description('show SEV / SEV-ES / SEV-SNP support on this host, with reasons and sources')
    .option('--json', 'print the capabilities as JSON')
    .option('--host-caps <file>', 'read this capabilities file instead of the usual lookup')
    .option('--write <file>', 'write the seed-compatible JSON there (probes live unless --host-caps is given)')
    .option('--qemu <path>', 'QEMU binary for the probe and its cache key', 'qemu-system-x86_64')
    .option('--no-probe', 'read capability files only: no cache, no live probe')
    .option('--live', 'ignore files and cache: probe now, asking QEMU even when the other checks already say no')
    .option('--cache <file>', `probe cache file (default: ${DEFAULT_CACHE_FILE})`)
    .option('--run-dir <dir>', `the daemon's run directory, for its SNP certificate status (default: ${DEFAULT_RUN_DIR})`)
    .addHelpText(
      'after',
      [
        '',
        `Lookup order: --host-caps FILE; sevsup's probe cache (${DEFAULT_CACHE_FILE}, used only`,
        'for the same QEMU binary, version and boot); /run/qemu-server/hw-params.json (the seed);',
        '/run/qemu-server/host-hw-capabilities.json (Proxmox); a live probe of CPUID, /proc/cpuinfo,',
        'kvm_amd parameters, /dev/sev and QEMU query-sev-capabilities.',
        '',
        "When a daemon keeps the host's SNP certificates, their state (<run-dir>/snp-certs.json) is shown too.",
        '',
        "A boot-time unit can run `sevsup host --write /run/qemu-server/hw-params.json`, like Proxmox's",
        'pve-query-machine-capabilities.service.',
        '',
        'Exit codes: 0 answered (even when SEV is not supported); 2 usage; 4 invalid or unwritable',
        'capabilities file.',
      ].join('\n'),
    )
    .action(async (opts: HostCliOptions) => {
      const { runHost } = await import('../actions/host.js');
      await runHost(opts);
    });
}
