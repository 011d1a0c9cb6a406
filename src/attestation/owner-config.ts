// The guest owner's service config (`sevsup owner serve --config owner.conf`): `key: value` lines
// read by config/kv-file.ts, a service section first, then one `[guest HOST/VM]` section per guest
// (docs/relay-protocol.md "The owner's config"). Owns: the keys, their value rules and defaults,
// section splitting, path resolution (relative to the config file). Pure: no I/O; files named here
// are read by owner-load.ts. Errors name file:line and key.
import { dirname, isAbsolute, resolve } from 'node:path';
import { indexKeyValueLines, quoteForMessage, readKeyValueLines, type KeyValueLine } from '../config/kv-file.js';
import { didYouMean } from '../config/suggest.js';
import { SupervisorError, isSupervisorError } from '../errors.js';
import { decodeCpuSignature, requireCpuModel, type CpuSignatureParts } from '../sev/cpu-models.js';
import { DEFAULT_MAX_ANSWERED_PER_GUEST } from './owner-replay.js';
import { parseSecretSpec, type SecretSpec } from './secret-packet.js';

export const DEFAULT_OWNER_PATH = '/attest';
export const DEFAULT_MAX_CONNECTIONS = 64;
/** Connections one peer (remote address, and authenticated host) may hold of `max-connections`. */
export const DEFAULT_MAX_CONNECTIONS_PER_PEER = 8;
export const DEFAULT_REQUEST_TIMEOUT_SECONDS = 10;

export interface TokenEntry {
  readonly host: string;
  readonly file: string;
  readonly line: number;
}

export interface OwnerServiceConfig {
  readonly file: string;
  readonly listen: { readonly host: string; readonly port: number };
  /** The URL path requests are POSTed to. */
  readonly path: string;
  readonly tlsCert: string;
  readonly tlsKey: string;
  /** Mutual TLS: the CA of the hosts' client certificates (host identity = subject CN). */
  readonly clientCa: string | null;
  /** Bearer tokens: each file holds one host's token. */
  readonly tokens: readonly TokenEntry[];
  /** Answered measurements (replay refusal), rewritten atomically. */
  readonly stateFile: string;
  readonly maxConnections: number;
  /** Of those, per remote address and per authenticated host (one peer cannot take them all). */
  readonly maxConnectionsPerPeer: number;
  /** Answered launches remembered per guest; past it that guest's new launches are refused. */
  readonly maxAnsweredPerGuest: number;
  readonly requestTimeoutSeconds: number;
  /**
   * GET /metrics, for the scrapers named here only (hosts are never allowed: the counters say how
   * other hosts' launches went): client-certificate CNs under `client-ca`, and/or a bearer token
   * file. Null: no metrics endpoint.
   */
  readonly metrics: { readonly clients: readonly string[]; readonly tokenFile: string | null } | null;
  readonly guests: readonly GuestConfig[];
}

export type SevReference =
  | {
      readonly kind: 'inputs';
      readonly firmware: string;
      readonly kernel: string | null;
      readonly initrd: string | null;
      readonly cmdline: string | null;
      /** SEV-ES only. */
      readonly vcpus: number | null;
      readonly cpu: CpuSignatureParts | null;
      readonly vmsaInit: 'legacy' | 'init2';
      readonly sevFeatures: bigint;
    }
  | { readonly kind: 'digest'; readonly digest: Buffer };

interface GuestBase {
  readonly host: string;
  readonly vm: string;
  /** Line of the section header, for messages. */
  readonly line: number;
}

export interface SevGuestConfig extends GuestBase {
  readonly type: 'sev' | 'sev-es';
  readonly reference: SevReference;
  readonly policies: readonly number[];
  readonly minApi: { readonly major: number; readonly minor: number } | null;
  readonly buildIds: readonly number[] | null;
  readonly tik: string;
  /** Needed when secrets are given. */
  readonly tek: string | null;
  readonly secrets: readonly SecretSpec[];
  readonly lines: Readonly<Record<string, number>>;
}

export interface SnpGuestConfig extends GuestBase {
  readonly type: 'snp';
  /** The expected SHA-384 launch digest. */
  readonly digest: Buffer;
  readonly policy: bigint;
  readonly hostData: Buffer | null;
  readonly idKeyDigest: Buffer | null;
}

