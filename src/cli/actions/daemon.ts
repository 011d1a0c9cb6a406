// `sevsup daemon`: turn the parsed flags into daemon settings and run the daemon until it stops.
// Must not: hold daemon logic (daemon/main.ts does). The process exits when the daemon returns:
// detached guests (QEMU children) would otherwise keep Node's event loop alive.
import { DAEMON_KEYS, type DaemonSettings } from '../../config/daemon-config.js';
import { runDaemon } from '../../daemon/main.js';
import type { DaemonCliOptions } from '../commands/daemon.js';

export async function runDaemonCommand(opts: DaemonCliOptions): Promise<never> {
  const flags: DaemonSettings = {};
  for (const key of DAEMON_KEYS) {
    const value = opts[key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())];
    if (value !== undefined) flags[key] = value;
  }
  let code: number;
  try {
    code = await runDaemon({ ...(opts.config === undefined ? {} : { configFile: opts.config }), flags });
  } catch (error: unknown) {
    const { reportError } = await import('../report-error.js');
    code = reportError(error);
  }
  process.exit(code);
}
