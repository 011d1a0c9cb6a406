// Rules that look at more than one line of a VM config: unknown and duplicate keys, the two SEV
// spellings, and combinations (kernel-hashes needs a kernel, hold needs SEV, clashing devices).
// Must not: parse single values (vm-values.ts). Pure: no I/O.
import { SupervisorError } from '../errors.js';
import type { RelayIdentity, RelaySpec, VmSpec } from './vm-spec.js';
import { indexKeyValueLines, quoteForMessage, type KeyValueLine } from './kv-file.js';
import { didYouMean } from './suggest.js';
import {
  ATTEST_TIMEOUT_SECONDS,
  FIRMWARE_STORE_KEYS,
  isKnownKey,
  KNOWN_KEYS_TEXT,
  MAX_DEVICE_INDEX,
  RELAY_KEYS,
  SEV_KEYS,
  SUGGESTED_KEYS,
} from './vm-keys.js';
import { configError } from './vm-values.js';

/** Structural checks in file order: unknown keys, both SEV spellings, duplicates. */
export function checkKeys(file: string, entries: readonly KeyValueLine[]): Map<string, KeyValueLine> {
  let sevEntry: KeyValueLine | undefined;
  for (const entry of entries) {
    const device = /^(disk|net)[0-9]+$/.exec(entry.key);
    if (device !== null && !isKnownKey(entry.key)) {
      const kind = device[1] ?? '';
      throw configError('SUP_ERR_CONFIG_UNKNOWN_KEY', file, entry, `unknown key; use ${kind}0…${kind}${MAX_DEVICE_INDEX}`);
    }
    const refused = FIRMWARE_STORE_KEYS[entry.key];
    if (refused !== undefined) throw configError('SUP_ERR_CONFIG_UNSUPPORTED', file, entry, refused);
    if (!isKnownKey(entry.key)) {
      throw configError(
        'SUP_ERR_CONFIG_UNKNOWN_KEY',
        file,
        entry,
        `unknown key${didYouMean(entry.key, SUGGESTED_KEYS)}; known keys: ${KNOWN_KEYS_TEXT}`,
      );
    }
    if ((SEV_KEYS as readonly string[]).includes(entry.key)) {
      if (sevEntry !== undefined && sevEntry.key !== entry.key) {
        throw configError(
          'SUP_ERR_CONFIG_CONFLICT',
          file,
          entry,
          `conflicts with ${sevEntry.key} at line ${sevEntry.line}; amd_sev and amd-sev are two spellings of one key, keep one line`,
        );
      }
      sevEntry ??= entry;
    }
  }
  return indexKeyValueLines(entries, file);
}

/** Checks that need several keys; `keys` holds every line by key. */
export function checkCombinations(file: string, keys: ReadonlyMap<string, KeyValueLine>, spec: VmSpec): void {
  const sevEntry = keys.get('amd_sev') ?? keys.get('amd-sev');
  const missing = (entry: KeyValueLine, problem: string): SupervisorError =>
    configError('SUP_ERR_CONFIG_MISSING_KEY', file, entry, problem);

  if (sevEntry !== undefined && spec.sev?.kernelHashes === true && spec.kernel === undefined) {
    throw missing(sevEntry, "kernel-hashes=1 needs a 'kernel' key; without a kernel QEMU silently measures nothing");
  }
  for (const key of ['initrd', 'cmdline'] as const) {
    const entry = keys.get(key);
    if (entry !== undefined && spec.kernel === undefined) {
      throw missing(entry, `needs a 'kernel' key; QEMU uses ${key === 'initrd' ? 'an initrd' : 'a cmdline'} only with a kernel`);
    }
  }
  const attestEntry = keys.get('attest');
  if (attestEntry !== undefined && spec.attest !== 'none' && spec.sev === undefined) {
    throw missing(attestEntry, `'${spec.attest}' needs an amd_sev line; without SEV there is no launch measurement to attest`);
  }
  const launchEntry = keys.get('launch');
  if (launchEntry !== undefined && spec.sev === undefined) {
    throw missing(launchEntry, 'needs an amd_sev line; a launch session is for an SEV guest');
  }
  if (launchEntry !== undefined && spec.sev?.type === 'snp') {
    throw configError(
      'SUP_ERR_CONFIG_CONFLICT',
      file,
      launchEntry,
      "SEV-SNP has no launch session (QEMU's sev-snp-guest has no dh-cert-file or session-file, and no secret is " +
        'injected): the owner checks the attestation report instead; remove the launch line, and pin the launch with an ' +
        'ID block (`sevsup id-block`) if the platform itself should refuse a different launch',
    );
  }
  const holdTimeoutEntry = keys.get('hold-timeout');
  if (holdTimeoutEntry !== undefined && spec.attest === 'none') {
    throw missing(holdTimeoutEntry, "needs 'attest: hold' or 'attest: relay'; only a held guest waits");
  }
  const denyEntry = keys.get('qmp-deny');
  const allowEntry = keys.get('qmp-allow');
  const both = spec.qmpDeny.find((name) => spec.qmpAllow.includes(name));
  if (denyEntry !== undefined && allowEntry !== undefined && both !== undefined) {
    throw configError(
      'SUP_ERR_CONFIG_CONFLICT',
      file,
      denyEntry,
      `'${both}' is also in qmp-allow at line ${allowEntry.line}; list it in one of them`,
    );
  }
  checkDeviceClashes(file, keys, spec);
}

