// `sevsup daemon`: the per-host supervisor under systemd. Declares the options only (every daemon
// config key is also a flag, and flags win); cli/actions/daemon.ts (loaded on use) runs it.
// Must not: import the daemon or the config parser eagerly (this file loads on every `sevsup …`).
import type { Command } from 'commander';
import { DAEMON_KEY_DOCS } from '../../config/daemon-keys.js';

export interface DaemonCliOptions {
  readonly config?: string;
  readonly [flag: string]: string | undefined;
}

export function registerDaemon(program: Command): void {
  const cmd = program
    .command('daemon')
    .description('supervise every guest of this host: autostart, control API, re-attach after restarts')
    .option('--config <file>', 'daemon config file, `key: value` lines (default /etc/sevsup/sevsup.conf; may be absent)');
  for (const doc of DAEMON_KEY_DOCS) cmd.option(`--${doc.key} <${doc.value}>`, doc.help);
  cmd
    .addHelpText(
      'after',
      [
        '',
        'SIGHUP reloads the VM configs (new ones appear, removed ones are forgotten once stopped, changed',
        'ones apply at the next start; running guests are untouched). SIGTERM stops taking requests, then',
        'keeps every guest running (on-shutdown: keep) or shuts them down (on-shutdown: shutdown).',
        'Guests survive a daemon crash or SIGKILL and are re-attached when it starts again.',
        '',
        'Exit codes: 0 clean shutdown; 2 usage; 3 bad daemon config; 4 bad host caps;',
        '1 another daemon serves the socket; 70 internal error. See docs/daemon.md.',
      ].join('\n'),
    )
    .action(async (opts: DaemonCliOptions) => {
      const { runDaemonCommand } = await import('../actions/daemon.js');
      await runDaemonCommand(opts);
    });
}