export type GuestConfig = SevGuestConfig | SnpGuestConfig;

const SERVICE_KEYS = [
  'listen',
  'path',
  'tls-cert',
  'tls-key',
  'client-ca',
  'token',
  'state-file',
  'max-connections',
  'max-connections-per-peer',
  'max-answered',
  'request-timeout',
  'metrics',
  'metrics-client',
  'metrics-token',
] as const;
const GUEST_KEYS = [
  'type',
  'firmware',
  'kernel',
  'initrd',
  'cmdline',
  'vcpus',
  'cpu',
  'vmsa-init',
  'sev-features',
  'expected-digest',
  'policy',
  'min-api',
  'build-ids',
  'tik',
  'tek',
  'secret',
  'snp-digest',
  'snp-policy',
  'host-data',
  'id-key-digest',
] as const;
/** Keys that may be given more than once. */
const REPEATABLE = new Set(['token', 'secret', 'metrics-client']);
const SNP_KEYS = new Set(['snp-digest', 'snp-policy', 'host-data', 'id-key-digest']);
const SEV_ONLY_KEYS = GUEST_KEYS.filter((k) => !SNP_KEYS.has(k) && k !== 'type');

/** Host ids and VM names: what a hostname and sevsup's VM names use. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const SECTION = /^\[\s*guest\s+([^/\s\]]+)\/([^\s\]]+)\s*\]$/;

class Lines {
  constructor(
    readonly file: string,
    readonly byKey: Map<string, KeyValueLine>,
    readonly repeated: Map<string, KeyValueLine[]>,
  ) {}

  bad(e: KeyValueLine, problem: string): SupervisorError {
    return new SupervisorError('SUP_ERR_CONFIG_BAD_VALUE', `${this.file}:${e.line}: ${e.key}: ${problem}`, {
      details: { file: this.file, line: e.line, key: e.key },
    });
  }

  get(key: string): KeyValueLine | undefined {
    return this.byKey.get(key);
  }

  path(key: string): string | null {
    const e = this.byKey.get(key);
    return e === undefined ? null : resolvePath(this.file, e.value);
  }
}

function resolvePath(file: string, value: string): string {
  return isAbsolute(value) ? value : resolve(dirname(file), value);
}

/**
 * Parse an owner config's text.
 * @throws SUP_ERR_CONFIG_SYNTAX, _DUPLICATE_KEY, _UNKNOWN_KEY, _BAD_VALUE, _MISSING_KEY, _CONFLICT,
 *   each naming `file:line` and the key.
 */
export function parseOwnerConfig(text: string, file: string): OwnerServiceConfig {
  const rawLines = text.split('\n');
  // Sections: the header lines, and for each part a copy of the text with every other line blanked,
  // so kv-file.ts reports the real line numbers.
  const headers: { index: number; host: string; vm: string }[] = [];
  rawLines.forEach((raw, index) => {
    const t = raw.trim();
    if (!t.startsWith('[')) return;
    const m = SECTION.exec(t);
    if (m === null || !NAME.test(m[1] ?? '') || !NAME.test(m[2] ?? '')) {
      throw new SupervisorError(
        'SUP_ERR_CONFIG_SYNTAX',
        `${file}:${index + 1}: ${quoteForMessage(t)} is not a section header: write [guest HOST/VM] (letters, digits, '.', '_', '-')`,
        { details: { file, line: index + 1 } },
      );
    }
    headers.push({ index, host: m[1] ?? '', vm: m[2] ?? '' });
  });
  const part = (from: number, to: number): string => rawLines.map((l, i) => (i >= from && i < to ? l : '')).join('\n');
  const service = readSection(part(0, headers[0]?.index ?? rawLines.length), file, SERVICE_KEYS);
  const guests: GuestConfig[] = [];
  const seen = new Map<string, number>();
  headers.forEach((h, n) => {
    const id = `${h.host}/${h.vm}`;
    const first = seen.get(id);
    if (first !== undefined) {
      throw new SupervisorError(
        'SUP_ERR_CONFIG_DUPLICATE_KEY',
        `${file}:${h.index + 1}: [guest ${id}] is already defined at line ${first}`,
        {
          details: { file, line: h.index + 1 },
        },
      );
    }
    seen.set(id, h.index + 1);
    const lines = readSection(part(h.index + 1, headers[n + 1]?.index ?? rawLines.length), file, GUEST_KEYS);
    guests.push(parseGuest(lines, { host: h.host, vm: h.vm, line: h.index + 1 }));
  });
  return parseService(service, guests);
}

