// The daemon's client commands: `sevsup list|status|start|stop|measurement|snapshot|migrate`.
// Declares the options only; cli/actions/guests.ts (loaded on use; it loads only the API client)
// talks to the daemon's control socket. Must not: import anything but commander's types.
import type { Command } from 'commander';

export interface GuestCliOptions {
  readonly socket?: string;
  readonly json?: boolean;
}

export interface StopCliOptions extends GuestCliOptions {
  readonly force?: boolean;
}

export interface MeasurementCliOptions extends GuestCliOptions {
  readonly all?: boolean;
  readonly record?: string;
}

export interface SnapshotCliOptions extends GuestCliOptions {
  readonly vmstate?: boolean;
}

const SOCKET_HELP = 'daemon control socket (default $SEVSUP_SOCKET, else /run/sevsup/sevsup.sock)';

/** Exit codes every client command shares (docs/daemon.md "Exit codes"). */
const EXIT_HELP = [
  '',
  'Exit codes: 0 done; 1 wrong state (e.g. not running); 2 usage or malformed request;',
  '8 the daemon socket is unreachable; 9 no such VM; 10 refused by sevsup (SEV rules);',
  '3-7 the guest failed to start (config, host, QEMU, fail-closed check, attestation); 70 internal error.',
].join('\n');

function clientCommand(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('--socket <path>', SOCKET_HELP)
    .option('--json', 'print the API reply as JSON (stable, for scripts)')
    .addHelpText('after', EXIT_HELP);
}

export function registerList(program: Command): void {
  clientCommand(program, 'list', 'list the guests the daemon knows, with their state').action(async (opts: GuestCliOptions) => {
    const { runList } = await import('../actions/guests.js');
    await runList(opts);
  });
}

export function registerStatus(program: Command): void {
  clientCommand(program, 'status', "show one guest (served from the daemon's memory: no QMP round trip)")
    .argument('<vm>', 'VM name')
    .action(async (vm: string, opts: GuestCliOptions) => {
      const { runStatus } = await import('../actions/guests.js');
      await runStatus(vm, opts);
    });
}

export function registerStart(program: Command): void {
  clientCommand(program, 'start', 'launch a guest; returns once it is held for attestation or running')
    .argument('<vm>', 'VM name')
    .action(async (vm: string, opts: GuestCliOptions) => {
      const { runStart } = await import('../actions/guests.js');
      await runStart(vm, opts);
    });
}

export function registerStop(program: Command): void {
  clientCommand(program, 'stop', 'stop a guest: ACPI powerdown, then quit, SIGTERM, SIGKILL; --force kills at once')
    .argument('<vm>', 'VM name')
    .option('--force', 'SIGKILL QEMU now (a held guest never runs either way)')
    .action(async (vm: string, opts: StopCliOptions) => {
      const { runStop } = await import('../actions/guests.js');
      await runStop(vm, opts);
    });
}

export function registerMeasurement(program: Command): void {
  clientCommand(program, 'measurement', "print the guest's launch measurement record (this launch's; --all lists past ones)")
    .argument('<vm>', 'VM name')
    .option('--all', 'list every record of this guest, oldest first')
    .option('--record <name>', 'print one past record by name (as --all lists them; "latest" for the newest)')
    .action(async (vm: string, opts: MeasurementCliOptions) => {
      const { runMeasurement } = await import('../actions/guests.js');
      await runMeasurement(vm, opts);
    });
}

export function registerSnapshot(program: Command): void {
  clientCommand(program, 'snapshot', 'take a disk-only snapshot of every qcow2 disk (running: QMP; stopped: qemu-img)')
    .argument('<vm>', 'VM name')
    .argument('<name>', 'snapshot name (a letter, then letters, digits, ".", "_", "-")')
    .option('--vmstate', 'include memory state: refused for SEV guests (memory is encrypted)')
    .action(async (vm: string, name: string, opts: SnapshotCliOptions) => {
      const { runSnapshot } = await import('../actions/guests.js');
      await runSnapshot(vm, name, opts);
    });
}

export function registerMigrate(program: Command): void {
  clientCommand(program, 'migrate', 'move a stopped guest offline: copy its config and disks to a local directory')
    .argument('<vm>', 'VM name')
    .argument('<target>', 'an absolute directory (the copy goes to <target>/<vm>/); running SEV guests are refused')
    .action(async (vm: string, target: string, opts: GuestCliOptions) => {
      const { runMigrate } = await import('../actions/guests.js');
      await runMigrate(vm, target, opts);
    });
}
