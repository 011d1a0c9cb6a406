// The vocabulary of a VM config file: its keys, limits, defaults and property-string schemas.
// Owns: what each key accepts and why each limit is what it is. Pure data: no parsing, no I/O.
// Must not: hold the rules that combine keys (vm-config.ts) or QEMU's syntax (qemu/argv.ts).
import type { PropertySchema } from './propstring.js';

/**
 * VM names become directory and socket names (`<run-dir>/<name>/qmp.sock`): a letter or digit,
 * then letters, digits, `.`, `_`, `-`; 63 characters at most (a socket path has ~107 bytes).
 */
export const VM_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
export const VM_NAME_ALLOWED = "1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit";

/** OVMF itself needs about 32 MiB to reach the guest; 4 TiB is beyond any host sevsup runs on. */
export const MEMORY_MIB = { min: 32, max: 4 * 1024 * 1024, default: 1024 } as const;

/** vCPUs: SEV-ES measures one VMSA per vCPU; 256 keeps that and QEMU's q35 limits comfortable. */
export const CORES = { min: 1, max: 256, default: 1 } as const;

/**
 * Default `-cpu`: an EPYC model, as SEV hosts (all EPYC) and kata's SEV guests use. A named model,
 * not `host`, so the SEV-ES VMSA (which records family/model/stepping) is reproducible by the
 * guest owner; `EPYC-v3` is the newest versioned EPYC model that QEMU 7.2 and 10 both know (7.2
 * lacks EPYC-v4), and every SEV-capable EPYC (Naples and later) can run it.
 */
export const DEFAULT_CPU_MODEL = 'EPYC-v3';
/** QEMU CPU model names: no commas, so no `+flag` lists sneak into `-cpu`. */
export const CPU_MODEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const CPU_MODEL_ALLOWED = "a QEMU CPU model name such as EPYC-v3 (letters, digits, '.', '_', '-')";

/** A held guest waits at most a day: longer is a guest nobody is coming back for. */
export const HOLD_TIMEOUT_SECONDS = { min: 1, max: 24 * 60 * 60 } as const;

/** Per relay attempt: the owner's service answers in milliseconds; 5 minutes is a hung peer. */
export const ATTEST_TIMEOUT_SECONDS = { min: 1, max: 300, default: 10 } as const;

/** The `attest: relay` keys, in the order messages list them; each needs `attest: relay`. */
export const RELAY_KEYS = ['attest-url', 'attest-ca', 'attest-cert', 'attest-key', 'attest-token-file', 'attest-timeout'] as const;

/** A URL is one line of a config; 2 KiB is far beyond any real one. */
export const MAX_ATTEST_URL_CHARS = 2048;

/** QAPI command names, including downstream `__org.example_cmd` forms. */
export const QMP_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
export const QMP_LIST_ALLOWED = "a comma-separated list of QMP command names (letters, digits, '_', '.', '-')";

/** `disk0`…`disk9` and `net0`…`net9`. */
export const MAX_DEVICE_INDEX = 9;
export const DISK_KEY_PATTERN = /^disk([0-9])$/;
export const NET_KEY_PATTERN = /^net([0-9])$/;

export const SEV_KEYS = ['amd_sev', 'amd-sev'] as const;

/** Every key in the order formatVmConfig writes them and messages list them. */
export const KNOWN_KEYS_TEXT =
  'name, memory, cores, cpu, bios, firmware, kernel, initrd, cmdline, disk0…disk9, net0…net9, launch, attest, ' +
  'attest-url, attest-ca, attest-cert, attest-key, attest-token-file, attest-timeout, hold-timeout, autostart, serial, qmp-allow, qmp-deny, qemu, amd_sev (or amd-sev)';

/** Keys other than `diskN`/`netN`, in the order messages list them. */
export const SIMPLE_KEYS: readonly string[] = [
  'name',
  'memory',
  'cores',
  'cpu',
  'bios',
  'firmware',
  'kernel',
  'initrd',
  'cmdline',
  'launch',
  'attest',
  ...RELAY_KEYS,
  'hold-timeout',
  'autostart',
  'serial',
  'qmp-allow',
  'qmp-deny',
  'qemu',
  ...SEV_KEYS,
];

