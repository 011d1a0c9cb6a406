// Every default path sevsup uses, defined once: the config files, the run, state and cache
// directories, and the daemon's socket. The CLI's option defaults, the daemon config's defaults
// and the API client all take them from here.
// Owns: those constants only. Must not: import anything, read the environment, or touch the disk
// (the per-VM paths under the run dir are process/run-dir.ts's).

/** The daemon's config file. */
export const DEFAULT_DAEMON_CONFIG_FILE = '/etc/sevsup/sevsup.conf';
/** One `<name>.conf` per VM. */
export const DEFAULT_VM_DIR = '/etc/sevsup/vms';
/** Sockets, pid files, state files: `<run-dir>/<vm>/…`. */
export const DEFAULT_RUN_DIR = '/run/sevsup';
/** Measurement records: `<state-dir>/<vm>/measurements/`. */
export const DEFAULT_STATE_DIR = '/var/lib/sevsup';
/** The daemon's control API socket. */
export const DEFAULT_DAEMON_SOCKET = '/run/sevsup/sevsup.sock';
/** The host-capabilities probe cache. */
export const DEFAULT_CACHE_FILE = '/var/cache/sevsup/host-caps.json';
/** The SEV-SNP certificate cache (VCEK, VLEK, ASK/ARK chains from AMD's KDS). */
export const DEFAULT_SNP_CERT_CACHE = '/var/cache/sevsup/snp-certs';