function readSection(text: string, file: string, known: readonly string[]): Lines {
  const entries = readKeyValueLines(text, file);
  for (const e of entries) {
    if (!known.includes(e.key)) {
      throw new SupervisorError(
        'SUP_ERR_CONFIG_UNKNOWN_KEY',
        `${file}:${e.line}: unknown key '${e.key}'${didYouMean(e.key, known)}${known === GUEST_KEYS ? '' : ' (guest keys go under a [guest HOST/VM] header)'}`,
        { details: { file, line: e.line, key: e.key } },
      );
    }
  }
  const repeated = new Map<string, KeyValueLine[]>();
  for (const e of entries.filter((x) => REPEATABLE.has(x.key))) repeated.set(e.key, [...(repeated.get(e.key) ?? []), e]);
  return new Lines(
    file,
    indexKeyValueLines(
      entries.filter((x) => !REPEATABLE.has(x.key)),
      file,
    ),
    repeated,
  );
}

function missing(file: string, line: number, key: string, why: string): SupervisorError {
  return new SupervisorError('SUP_ERR_CONFIG_MISSING_KEY', `${file}:${line}: ${key} is required ${why}`, {
    details: { file, line, key },
  });
}

function parseService(s: Lines, guests: GuestConfig[]): OwnerServiceConfig {
  const file = s.file;
  const listenEntry = s.get('listen');
  const listen = listenEntry === undefined ? { host: '127.0.0.1', port: 8443 } : parseListen(s, listenEntry);
  const pathEntry = s.get('path');
  if (pathEntry !== undefined && !/^\/[A-Za-z0-9._~/-]*$/.test(pathEntry.value)) {
    throw s.bad(pathEntry, 'expected a URL path such as /attest');
  }
  const need = (key: string): string => {
    const p = s.path(key);
    if (p === null) throw missing(file, 1, key, 'in the service section (before the first [guest …])');
    return p;
  };
  const tokens = (s.repeated.get('token') ?? []).map((e) => {
    const at = e.value.indexOf(':');
    const host = at < 0 ? '' : e.value.slice(0, at);
    const path = at < 0 ? '' : e.value.slice(at + 1);
    if (!NAME.test(host) || path === '') throw s.bad(e, "expected HOST:TOKEN-FILE (the file holds that host's bearer token)");
    return { host, file: resolvePath(file, path), line: e.line };
  });
  const hosts = new Map<string, number>();
  for (const t of tokens) {
    const first = hosts.get(t.host);
    if (first !== undefined) throw s.bad({ key: 'token', value: '', line: t.line }, `host ${t.host} already has a token (line ${first})`);
    hosts.set(t.host, t.line);
  }
  const clientCa = s.path('client-ca');
  if (clientCa === null && tokens.length === 0) {
    throw missing(file, 1, 'client-ca or token', 'to identify hosts: mutual TLS (client-ca), bearer tokens (token: HOST:FILE), or both');
  }
  const int = (key: string, dflt: number, min: number, max: number): number => {
    const e = s.get(key);
    if (e === undefined) return dflt;
    if (!/^\d+$/.test(e.value) || Number(e.value) < min || Number(e.value) > max)
      throw s.bad(e, `expected an integer from ${min} to ${max}`);
    return Number(e.value);
  };
  const metrics = parseMetrics(s, clientCa, new Set(hosts.keys()));
  if (guests.length === 0) throw missing(file, 1, '[guest HOST/VM]', ': at least one guest section');
  return {
    file,
    listen,
    path: pathEntry?.value ?? DEFAULT_OWNER_PATH,
    tlsCert: need('tls-cert'),
    tlsKey: need('tls-key'),
    clientCa,
    tokens,
    stateFile: need('state-file'),
    maxConnections: int('max-connections', DEFAULT_MAX_CONNECTIONS, 1, 65535),
    maxConnectionsPerPeer: int('max-connections-per-peer', DEFAULT_MAX_CONNECTIONS_PER_PEER, 1, 65535),
    maxAnsweredPerGuest: int('max-answered', DEFAULT_MAX_ANSWERED_PER_GUEST, 1, 1_000_000),
    requestTimeoutSeconds: int('request-timeout', DEFAULT_REQUEST_TIMEOUT_SECONDS, 1, 300),
    metrics,
    guests,
  };
}