/** `qemu:` takes a path (with a slash; relative to the config file) or a name looked up on PATH. */
export const QEMU_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
export const QEMU_ALLOWED = 'a QEMU binary: a path, or a name on PATH such as qemu-system-x86_64';

/** Keys offered in "did you mean" suggestions. */
export const SUGGESTED_KEYS: readonly string[] = [
  ...SIMPLE_KEYS,
  ...Array.from({ length: MAX_DEVICE_INDEX + 1 }, (_, i) => `disk${i}`),
  ...Array.from({ length: MAX_DEVICE_INDEX + 1 }, (_, i) => `net${i}`),
];

/**
 * Proxmox keys for a writable firmware store (pflash VARS), refused with why: sevsup loads OVMF
 * stateless with `-bios` (qemu/firmware.ts), and SEV-SNP cannot use pflash at all (snp-facts §1.2).
 */
export const FIRMWARE_STORE_KEYS: Readonly<Record<string, string>> = {
  efidisk0:
    'sevsup has no EFI vars disk (pflash VARS store): it loads OVMF stateless with -bios, because a VARS store is ' +
    'never measured, so what it holds could change the guest behind its measurement; and SEV-SNP cannot use one at ' +
    'all: QEMU copies SNP firmware into encrypted guest_memfd memory, which KVM cannot map read-only as pflash ' +
    '(Proxmox refuses it for SNP too); remove the line (the firmware key names the one image, a combined OVMF.fd)',
};

export function isKnownKey(key: string): boolean {
  return SIMPLE_KEYS.includes(key) || DISK_KEY_PATTERN.test(key) || NET_KEY_PATTERN.test(key);
}

/** Keys whose value is one word from a closed list. */
export const ENUM_VALUES = {
  bios: ['ovmf', 'seabios'],
  attest: ['hold', 'none', 'relay'],
  serial: ['none', 'file'],
} as const;

const BOOLEAN = { kind: 'boolean' } as const;

/** Paths inside property strings: property strings have no escaping, so no commas. */
const PATH = { kind: 'string', pattern: /^[^,]+$/, allowed: 'a file path without commas' } as const;

/** 32 bytes (host data): 44 base64 characters or 64 hex digits. */
const BYTES32 = {
  kind: 'string',
  pattern: /^(?:[A-Za-z0-9+/]{43}=|[0-9A-Fa-f]{64})$/,
  allowed: '32 bytes as 44 base64 characters or 64 hex digits',
} as const;
/** 16 bytes (guest-visible workarounds): 24 base64 characters or 32 hex digits. */
const BYTES16 = {
  kind: 'string',
  pattern: /^(?:[A-Za-z0-9+/]{22}==|[0-9A-Fa-f]{32})$/,
  allowed: '16 bytes as 24 base64 characters or 32 hex digits',
} as const;

/**
 * The SEV line (`amd_sev:` from the seed, `amd-sev:` from shipped Proxmox). One schema for all
 * types; vm-values.ts refuses properties that do not belong to the type given (`SNP_ONLY_PROPERTIES`,
 * `LEGACY_ONLY_PROPERTIES`).
 */
