// One VM config line's value → its typed piece of VmSpec (a disk, a NIC, the SEV line, …).
// Owns: per-key value rules and their messages; relative paths resolve against the file's directory.
// Must not: look at other keys (vm-rules.ts) or read files. Pure apart from path.resolve.
import { qmpAllowProblem } from '../policy/qmp-policy.js';
import path from 'node:path';
import { SupervisorError, type ErrorCode } from '../errors.js';
import type { DiskSpec, FirmwareSpec, LaunchSpec, NetSpec, SevSpec } from './vm-spec.js';
import { quoteForMessage, trailingCommentHint, type KeyValueLine } from './kv-file.js';
import { parseIntegerInRange, parsePropertyString, type PropertyContext } from './propstring.js';
import { refuseSnpOnly, snpSpecFromProperties, type LineError } from './snp-line.js';
import {
  DISK_FORMAT_BY_EXTENSION,
  DISK_SCHEMA,
  ENUM_VALUES,
  FIRMWARE_SCHEMA,
  LAUNCH_SCHEMA,
  MAX_ATTEST_URL_CHARS,
  NET_SCHEMA,
  QMP_LIST_ALLOWED,
  QMP_NAME_PATTERN,
  SEV_SCHEMA,
  VM_NAME_ALLOWED,
  VM_NAME_PATTERN,
} from './vm-keys.js';

export const VM_CONFIG_SUFFIX = '.conf';

/** An error for one config line: `file:line: key: problem`, details {file, line, key}. */
export function configError(code: ErrorCode, file: string, entry: KeyValueLine, problem: string): SupervisorError {
  return new SupervisorError(code, `${file}:${entry.line}: ${entry.key}: ${problem}`, {
    details: { file, line: entry.line, key: entry.key },
  });
}

/** SUP_ERR_CONFIG_BAD_VALUE quoting the line's value and what is allowed instead. */
export function badValue(file: string, entry: KeyValueLine, allowed: string): SupervisorError {
  return configError(
    'SUP_ERR_CONFIG_BAD_VALUE',
    file,
    entry,
    `invalid value ${quoteForMessage(entry.value)}${trailingCommentHint(entry.value)}; allowed: ${allowed}`,
  );
}

function where(file: string, entry: KeyValueLine): PropertyContext {
  return { file, line: entry.line, key: entry.key };
}

/** Per-file context for the value parsers. */
export interface Ctx {
  readonly file: string;
  /** Directory relative paths resolve against. */
  readonly dir: string;
}

/** A path from the file, resolved against the file's directory (absolute paths stay). */
export function resolvePath(ctx: Ctx, value: string): string {
  return path.resolve(ctx.dir, value);
}

/** A decimal integer in range. @throws SUP_ERR_CONFIG_BAD_VALUE */
export function parseInteger(ctx: Ctx, entry: KeyValueLine, range: { min: number; max: number }, unit: string): number {
  const value = parseIntegerInRange(entry.value, range.min, range.max);
  if (value === undefined) throw badValue(ctx.file, entry, `an integer number of ${unit} from ${range.min} to ${range.max}`);
  return value;
}

/**
 * `attest-url`: an https URL the daemon POSTs to as it is. No credentials in it (the host's
 * identity is its certificate or token file, never a URL that ends up in logs), no fragment.
 * @throws SUP_ERR_CONFIG_BAD_VALUE
 */
export function parseAttestUrl(ctx: Ctx, entry: KeyValueLine): string {
  const allowed = 'an https URL such as https://owner.example:8443/attest (no user:password, no #fragment)';
  if (entry.value.length > MAX_ATTEST_URL_CHARS) throw badValue(ctx.file, entry, `${allowed}, at most ${MAX_ATTEST_URL_CHARS} characters`);
  let url: URL;
  try {
    url = new URL(entry.value);
  } catch {
    throw badValue(ctx.file, entry, allowed);
  }
  if (url.protocol !== 'https:') {
    throw configError(
      'SUP_ERR_CONFIG_BAD_VALUE',
      ctx.file,
      entry,
      `must be https (got ${url.protocol.replace(/:$/, '')}): the record and any secret travel over it`,
    );
  }
  if (url.username !== '' || url.password !== '' || url.hash !== '' || url.hostname === '') {
    throw configError('SUP_ERR_CONFIG_BAD_VALUE', ctx.file, entry, `invalid value; allowed: ${allowed}`);
  }
  return url.href;
}