/**
 * `metrics`, `metrics-client` (repeatable CN) and `metrics-token` (a file): a scraper's own
 * credentials, as Prometheus exporters do (a separate identity, never a host's). `metrics: on`
 * without them is refused (nobody could read it, or everyone was meant); naming a scraper turns
 * metrics on unless `metrics: off`. A scraper CN that is also a host with a token is refused: one
 * identity, one role.
 */
function parseMetrics(s: Lines, clientCa: string | null, tokenHosts: ReadonlySet<string>): OwnerServiceConfig['metrics'] {
  const entry = s.get('metrics');
  if (entry !== undefined && !['0', '1', 'on', 'off', 'yes', 'no'].includes(entry.value)) throw s.bad(entry, 'expected on or off');
  const off = entry !== undefined && ['0', 'off', 'no'].includes(entry.value);
  const clientLines = s.repeated.get('metrics-client') ?? [];
  for (const e of clientLines) {
    if (!NAME.test(e.value)) throw s.bad(e, "expected the scraper's client certificate CN (letters, digits, '.', '_', '-')");
    if (clientCa === null) throw s.bad(e, 'needs client-ca (the scraper proves its CN with a client certificate)');
    if (tokenHosts.has(e.value)) throw s.bad(e, `${e.value} is a host (it has a token); a scraper needs an identity of its own`);
  }
  const clients = clientLines.map((e) => e.value);
  const tokenFile = s.path('metrics-token');
  if (off) return null;
  if (clients.length === 0 && tokenFile === null) {
    if (entry !== undefined && !off) {
      throw s.bad(entry, 'metrics are for a scraper, not for hosts: name it with metrics-client: CN and/or metrics-token: FILE');
    }
    return null;
  }
  return { clients, tokenFile };
}

function parseListen(s: Lines, e: KeyValueLine): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(e.value);
  const port = Number(m?.[3]);
  if (m === null || !(port >= 0 && port <= 65535))
    throw s.bad(e, 'expected HOST:PORT, e.g. 127.0.0.1:8443 or [::1]:8443 (port 0: any free port)');
  return { host: m[1] ?? m[2] ?? '', port };
}

function parseGuest(s: Lines, base: GuestBase): GuestConfig {
  const typeEntry = s.get('type');
  if (typeEntry === undefined) throw missing(s.file, base.line, 'type', `in [guest ${base.host}/${base.vm}] (sev, sev-es or snp)`);
  if (!['sev', 'sev-es', 'snp'].includes(typeEntry.value)) throw s.bad(typeEntry, 'expected sev, sev-es or snp');
  if (typeEntry.value === 'snp') return parseSnpGuest(s, base);
  return parseSevGuest(s, base, typeEntry.value as 'sev' | 'sev-es');
}

const hexBytes = (s: Lines, e: KeyValueLine, n: number): Buffer => {
  const text = e.value.toLowerCase().replace(/^0x/, '');
  if (!new RegExp(`^[0-9a-f]{${2 * n}}$`).test(text)) throw s.bad(e, `expected ${n} bytes as ${2 * n} hex digits`);
  return Buffer.from(text, 'hex');
};

