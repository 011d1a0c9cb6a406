// The daemon config's vocabulary: each key of `/etc/sevsup/sevsup.conf`, which is also a
// `sevsup daemon --<key>` flag. Pure data with no imports, so the CLI's command table can list
// the flags without loading the config parser (every `sevsup status` loads the command table).
// Must not: validate (config/daemon-config.ts does).

/**
 * How long after its first `cont` an SEV-SNP guest's QEMU exiting is a failed launch (ms). The PSP's
 * refusals (metadata, CPUID page, policy, ID block) make QEMU exit within milliseconds of `cont`;
 * three seconds leaves room for a loaded host's scheduling while an approved guest is reported
 * running soon after; a guest that ends later ran and stopped. The floor keeps the check meaningful
 * (a window of a few milliseconds would report as running a guest the PSP is refusing right then);
 * the ceiling catches seconds typed as milliseconds (the guest stays `resuming` for the window).
 * Here, with the key, because the daemon config, `sevsup run` and the lifecycle all read it.
 */
export const SNP_FIRST_RUN_WINDOW_MS = { min: 100, max: 60_000, default: 3_000 } as const;

/**
 * How long a graceful stop waits for a running guest to power itself off (ACPI) before QEMU is told
 * to quit (s); 0 skips the request. The default is the launcher's (POWERDOWN_TIMEOUT_MS, 10 s); the
 * ceiling catches milliseconds typed as seconds. Here, with the key, because the daemon config and
 * `sevsup run --powerdown-timeout` both read it.
 */
export const POWERDOWN_TIMEOUT_SECONDS = { min: 0, max: 3600, default: 10 } as const;

export interface DaemonKeyDoc {
  readonly key: string;
  /** Placeholder in `--key <value>`. */
  readonly value: string;
  readonly help: string;
}

export const DAEMON_KEY_DOCS = [
  { key: 'vm-dir', value: 'dir', help: 'directory of <vm>.conf files (default /etc/sevsup/vms)' },
  { key: 'run-dir', value: 'dir', help: 'per-guest sockets, pid and state files (default /run/sevsup)' },
  { key: 'state-dir', value: 'dir', help: 'measurement records (default /var/lib/sevsup)' },
  { key: 'socket', value: 'path', help: 'control API socket, mode 0660 (default /run/sevsup/sevsup.sock)' },
  { key: 'socket-group', value: 'group', help: 'group allowed on the control and QMP proxy sockets (name or gid)' },
  { key: 'qemu', value: 'path', help: 'QEMU binary (with --platform sim: the QEMU the simulator runs)' },
  {
    key: 'qemu-sandbox',
    value: 'bool',
    help: 'run QEMU under its seccomp sandbox (-sandbox on,obsolete=deny,spawn=deny,…): 1/0 (default 0)',
  },
  { key: 'qemu-user', value: 'user', help: 'user QEMU drops to after start-up (-runas); default: stays root' },
  { key: 'platform', value: 'name', help: 'hardware (real /dev/sev) or sim (simulated SEV platform) (default hardware)' },
  { key: 'host-caps', value: 'file', help: 'host capabilities file (seed hw-params.json format); skips probing' },
  { key: 'log-level', value: 'level', help: 'fatal, error, warn, info, debug, trace or silent (default info)' },
  { key: 'log-format', value: 'format', help: 'json (journald) or pretty (default json)' },
  { key: 'default-firmware', value: 'file', help: 'firmware of OVMF guests whose config has no firmware key' },
  { key: 'hold-timeout', value: 'seconds', help: 'how long a held guest waits for its owner when its config does not say (default 600)' },
  {
    key: 'snp-first-run-window',
    value: 'ms',
    help: `SEV-SNP: a QEMU exit this long after the guest's first cont is a failed launch (${SNP_FIRST_RUN_WINDOW_MS.min} to ${SNP_FIRST_RUN_WINDOW_MS.max}; default ${SNP_FIRST_RUN_WINDOW_MS.default})`,
  },
  { key: 'on-shutdown', value: 'mode', help: 'SIGTERM: keep guests running (default) or shutdown them' },
  {
    key: 'powerdown-timeout',
    value: 'seconds',
    help: `a graceful stop: how long a running guest gets to power off before QEMU is told to quit (${POWERDOWN_TIMEOUT_SECONDS.min} to ${POWERDOWN_TIMEOUT_SECONDS.max}; default ${POWERDOWN_TIMEOUT_SECONDS.default})`,
  },
  {
    key: 'refuse-debug-policy',
    value: 'bool',
    help: 'refuse guests whose SEV/SNP policy allows debugging (default 0: warn at every start)',
  },
  { key: 'metrics-listen', value: 'addr', help: 'also serve /metrics on 127.0.0.1:PORT (loopback only)' },
  {
    key: 'snp-certs',
    value: 'mode',
    help: "keep the host's SEV-SNP certificates and each SNP guest's certificate table: on, off or auto (default auto: on with snp-platform, on hardware that supports SNP, on sim with kds-url)",
  },
  {
    key: 'snp-platform',
    value: 'file',
    help: "the SNP platform's product, chip-id and reported-tcb (re-read at every refresh; needed on hardware)",
  },
  { key: 'snp-cert-cache', value: 'dir', help: 'the SNP certificate cache (default /var/cache/sevsup/snp-certs)' },
  {
    key: 'snp-certs-offline',
    value: 'bool',
    help: "never ask AMD's key server; only the cache (default 0; always 1 on the sim platform without kds-url)",
  },
  {
    key: 'snp-ark',
    value: 'file',
    help: "pin this ARK instead of AMD's: only chains rooted in it are handed to guests (a test or simulated root)",
  },
  { key: 'kds-url', value: 'url', help: "AMD's key server (default https://kdsintf.amd.com)" },
  {
    key: 'snp-certs-refresh',
    value: 'seconds',
    help: "how often the platform's reported TCB is re-read (default 300; SIGHUP also re-reads it)",
  },
  { key: 'host-id', value: 'name', help: "this host's name to guest owners' services (attest: relay) (default: the hostname)" },
] as const satisfies readonly DaemonKeyDoc[];

export type DaemonKey = (typeof DAEMON_KEY_DOCS)[number]['key'];

export const DAEMON_KEYS: readonly DaemonKey[] = DAEMON_KEY_DOCS.map((d) => d.key);