/** One word of ENUM_VALUES[key]. @throws SUP_ERR_CONFIG_BAD_VALUE */
export function parseEnum<K extends keyof typeof ENUM_VALUES>(ctx: Ctx, entry: KeyValueLine, key: K): (typeof ENUM_VALUES)[K][number] {
  const values: readonly (typeof ENUM_VALUES)[K][number][] = ENUM_VALUES[key];
  const found = values.find((v) => v === entry.value);
  if (found === undefined) throw badValue(ctx.file, entry, values.join(', '));
  return found;
}

/** `qmp-allow`/`qmp-deny`: distinct QMP command names. @throws SUP_ERR_CONFIG_BAD_VALUE */
export function parseQmpList(ctx: Ctx, entry: KeyValueLine): string[] {
  const names = entry.value.split(',').map((name) => name.trim());
  const seen = new Set<string>();
  for (const name of names) {
    if (!QMP_NAME_PATTERN.test(name)) {
      throw configError(
        'SUP_ERR_CONFIG_BAD_VALUE',
        ctx.file,
        entry,
        `${name === '' ? 'empty command name' : `invalid command name ${quoteForMessage(name)}`}; allowed: ${QMP_LIST_ALLOWED}`,
      );
    }
    if (seen.has(name)) throw configError('SUP_ERR_CONFIG_BAD_VALUE', ctx.file, entry, `'${name}' is listed twice; list it once`);
    seen.add(name);
  }
  return names;
}

/**
 * `qmp-allow`: as parseQmpList, and every name must be one a VM may re-allow: the memory family,
 * launch-secret injection, tracing, fd passing and the supervisor channel are final (qmp-policy.ts),
 * so listing one is a mistake to report, not a wish to ignore. @throws SUP_ERR_CONFIG_BAD_VALUE
 */
export function parseQmpAllow(ctx: Ctx, entry: KeyValueLine): string[] {
  const names = parseQmpList(ctx, entry);
  for (const name of names) {
    const problem = qmpAllowProblem(name);
    if (problem !== null) throw configError('SUP_ERR_CONFIG_BAD_VALUE', ctx.file, entry, `${problem}; remove it from qmp-allow`);
  }
  return names;
}

/**
 * The `amd_sev`/`amd-sev` line (SEV-SNP's part in snp-line.ts).
 * @throws SUP_ERR_PROPERTY_*, SUP_ERR_CONFIG_UNSUPPORTED, SUP_ERR_CONFIG_MISSING_KEY,
 *   SUP_ERR_CONFIG_CONFLICT (a property of the other SEV type)
 */
export function parseSev(ctx: Ctx, entry: KeyValueLine): SevSpec {
  const p = parsePropertyString(entry.value, SEV_SCHEMA, where(ctx.file, entry));
  const type = p.type;
  if (type === undefined) throw badValue(ctx.file, entry, 'type=std, type=es or type=snp'); // required: parser already refused
  const key = entry.key === 'amd-sev' ? 'amd-sev' : 'amd_sev';
  const fail: LineError = (code, problem) => configError(code, ctx.file, entry, problem);
  if (type === 'snp') return snpSpecFromProperties(p, key, (value) => resolvePath(ctx, value), fail);
  refuseSnpOnly(p, type, fail);
  return {
    type,
    nodbg: p.nodbg ?? false,
    noks: p.noks ?? false,
    kernelHashes: p['kernel-hashes'] ?? false,
    ...(p.cbitpos === undefined ? {} : { cbitpos: p.cbitpos }),
    ...(p['reduced-phys-bits'] === undefined ? {} : { reducedPhysBits: p['reduced-phys-bits'] }),
    key,
  };
}

/** `firmware: PATH` or `file=PATH,sha256=HEX` (digest lower-cased). @throws SUP_ERR_PROPERTY_* */
export function parseFirmware(ctx: Ctx, entry: KeyValueLine): FirmwareSpec {
  const p = parsePropertyString(entry.value, FIRMWARE_SCHEMA, where(ctx.file, entry));
  if (p.file === undefined) throw badValue(ctx.file, entry, 'PATH or file=PATH,sha256=HEX');
  return { path: resolvePath(ctx, p.file), ...(p.sha256 === undefined ? {} : { sha256: p.sha256.toLowerCase() }) };
}