/** Two disks on one file, or two NICs with one MAC or tap device, fail inside QEMU: say so here. */
function checkDeviceClashes(file: string, keys: ReadonlyMap<string, KeyValueLine>, spec: VmSpec): void {
  const clash = (key: string, what: string, otherKey: string): SupervisorError => {
    const entry = keys.get(key);
    return entry === undefined
      ? new SupervisorError('SUP_ERR_INTERNAL', `${key} has no line`)
      : configError('SUP_ERR_CONFIG_CONFLICT', file, entry, `${what} is already used by ${otherKey}; give each its own`);
  };
  const files = new Map<string, number>();
  for (const disk of spec.disks) {
    const other = files.get(disk.file);
    if (other !== undefined) throw clash(`disk${disk.index}`, `file ${quoteForMessage(disk.file)}`, `disk${other}`);
    files.set(disk.file, disk.index);
  }
  const seen = new Map<string, number>();
  for (const net of spec.nets) {
    for (const [label, value] of [
      ['mac', net.mac],
      ['ifname', net.kind === 'tap' ? net.ifname : undefined],
    ] as const) {
      if (value === undefined) continue;
      const other = seen.get(`${label}=${value}`);
      if (other !== undefined) throw clash(`net${net.index}`, `${label} ${value}`, `net${other}`);
      seen.set(`${label}=${value}`, net.index);
    }
  }
}

/** The relay keys' values as read (paths resolved), before they are combined. */
export interface RelayParts {
  readonly url?: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly tokenFile?: string;
  readonly timeoutSeconds?: number;
}

/**
 * `attest: relay` and its keys → RelaySpec: the URL and CA are required, and the host's identity is
 * exactly one of a certificate with its key (mutual TLS) or a token file. Relay keys without
 * `attest: relay` are refused (a key that does nothing is a config that lies).
 * @throws SUP_ERR_CONFIG_MISSING_KEY, SUP_ERR_CONFIG_CONFLICT naming the line.
 */
export function relaySpecFrom(
  file: string,
  keys: ReadonlyMap<string, KeyValueLine>,
  attest: VmSpec['attest'],
  parts: RelayParts,
): RelaySpec | undefined {
  if (attest !== 'relay') {
    for (const key of RELAY_KEYS) {
      const entry = keys.get(key);
      if (entry !== undefined) throw configError('SUP_ERR_CONFIG_MISSING_KEY', file, entry, "needs 'attest: relay'");
    }
    return undefined;
  }
  const attestEntry = keys.get('attest');
  if (attestEntry === undefined) throw new SupervisorError('SUP_ERR_INTERNAL', 'attest: relay without its line');
  const need = (what: string): SupervisorError => configError('SUP_ERR_CONFIG_MISSING_KEY', file, attestEntry, `'relay' needs ${what}`);
  if (parts.url === undefined) throw need("'attest-url' (the owner's service, https)");
  if (parts.ca === undefined) throw need("'attest-ca' (the owner's CA certificate, PEM; the system store is never used)");
  const certEntry = keys.get('attest-cert');
  const keyEntry = keys.get('attest-key');
  const tokenEntry = keys.get('attest-token-file');
  if (tokenEntry !== undefined && (certEntry ?? keyEntry) !== undefined) {
    const other = certEntry ?? keyEntry;
    throw configError(
      'SUP_ERR_CONFIG_CONFLICT',
      file,
      tokenEntry,
      `conflicts with ${other?.key ?? 'attest-cert'} at line ${other?.line ?? 0}; the host proves itself by a client certificate or a token, give one`,
    );
  }
  let identity: RelayIdentity;
  if (parts.tokenFile !== undefined) {
    identity = { kind: 'token', tokenFile: parts.tokenFile };
  } else if (parts.cert !== undefined && parts.key !== undefined) {
    identity = { kind: 'mtls', cert: parts.cert, key: parts.key };
  } else if (certEntry !== undefined || keyEntry !== undefined) {
    const given = certEntry ?? keyEntry;
    if (given === undefined) throw new SupervisorError('SUP_ERR_INTERNAL', 'relay identity without its line');
    throw configError(
      'SUP_ERR_CONFIG_MISSING_KEY',
      file,
      given,
      "needs both 'attest-cert' and 'attest-key' (the client certificate and its private key)",
    );
  } else {
    throw need("the host's identity: 'attest-cert' and 'attest-key' (mutual TLS) or 'attest-token-file' (bearer token)");
  }
  return { url: parts.url, ca: parts.ca, identity, timeoutSeconds: parts.timeoutSeconds ?? ATTEST_TIMEOUT_SECONDS.default };
}
