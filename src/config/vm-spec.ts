// The typed, validated form of one VM config file (`<name>.conf`): what every other module reads.
// Owns: the VmSpec shape only. Must not: parse text, touch the filesystem or know QEMU syntax.
// Produced by config/vm-config.ts; consumed by qemu/argv.ts, vm/lifecycle.ts, the proxy and the API.
import type { SnpPolicyConfig } from '../sev/snp-policy.js';

/** SEV generation: `std` (SEV), `es` (SEV-ES) or `snp` (SEV-SNP). */
export type SevType = 'std' | 'es' | 'snp';

/** What every SEV line has, whatever its type. */
interface SevCommonSpec {
  /** `kernel-hashes=on`: QEMU measures kernel, initrd and cmdline into the firmware's table. */
  readonly kernelHashes: boolean;
  /** Overrides of the host's values; absent means "take them from host capabilities". */
  readonly cbitpos?: number;
  readonly reducedPhysBits?: number;
  /** Which spelling the file used: the seed's `amd_sev` or shipped Proxmox's `amd-sev`. */
  readonly key: 'amd_sev' | 'amd-sev';
}

/** SEV and SEV-ES (`type=std`, `type=es`): the 32-bit policy of the seed. */
export interface LegacySevSpec extends SevCommonSpec {
  readonly type: 'std' | 'es';
  /** Policy bit 0 (NODBG). */
  readonly nodbg: boolean;
  /** Policy bit 1 (NOKS). */
  readonly noks: boolean;
}

/** A value given inline (base64, canonical) or as a file the launch reads. */
export type InlineOrFile = { readonly kind: 'value'; readonly base64: string } | { readonly kind: 'file'; readonly path: string };

/**
 * SEV-SNP (`type=snp`): Proxmox's options (`allow-smt`, `no-debug`, `kernel-hashes`) and the rest of
 * the launch libvirt has. Booleans are in the config's sense; sev/snp-policy.ts maps them to bits.
 */
export interface SnpSpec extends SevCommonSpec, SnpPolicyConfig {
  readonly type: 'snp';
  /** 32 bytes copied into every attestation report (`host-data=` or `host-data-file=`). */
  readonly hostData?: InlineOrFile;
  /** Files holding the 96-byte ID block and the ID auth (`sevsup id-block` writes them); both or neither. */
  readonly idBlock?: string;
  readonly idAuth?: string;
  /** `author-key=1`: the ID auth carries an author key (QEMU `author-key-enabled`). */
  readonly authorKey: boolean;
  /** `vcek=0`: the guest may sign reports only with a VLEK (QEMU `vcek-disabled`). Default 1. */
  readonly vcek: boolean;
  /** 16 bytes, base64 (canonical). */
  readonly guestVisibleWorkarounds?: string;
}

export type SevSpec = LegacySevSpec | SnpSpec;

export interface FirmwareSpec {
  readonly path: string;
  /** Lower-case hex sha256 the image must have (`firmware: file=PATH,sha256=HEX`). */
  readonly sha256?: string;
}

export interface DiskSpec {
  /** N of `diskN`. */
  readonly index: number;
  readonly file: string;
  readonly format: 'qcow2' | 'raw';
  readonly readonly: boolean;
}

export type NetSpec =
  | { readonly index: number; readonly kind: 'user'; readonly mac?: string }
  | { readonly index: number; readonly kind: 'tap'; readonly ifname: string; readonly mac?: string };

/** The guest owner's launch session files (`launch: dh-cert=PATH,session=PATH`). */
export interface LaunchSpec {
  readonly dhCert: string;
  readonly session: string;
}

/** How the host proves itself to the guest owner's service: a client certificate, or a bearer token. */
export type RelayIdentity =
  | { readonly kind: 'mtls'; readonly cert: string; readonly key: string }
  | { readonly kind: 'token'; readonly tokenFile: string };

/**
 * `attest: relay` (docs/relay-protocol.md): the daemon sends the held guest's record to the owner's
 * service and acts on its answer. Paths are absolute; the files are read at each hold, not here.
 */
export interface RelaySpec {
  /** `attest-url`: https only; POSTed to exactly, no path appended. */
  readonly url: string;
  /** `attest-ca`: the owner's CA (PEM), the only trust anchor (the system store is never used). */
  readonly ca: string;
  readonly identity: RelayIdentity;
  /** `attest-timeout`: seconds per attempt (connect to the whole answer read). */
  readonly timeoutSeconds: number;
}

export interface VmSpec {
  readonly name: string;
  /** Absolute path of the file this spec came from (for messages). */
  readonly source: string;
  /** MiB. */
  readonly memory: number;
  readonly cores: number;
  /** QEMU CPU model (`-cpu`). */
  readonly cpu: string;
  readonly bios: 'ovmf' | 'seabios';
  readonly firmware?: FirmwareSpec;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  readonly disks: readonly DiskSpec[];
  readonly nets: readonly NetSpec[];
  readonly launch?: LaunchSpec;
  /**
   * `hold`: stay paused after measuring until the owner approves; `relay`: held too, and the
   * daemon asks the owner's service (`relay`) instead of waiting for a person.
   */
  readonly attest: 'hold' | 'none' | 'relay';
  /** With `attest: relay` only. */
  readonly relay?: RelaySpec;
  /** Seconds a held guest waits before it is rejected; absent: the daemon's default. */
  readonly holdTimeout?: number;
  readonly autostart: boolean;
  /** Where the guest's serial console goes: `none`, or `file` (`<run-dir>/<vm>/serial.log`). */
  readonly serial: 'none' | 'file';
  readonly sev?: SevSpec;
  /** `qemu:` the QEMU binary for this VM (absolute path, or a name on PATH); absent: the daemon's. */
  readonly qemu?: string;
  /** Extra QMP commands this VM's proxy allows by exact name (`qmp-allow: a,b`). */
  readonly qmpAllow: readonly string[];
  /** Extra QMP commands this VM's proxy refuses by exact name (`qmp-deny: a,b`). */
  readonly qmpDeny: readonly string[];
}