function parseSnpGuest(s: Lines, base: GuestBase): SnpGuestConfig {
  for (const key of SEV_ONLY_KEYS) {
    const e = s.get(key) ?? s.repeated.get(key)?.[0];
    if (e !== undefined) {
      throw new SupervisorError(
        'SUP_ERR_CONFIG_CONFLICT',
        `${s.file}:${e.line}: ${key}: not for an SNP guest (no host-side measurement or secret injection on SNP; give snp-digest, snp-policy, host-data, id-key-digest)`,
        { details: { file: s.file, line: e.line, key } },
      );
    }
  }
  const where = `in [guest ${base.host}/${base.vm}] (type: snp)`;
  const digest = s.get('snp-digest');
  if (digest === undefined)
    throw missing(s.file, base.line, 'snp-digest', `${where}: the expected launch digest (sevsup measure --mode snp)`);
  const policyEntry = s.get('snp-policy');
  if (policyEntry === undefined) throw missing(s.file, base.line, 'snp-policy', `${where}: the exact 64-bit guest policy`);
  if (!/^(0x[0-9a-fA-F]{1,16}|\d{1,20})$/.test(policyEntry.value) || BigInt(policyEntry.value) > 0xffff_ffff_ffff_ffffn) {
    throw s.bad(policyEntry, 'expected a 64-bit policy (0x-hex or decimal)');
  }
  const hd = s.get('host-data');
  const idk = s.get('id-key-digest');
  return {
    ...base,
    type: 'snp',
    digest: hexBytes(s, digest, 48),
    policy: BigInt(policyEntry.value),
    hostData: hd === undefined ? null : hexBytes(s, hd, 32),
    idKeyDigest: idk === undefined ? null : hexBytes(s, idk, 48),
  };
}

function parseNumberList(s: Lines, e: KeyValueLine, max: number): number[] {
  const items = e.value.split(',').map((x) => x.trim());
  return items.map((x) => {
    if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(x) || Number(x) > max)
      throw s.bad(e, `${quoteForMessage(x)} is not a number from 0 to ${max} (0x-hex or decimal; a comma-separated list)`);
    return Number(x);
  });
}