/** `diskN`; the format comes from the extension when not given. @throws SUP_ERR_PROPERTY_*, SUP_ERR_CONFIG_BAD_VALUE */
export function parseDisk(ctx: Ctx, entry: KeyValueLine, index: number): DiskSpec {
  const p = parsePropertyString(entry.value, DISK_SCHEMA, where(ctx.file, entry));
  if (p.file === undefined) throw badValue(ctx.file, entry, 'file=PATH[,format=qcow2|raw][,readonly=1]');
  const file = resolvePath(ctx, p.file);
  const format = p.format ?? DISK_FORMAT_BY_EXTENSION[path.extname(file).toLowerCase()];
  if (format === undefined) {
    throw configError(
      'SUP_ERR_CONFIG_BAD_VALUE',
      ctx.file,
      entry,
      `cannot tell the format of ${quoteForMessage(p.file)} from its extension; add format=qcow2 or format=raw`,
    );
  }
  return { index, file, format, readonly: p.readonly ?? false };
}

/** `netN`: `user` or `tap,ifname=NAME`, optional unicast `mac` (lower-cased). @throws SUP_ERR_PROPERTY_*, SUP_ERR_CONFIG_* */
export function parseNet(ctx: Ctx, entry: KeyValueLine, index: number): NetSpec {
  const p = parsePropertyString(entry.value, NET_SCHEMA, where(ctx.file, entry));
  const mac = p.mac?.toLowerCase();
  // Bit 0 of the first octet marks multicast; QEMU refuses such a NIC address.
  if (mac !== undefined && (Number.parseInt(mac.slice(0, 2), 16) & 1) === 1) {
    throw configError(
      'SUP_ERR_CONFIG_BAD_VALUE',
      ctx.file,
      entry,
      `mac ${mac} is a multicast address; use a unicast one (even first octet), e.g. 52:54:00:12:34:56`,
    );
  }
  const macPart = mac === undefined ? {} : { mac };
  if (p.type === 'tap') {
    if (p.ifname === undefined) {
      throw configError('SUP_ERR_CONFIG_MISSING_KEY', ctx.file, entry, 'type tap needs ifname=NAME (the host tap device)');
    }
    return { index, kind: 'tap', ifname: p.ifname, ...macPart };
  }
  if (p.ifname !== undefined) {
    throw configError('SUP_ERR_CONFIG_BAD_VALUE', ctx.file, entry, "property 'ifname' applies only to type tap; remove it or use tap");
  }
  return { index, kind: 'user', ...macPart };
}

/** `launch: dh-cert=PATH,session=PATH`, both required. @throws SUP_ERR_PROPERTY_*, SUP_ERR_CONFIG_MISSING_KEY */
export function parseLaunch(ctx: Ctx, entry: KeyValueLine): LaunchSpec {
  const p = parsePropertyString(entry.value, LAUNCH_SCHEMA, where(ctx.file, entry));
  if (p['dh-cert'] === undefined || p.session === undefined) throw badValue(ctx.file, entry, 'dh-cert=PATH,session=PATH');
  return { dhCert: resolvePath(ctx, p['dh-cert']), session: resolvePath(ctx, p.session) };
}

/** The VM name a file name implies (`web.conf` → `web`), or undefined for other file names. */
function nameFromFile(file: string): string | undefined {
  const base = path.basename(file);
  return base.endsWith(VM_CONFIG_SUFFIX) && base.length > VM_CONFIG_SUFFIX.length ? base.slice(0, -VM_CONFIG_SUFFIX.length) : undefined;
}

/**
 * The VM name: the `name` line (which must agree with a `<name>.conf` file name) or the file name.
 * @throws SUP_ERR_CONFIG_BAD_VALUE, SUP_ERR_CONFIG_CONFLICT, SUP_ERR_CONFIG_MISSING_KEY
 */
export function resolveName(file: string, entry: KeyValueLine | undefined): string {
  const fromFile = nameFromFile(file);
  if (entry !== undefined) {
    if (!VM_NAME_PATTERN.test(entry.value)) throw badValue(file, entry, VM_NAME_ALLOWED);
    if (fromFile !== undefined && fromFile !== entry.value) {
      throw configError(
        'SUP_ERR_CONFIG_CONFLICT',
        file,
        entry,
        `'${entry.value}' does not match the file name '${path.basename(file)}'; rename one so they agree`,
      );
    }
    return entry.value;
  }
  if (fromFile === undefined) {
    throw new SupervisorError(
      'SUP_ERR_CONFIG_MISSING_KEY',
      `${file}: no 'name' key, and the file name does not end in '${VM_CONFIG_SUFFIX}'; add 'name: NAME'`,
      { details: { file, key: 'name' } },
    );
  }
  if (!VM_NAME_PATTERN.test(fromFile)) {
    throw new SupervisorError(
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${file}: the file name gives the VM name ${quoteForMessage(fromFile)}, which is not valid; allowed: ${VM_NAME_ALLOWED}`,
      { details: { file, key: 'name' } },
    );
  }
  return fromFile;
}
