// Reads a `human-monitor-command` command line the way QEMU 7.2's HMP dispatcher does
// (monitor/hmp.c get_command_name / monitor_parse_command / hmp_compare_cmd), so the proxy
// classifies the command QEMU would actually run. Owns: the HMP name tables and alias resolution.
// Must not: decide what is allowed (qmp-policy.ts and decide.ts do), or parse arguments beyond
// splitting them off: QEMU's per-command argument parsing never changes which command runs.

/**
 * QEMU 7.2's top-level HMP commands as its `help` lists them (`.name` of hmp-commands.hx;
 * `a|b` entries are one command with aliases). Debian 12's qemu-system-x86_64, -S.
 */
export const HMP_COMMANDS_7_2: readonly string[] = [
  'announce_self',
  'balloon',
  'block_job_cancel',
  'block_job_complete',
  'block_job_pause',
  'block_job_resume',
  'block_job_set_speed',
  'block_resize',
  'block_set_io_throttle',
  'block_stream',
  'boot_set',
  'calc_dirty_rate',
  'cancel_vcpu_dirty_limit',
  'change',
  'chardev-add',
  'chardev-change',
  'chardev-remove',
  'chardev-send-break',
  'client_migrate_info',
  'closefd',
  'commit',
  'cont|c',
  'cpu',
  'delvm',
  'device_add',
  'device_del',
  'drive_add',
  'drive_backup',
  'drive_del',
  'drive_mirror',
  'dump-guest-memory',
  'dumpdtb',
  'eject',
  'exit_preconfig',
  'expire_password',
  'gdbserver',
  'getfd',
  'gpa2hpa',
  'gpa2hva',
  'gva2gpa',
  'help|?',
  'hostfwd_add',
  'hostfwd_remove',
  'i',
  'info',
  'loadvm',
  'log',
  'logfile',
  'mce',
  'memsave',
  'migrate',
  'migrate_cancel',
  'migrate_continue',
  'migrate_incoming',
  'migrate_pause',
  'migrate_recover',
  'migrate_set_capability',
  'migrate_set_parameter',
  'migrate_start_postcopy',
  'mouse_button',
  'mouse_move',
  'mouse_set',
  'nbd_server_add',
  'nbd_server_remove',
  'nbd_server_start',
  'nbd_server_stop',
  'netdev_add',
  'netdev_del',
  'nmi',
  'o',
  'object_add',
  'object_del',
  'pcie_aer_inject_error',
  'pmemsave',
  'print|p',
  'qemu-io',
  'qom-get',
  'qom-list',
  'qom-set',
  'quit|q',
  'replay_break',
  'replay_delete_break',
  'replay_seek',
  'ringbuf_read',
  'ringbuf_write',
  'savevm',
  'screendump',
  'sendkey',
  'set_link',
  'set_password',
  'set_vcpu_dirty_limit',
  'singlestep',
  'snapshot_blkdev',
  'snapshot_blkdev_internal',
  'snapshot_delete_blkdev_internal',
  'stopcapture',
  'stop|s',
  'sum',
  'sync-profile',
  'system_powerdown',
  'system_reset',
  'system_wakeup',
  'trace-event',
  'watchdog_action',
  'wavcapture',
  'x',
  'x_colo_lost_heartbeat',
  'xp',
];

/** QEMU 7.2's `info` sub-commands (hmp-commands-info.hx), as `info` lists them. */
export const HMP_INFO_COMMANDS_7_2: readonly string[] = [
  'balloon',
  'block',
  'block-jobs',
  'blockstats',
  'capture',
  'chardev',
  'cpus',
  'dirty_rate',
  'dump',
  'history',
  'hotpluggable-cpus',
  'iothreads',
  'irq',
  'jit',
  'kvm',
  'lapic',
  'mem',
  'memdev',
  'memory-devices',
  'memory_size_summary',
  'mice',
  'migrate',
  'migrate_capabilities',
  'migrate_parameters',
  'mtree',
  'name',
  'network',
  'numa',
  'opcount',
  'pci',
  'pic',
  'profile',
  'qdm',
  'qom-tree',
  'qtree',
  'ramblock',
  'rdma',
  'registers',
  'replay',
  'rocker',
  'rocker-of-dpa-flows',
  'rocker-of-dpa-groups',
  'rocker-ports',
  'roms',
  'sev',
  'sgx',
  'snapshots',
  'spice',
  'stats',
  'status',
  'sync-profile',
  'tlb',
  'tpm',
  'trace-events',
  'usb',
  'usbhost',
  'usernet',
  'uuid',
  'vcpu_dirty_limit',
  'version',
  'virtio',
  'virtio-queue-element',
  'virtio-queue-status',
  'virtio-status',
  'virtio-vhost-queue-status',
  'vm-generation-id',
  'vnc',
];