function parseSevGuest(s: Lines, base: GuestBase, type: 'sev' | 'sev-es'): SevGuestConfig {
  const where = `in [guest ${base.host}/${base.vm}]`;
  for (const key of SNP_KEYS) {
    const e = s.get(key);
    if (e !== undefined) {
      throw new SupervisorError('SUP_ERR_CONFIG_CONFLICT', `${s.file}:${e.line}: ${key}: only for type: snp`, {
        details: { file: s.file, line: e.line, key },
      });
    }
  }
  const es = type === 'sev-es';
  const policyEntry = s.get('policy');
  if (policyEntry === undefined)
    throw missing(s.file, base.line, 'policy', `${where}: the allowed guest policies (e.g. policy: 0x1 or 0x5,0x7)`);
  const policies = parseNumberList(s, policyEntry, 0xffff_ffff);
  for (const p of policies) {
    if (((p & 0x4) !== 0) !== es)
      throw s.bad(policyEntry, `policy 0x${p.toString(16)} ${es ? 'lacks' : 'has'} the ES bit (0x4) but the guest's type is ${type}`);
  }
  const digestEntry = s.get('expected-digest');
  const firmware = s.path('firmware');
  let reference: SevReference;
  const inputKeys = ['firmware', 'kernel', 'initrd', 'cmdline', 'vcpus', 'cpu', 'vmsa-init', 'sev-features'];
  if (digestEntry !== undefined) {
    const clash = inputKeys.map((k) => s.get(k)).find((e) => e !== undefined);
    if (clash !== undefined) {
      throw new SupervisorError(
        'SUP_ERR_CONFIG_CONFLICT',
        `${s.file}:${clash.line}: ${clash.key}: give either expected-digest (line ${digestEntry.line}) or the launch inputs, not both`,
        { details: { file: s.file, line: clash.line, key: clash.key } },
      );
    }
    reference = { kind: 'digest', digest: hexBytes(s, digestEntry, 32) };
  } else {
    if (firmware === null)
      throw missing(s.file, base.line, 'firmware', `${where}: the launch inputs (firmware, kernel, …) or expected-digest`);
    const kernel = s.path('kernel');
    for (const k of ['initrd', 'cmdline']) {
      const e = s.get(k);
      if (e !== undefined && kernel === null) throw s.bad(e, 'needs kernel (only measured with a kernel and kernel-hashes)');
    }
    let vcpus: number | null = null;
    let cpu: CpuSignatureParts | null = null;
    const vcpusEntry = s.get('vcpus');
    const cpuEntry = s.get('cpu');
    if (es) {
      if (vcpusEntry === undefined) throw missing(s.file, base.line, 'vcpus', `${where}: SEV-ES measures one VMSA per vCPU`);
      if (!/^\d+$/.test(vcpusEntry.value) || Number(vcpusEntry.value) < 1 || Number(vcpusEntry.value) > 512)
        throw s.bad(vcpusEntry, 'expected 1 to 512');
      vcpus = Number(vcpusEntry.value);
      if (cpuEntry === undefined)
        throw missing(s.file, base.line, 'cpu', `${where}: the vCPU model (e.g. EPYC-Milan) or signature (0xa00f11)`);
      cpu = parseCpu(s, cpuEntry);
    } else {
      const extra = vcpusEntry ?? cpuEntry ?? s.get('vmsa-init') ?? s.get('sev-features');
      if (extra !== undefined) throw s.bad(extra, 'only for type: sev-es (plain SEV measures no VMSAs)');
    }
    const vmsaEntry = s.get('vmsa-init');
    if (vmsaEntry !== undefined && !['legacy', 'init2'].includes(vmsaEntry.value)) throw s.bad(vmsaEntry, 'expected legacy or init2');
    const featEntry = s.get('sev-features');
    if (featEntry !== undefined && !/^(0x[0-9a-fA-F]{1,16}|\d{1,20})$/.test(featEntry.value))
      throw s.bad(featEntry, 'expected a 64-bit number');
    reference = {
      kind: 'inputs',
      firmware,
      kernel,
      initrd: s.path('initrd'),
      cmdline: s.get('cmdline')?.value ?? null,
      vcpus,
      cpu,
      vmsaInit: (vmsaEntry?.value ?? 'legacy') as 'legacy' | 'init2',
      sevFeatures: featEntry === undefined ? 0n : BigInt(featEntry.value),
    };
  }
  const minApiEntry = s.get('min-api');
  let minApi: { major: number; minor: number } | null = null;
  if (minApiEntry !== undefined) {
    const m = /^(\d{1,3})\.(\d{1,3})$/.exec(minApiEntry.value);
    if (m === null || Number(m[1]) > 255 || Number(m[2]) > 255) throw s.bad(minApiEntry, 'expected MAJOR.MINOR, e.g. 0.24');
    minApi = { major: Number(m[1]), minor: Number(m[2]) };
  }
  const buildEntry = s.get('build-ids');
  const tik = s.path('tik');
  if (tik === null) throw missing(s.file, base.line, 'tik', `${where}: the owner's TIK file (16 bytes) of this guest's launch session`);
  const secrets = (s.repeated.get('secret') ?? []).map((e) => {
    try {
      const spec = parseSecretSpec(e.value, 'secret');
      return { guid: spec.guid, path: resolvePath(s.file, spec.path) };
    } catch (error: unknown) {
      if (isSupervisorError(error)) throw s.bad(e, error.message.replace(/^secret:? /, ''));
      throw error;
    }
  });
  const tek = s.path('tek');
  if (secrets.length > 0 && tek === null) throw missing(s.file, base.line, 'tek', `${where}: secrets are encrypted under the owner's TEK`);
  const lines: Record<string, number> = {};
  for (const [k, e] of s.byKey) lines[k] = e.line;
  (s.repeated.get('secret') ?? []).forEach((e, i) => {
    lines[`secret#${i}`] = e.line;
  });
  return {
    ...base,
    type,
    reference,
    policies,
    minApi,
    buildIds: buildEntry === undefined ? null : parseNumberList(s, buildEntry, 255),
    tik,
    tek,
    secrets,
    lines,
  };
}

function parseCpu(s: Lines, e: KeyValueLine): CpuSignatureParts {
  try {
    return /^0x[0-9a-fA-F]{1,8}$/.test(e.value) ? decodeCpuSignature(Number(e.value)) : requireCpuModel(e.value);
  } catch (error: unknown) {
    if (isSupervisorError(error)) throw s.bad(e, error.message);
    throw error;
  }
}
