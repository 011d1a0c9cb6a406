// Implementation of `sevsup showcmd`: config → host caps → argv (seed checks) → preflight → print.
// Owns: the printed shapes (shell-quoted, one option per line; or a JSON array). Must not: start
// QEMU, create the run directory, or contain argv rules (qemu/argv.ts) or file checks (vm/preflight.ts).
import { loadVmConfig } from '../../config/vm-config.js';
import { preflightWithQemuCheck } from '../../guest/qemu-check.js';
import type { HostCaps } from '../../host/host-caps.js';
import { DEFAULT_QEMU_BINARY } from '../../host/qemu-probe.js';
import { resolveHostCaps } from '../../host/resolve.js';
import { SIMULATED_HOST_CAPS } from '../../host/simulated.js';
import { vmRunPaths } from '../../process/run-dir.js';
import { buildQemuCommandLine, type ArgGroup } from '../../qemu/argv.js';
import { preflight } from '../../vm/preflight.js';
import type { ShowcmdCliOptions } from '../commands/showcmd.js';
import { printJson } from '../output.js';
import { shellQuote } from '../../util/shell-quote.js';

/** `binary \` then each option with its arguments on its own indented line. */
export function formatCommandLine(binary: string, groups: readonly ArgGroup[]): string {
  const lines = [shellQuote(binary), ...groups.map((group) => `  ${group.map(shellQuote).join(' ')}`)];
  return `${lines.join(' \\\n')}\n`;
}

export async function runShowcmd(ref: string, opts: ShowcmdCliOptions): Promise<void> {
  const spec = await loadVmConfig(ref, opts.vmDir === undefined ? {} : { vmDir: opts.vmDir });
  // The VM's own `qemu:` key wins over --qemu (with the simulated platform the simulator runs QEMU).
  const binary = (opts.platform === 'sim' ? undefined : spec.qemu) ?? opts.qemu ?? DEFAULT_QEMU_BINARY;
  // As `sevsup run` and the daemon check it: an SNP guest's QEMU first, then its files. The chain
  // read from the disks' headers is part of the command line (qemu/devices.ts).
  const checked = await preflightWithQemuCheck(opts.platform === 'sim' ? 'simulated' : 'hardware', binary, preflight)(spec);
  const caps: HostCaps =
    opts.platform === 'sim'
      ? SIMULATED_HOST_CAPS
      : await resolveHostCaps({ qemu: binary, ...(opts.hostCaps === undefined ? {} : { file: opts.hostCaps }) });
  const paths = vmRunPaths(opts.runDir, spec.name);
  const groups = buildQemuCommandLine({
    spec,
    caps,
    paths: {
      monitorSocket: paths.monitorSocket,
      pidFile: paths.pidFile,
      ...(spec.serial === 'file' ? { serialLog: paths.serialLog } : {}),
    },
    options: {
      ...(opts.sandbox === true ? { sandbox: true } : {}),
      ...(opts.runas === undefined ? {} : { runAs: opts.runas }),
    },
    backingChains: checked.disks,
    ...(checked.snp === undefined ? {} : { snp: checked.snp }),
  });
  if (opts.json === true) printJson([binary, ...groups.flat()]);
  else process.stdout.write(formatCommandLine(binary, groups));
}