export const SEV_SCHEMA = {
  type: {
    type: { kind: 'enum', values: ['std', 'es', 'snp'] },
    defaultKey: true,
    required: true,
  },
  nodbg: { type: BOOLEAN, aliases: ['no-debug'] },
  noks: { type: BOOLEAN, aliases: ['no-key-sharing'] },
  'kernel-hashes': { type: BOOLEAN },
  // C-bit positions are physical-address bits; every SEV CPU so far uses 47 or 51.
  cbitpos: { type: { kind: 'integer', min: 32, max: 63 } },
  // QEMU refuses 0 ("reduced_phys_bits check failed"); hosts report 1, 5 or 6.
  'reduced-phys-bits': { type: { kind: 'integer', min: 1, max: 63 } },
  // SEV-SNP (snp-facts §2.2 for the policy bits, §1.1 for QEMU's properties).
  'allow-smt': { type: BOOLEAN },
  'single-socket': { type: BOOLEAN },
  'cxl-allow': { type: BOOLEAN },
  'aes-256-xts': { type: BOOLEAN },
  'rapl-dis': { type: BOOLEAN },
  'ciphertext-hiding': { type: BOOLEAN },
  'page-swap-disable': { type: BOOLEAN },
  abi: { type: { kind: 'string', pattern: /^[0-9]{1,3}\.[0-9]{1,3}$/, allowed: 'MAJOR.MINOR, each 0 to 255 (e.g. 1.55)' } },
  'host-data': { type: BYTES32 },
  'host-data-file': { type: PATH },
  'id-block': { type: PATH },
  'id-auth': { type: PATH },
  'author-key': { type: BOOLEAN },
  vcek: { type: BOOLEAN },
  'guest-visible-workarounds': { type: BYTES16 },
  'migrate-ma': {
    type: BOOLEAN,
    aliases: ['migration-agent'],
    unsupported:
      'an SNP migration agent (policy bit 18) would let the guest be migrated; sevsup never migrates an ' +
      "encrypted guest, as it always sets SEV's NOSEND",
  },
} as const satisfies PropertySchema;

/** Properties only `type=snp` takes. */
export const SNP_ONLY_PROPERTIES: readonly string[] = [
  'allow-smt',
  'single-socket',
  'cxl-allow',
  'aes-256-xts',
  'rapl-dis',
  'ciphertext-hiding',
  'page-swap-disable',
  'abi',
  'host-data',
  'host-data-file',
  'id-block',
  'id-auth',
  'author-key',
  'vcek',
  'guest-visible-workarounds',
];

/** Properties `type=snp` refuses, with why. */
export const LEGACY_ONLY_PROPERTIES: Readonly<Record<string, string>> = {
  noks:
    'SEV-SNP has no key-sharing policy bit: every SNP guest always gets its own memory key ' +
    '(Proxmox ignores no-key-sharing for SNP; sevsup refuses it so the config says what happens)',
};

/** Spellings shipped Proxmox uses; formatVmConfig prints them on an `amd-sev:` line. */
export const PROXMOX_SEV_SPELLINGS: readonly string[] = ['no-debug', 'no-key-sharing'];

export const FIRMWARE_SCHEMA = {
  file: { type: PATH, defaultKey: true, required: true },
  sha256: { type: { kind: 'string', pattern: /^[0-9a-fA-F]{64}$/, allowed: 'a sha256 digest of 64 hex digits' } },
} as const satisfies PropertySchema;

export const DISK_SCHEMA = {
  file: { type: PATH, defaultKey: true, required: true },
  format: { type: { kind: 'enum', values: ['qcow2', 'raw'] } },
  readonly: { type: BOOLEAN },
} as const satisfies PropertySchema;

/** File extensions that tell a disk's format when `format=` is absent. */
export const DISK_FORMAT_BY_EXTENSION: Readonly<Record<string, 'qcow2' | 'raw'>> = {
  '.qcow2': 'qcow2',
  '.raw': 'raw',
  '.img': 'raw',
};

export const NET_SCHEMA = {
  type: { type: { kind: 'enum', values: ['user', 'tap'] }, defaultKey: true, required: true },
  // Linux IFNAMSIZ is 16 including the NUL; the charset keeps names shell- and path-safe.
  ifname: {
    type: {
      kind: 'string',
      pattern: /^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$/,
      allowed: "an interface name of 1 to 15 letters, digits, '.', '_' or '-'",
    },
  },
  mac: {
    type: {
      kind: 'string',
      pattern: /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/,
      allowed: 'a MAC address such as 52:54:00:12:34:56',
    },
  },
} as const satisfies PropertySchema;

export const LAUNCH_SCHEMA = {
  'dh-cert': { type: PATH, required: true },
  session: { type: PATH, required: true },
} as const satisfies PropertySchema;