/** The one HMP command with a sub-command table in 7.2 (and 10.x). */
export const HMP_INFO = 'info';

/** get_command_name copies the name into `char cmdname[256]`: longer names are cut to 255 bytes. */
const MAX_HMP_NAME_BYTES = 255;

/** The canonical (first long) spelling of every alias in one `a|b` entry. */
function aliasTable(entries: readonly string[]): ReadonlyMap<string, string> {
  const table = new Map<string, string>();
  for (const entry of entries) {
    const names = entry.split('|');
    const canonical = names.reduce((a, b) => (b.length > a.length ? b : a));
    for (const name of names) table.set(name, canonical);
  }
  return table;
}

const TOP_LEVEL = aliasTable(HMP_COMMANDS_7_2);
const INFO_TABLE = aliasTable(HMP_INFO_COMMANDS_7_2);

export interface HmpCommandLine {
  /**
   * The command QEMU would dispatch, aliases resolved (`c` → `cont`); the word as typed when it
   * is not a 7.2 command; null for a blank line (QEMU then does nothing).
   */
  readonly name: string | null;
  /** For `info`: the sub-command, resolved the same way; null when `info` stands alone. */
  readonly sub: string | null;
  /** The rest of the line after the name (and sub-command), leading whitespace skipped. */
  readonly args: string;
  /** Whether QEMU 7.2 knows the name (and the sub-command, if any). */
  readonly known: boolean;
}

/**
 * qemu_isspace is isspace() on a byte: in every locale QEMU runs in, only these six. Bytes of
 * non-ASCII characters never count (checked against the real 7.2: U+00A0 and U+0085 do not
 * separate words; \v and \f do).
 */
export function isHmpSpace(code: number): boolean {
  return code === 32 || (code >= 9 && code <= 13);
}

function skipSpaces(line: string, pos: number): number {
  while (pos < line.length && isHmpSpace(line.charCodeAt(pos))) pos++;
  return pos;
}

/** A name ends at end of line, '/' (as in `x/10x addr`) or whitespace. */
function nameEnd(line: string, pos: number): number {
  while (pos < line.length) {
    const c = line.charCodeAt(pos);
    if (c === 47 /* / */ || isHmpSpace(c)) break;
    pos++;
  }
  return pos;
}

function truncateToBytes(name: string, maxBytes: number): string {
  let bytes = 0;
  let end = 0;
  for (const ch of name) {
    const size = Buffer.byteLength(ch, 'utf8');
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += ch.length;
  }
  return name.slice(0, end);
}

function readName(line: string, pos: number): { word: string; end: number } {
  const end = nameEnd(line, pos);
  const word = line.slice(pos, end);
  // A UTF-16 unit is at most 3 UTF-8 bytes: short words cannot need cutting.
  const long = word.length * 3 > MAX_HMP_NAME_BYTES && Buffer.byteLength(word, 'utf8') > MAX_HMP_NAME_BYTES;
  return { word: long ? truncateToBytes(word, MAX_HMP_NAME_BYTES) : word, end };
}

/**
 * Splits an HMP command line into the command QEMU 7.2 would run and its arguments.
 * Names are case-sensitive and `-`/`_` are distinct, exactly as QEMU compares them; U+0000 is an
 * ordinary character (QEMU's JSON parser turns it into the two bytes C0 80, not a terminator).
 */
export function parseHmpCommandLine(line: string): HmpCommandLine {
  let pos = skipSpaces(line, 0);
  if (pos >= line.length) return { name: null, sub: null, args: '', known: false };
  const top = readName(line, pos);
  const resolved = TOP_LEVEL.get(top.word);
  pos = skipSpaces(line, top.end);
  if (resolved === undefined) return { name: top.word, sub: null, args: line.slice(pos), known: false };
  if (resolved !== HMP_INFO || pos >= line.length) {
    return { name: resolved, sub: null, args: line.slice(pos), known: true };
  }
  // monitor_parse_command recurses into the sub-table whenever anything follows `info`, so
  // `info/status` asks for the sub-command "" (unknown), not `info` itself.
  const sub = readName(line, pos);
  const subResolved = INFO_TABLE.get(sub.word);
  const rest = line.slice(skipSpaces(line, sub.end));
  return { name: HMP_INFO, sub: subResolved ?? sub.word, args: rest, known: subResolved !== undefined };
}
