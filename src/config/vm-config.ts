// VM config files (`<vm-dir>/<name>.conf`) → VmSpec, and VmSpec → canonical config text.
// Owns: assembling a VmSpec from the lines (defaults, order), the canonical text form, and
// reading the file (loadVmConfig is the only I/O). Per-key values live in vm-values.ts, rules
// across keys in vm-rules.ts, the vocabulary and limits in vm-keys.ts.
// Must not: check what QEMU or the host can do (bios vs SEV, SEV support: qemu/argv.ts), or
// touch firmware/kernel files (vm/preflight.ts). Every error names file, line and key.
import { open } from 'node:fs/promises';
import { describeIoError } from '../util/io-error.js';
import path from 'node:path';
import { SupervisorError } from '../errors.js';
import type { DiskSpec, FirmwareSpec, LaunchSpec, NetSpec, RelaySpec, SevSpec, VmSpec } from './vm-spec.js';
import { hasControlChar, quoteForMessage, readKeyValueLines } from './kv-file.js';
import { BOOLEAN_ALLOWED, formatPropertyString, parseBooleanWord } from './propstring.js';
import {
  ATTEST_TIMEOUT_SECONDS,
  CORES,
  CPU_MODEL_ALLOWED,
  CPU_MODEL_PATTERN,
  DEFAULT_CPU_MODEL,
  DISK_KEY_PATTERN,
  DISK_SCHEMA,
  FIRMWARE_SCHEMA,
  HOLD_TIMEOUT_SECONDS,
  LAUNCH_SCHEMA,
  MEMORY_MIB,
  NET_KEY_PATTERN,
  NET_SCHEMA,
  PROXMOX_SEV_SPELLINGS,
  QEMU_ALLOWED,
  QEMU_NAME_PATTERN,
  SEV_SCHEMA,
  VM_NAME_ALLOWED,
  VM_NAME_PATTERN,
} from './vm-keys.js';
import { snpSpecToProperties } from './snp-line.js';
import { checkCombinations, checkKeys, relaySpecFrom, type RelayParts } from './vm-rules.js';
import {
  badValue,
  parseAttestUrl,
  parseDisk,
  parseEnum,
  parseFirmware,
  parseInteger,
  parseLaunch,
  parseNet,
  parseQmpAllow,
  parseQmpList,
  parseSev,
  resolveName,
  resolvePath,
  VM_CONFIG_SUFFIX,
  type Ctx,
} from './vm-values.js';
import { DEFAULT_VM_DIR } from '../paths.js';

export { VM_CONFIG_SUFFIX } from './vm-values.js';

/** A VM config is a few dozen lines; a megabyte is a wrong file, not a config. */
export const MAX_VM_CONFIG_BYTES = 1024 * 1024;

/**
 * Parse one VM config file's text. `file` names the file in messages; relative paths inside the
 * file resolve against its directory, and the VM name defaults to the file name without `.conf`.
 * Pure apart from `path.resolve` (a relative `file` resolves against the working directory).
 * @throws SUP_ERR_CONFIG_SYNTAX, SUP_ERR_CONFIG_UNKNOWN_KEY, SUP_ERR_CONFIG_DUPLICATE_KEY,
 *   SUP_ERR_CONFIG_BAD_VALUE, SUP_ERR_CONFIG_MISSING_KEY, SUP_ERR_CONFIG_CONFLICT,
 *   SUP_ERR_CONFIG_UNSUPPORTED, SUP_ERR_PROPERTY_* — `details: {file, line, key}`.
 */
export function parseVmConfig(text: string, file: string): VmSpec {
  const source = path.resolve(file);
  const ctx: Ctx = { file, dir: path.dirname(source) };
  const entries = readKeyValueLines(text, file);
  const keys = checkKeys(file, entries);

  // Values in file order, so the first bad line is the one reported.
  let name: string | undefined;
  let memory: number = MEMORY_MIB.default;
  let cores: number = CORES.default;
  let cpu = DEFAULT_CPU_MODEL;
  let bios: VmSpec['bios'] | undefined;
  let firmware: FirmwareSpec | undefined;
  let kernel: string | undefined;
  let initrd: string | undefined;
  let cmdline: string | undefined;
  const disks: DiskSpec[] = [];
  const nets: NetSpec[] = [];
  let launch: LaunchSpec | undefined;
  let attest: VmSpec['attest'] = 'none';
  let holdTimeout: number | undefined;
  const relayParts: { -readonly [K in keyof RelayParts]: RelayParts[K] } = {};
  let autostart = false;
  let serial: VmSpec['serial'] = 'file';
  let sev: SevSpec | undefined;
  let qemu: string | undefined;
  let qmpAllow: string[] = [];
  let qmpDeny: string[] = [];

  for (const entry of entries) {
    const diskMatch = DISK_KEY_PATTERN.exec(entry.key);
    const netMatch = NET_KEY_PATTERN.exec(entry.key);
    if (diskMatch !== null) {
      disks.push(parseDisk(ctx, entry, Number(diskMatch[1])));
      continue;
    }
    if (netMatch !== null) {
      nets.push(parseNet(ctx, entry, Number(netMatch[1])));
      continue;
    }
    switch (entry.key) {
      case 'name':
        name = resolveName(file, entry);
        break;
      case 'memory':
        memory = parseInteger(ctx, entry, MEMORY_MIB, 'MiB');
        break;
      case 'cores':
        cores = parseInteger(ctx, entry, CORES, 'vCPUs');
        break;
      case 'cpu':
        if (!CPU_MODEL_PATTERN.test(entry.value)) throw badValue(file, entry, CPU_MODEL_ALLOWED);
        cpu = entry.value;
        break;
      case 'bios':
        bios = parseEnum(ctx, entry, 'bios');
        break;
      case 'firmware':
        firmware = parseFirmware(ctx, entry);
        break;
      case 'kernel':
        kernel = resolvePath(ctx, entry.value);
        break;
      case 'initrd':
        initrd = resolvePath(ctx, entry.value);
        break;
      case 'cmdline':
        cmdline = entry.value;
        break;
      case 'launch':
        launch = parseLaunch(ctx, entry);
        break;
      case 'attest':
        attest = parseEnum(ctx, entry, 'attest');
        break;
      case 'attest-url':
        relayParts.url = parseAttestUrl(ctx, entry);
        break;
      case 'attest-ca':
        relayParts.ca = resolvePath(ctx, entry.value);
        break;
      case 'attest-cert':
        relayParts.cert = resolvePath(ctx, entry.value);
        break;
      case 'attest-key':
        relayParts.key = resolvePath(ctx, entry.value);
        break;
      case 'attest-token-file':
        relayParts.tokenFile = resolvePath(ctx, entry.value);
        break;
      case 'attest-timeout':
        relayParts.timeoutSeconds = parseInteger(ctx, entry, ATTEST_TIMEOUT_SECONDS, 'seconds');
        break;
      case 'hold-timeout':
        holdTimeout = parseInteger(ctx, entry, HOLD_TIMEOUT_SECONDS, 'seconds');
        break;
      case 'autostart': {
        const value = parseBooleanWord(entry.value);
        if (value === undefined) throw badValue(file, entry, BOOLEAN_ALLOWED);
        autostart = value;
        break;
      }
      case 'serial':
        serial = parseEnum(ctx, entry, 'serial');
        break;
      case 'qmp-allow':
        qmpAllow = parseQmpAllow(ctx, entry);
        break;
      case 'qmp-deny':
        qmpDeny = parseQmpList(ctx, entry);
        break;
      case 'qemu':
        if (entry.value.includes('/')) qemu = resolvePath(ctx, entry.value);
        else if (QEMU_NAME_PATTERN.test(entry.value)) qemu = entry.value;
        else throw badValue(file, entry, QEMU_ALLOWED);
        break;
      case 'amd_sev':
      case 'amd-sev':
        sev = parseSev(ctx, entry);
        break;
      default:
        // checkKeys refused every other key.
        throw new SupervisorError('SUP_ERR_INTERNAL', `unhandled config key '${entry.key}'`);
    }
  }
  name ??= resolveName(file, undefined);
  const relay: RelaySpec | undefined = relaySpecFrom(file, keys, attest, relayParts);
  disks.sort((a, b) => a.index - b.index);
  nets.sort((a, b) => a.index - b.index);

  const spec: VmSpec = {
    name,
    source,
    memory,
    cores,
    cpu,
    // The seed only refuses an explicit non-OVMF bios with SEV; an SEV guest without one gets OVMF.
    bios: bios ?? (sev === undefined ? 'seabios' : 'ovmf'),
    ...(firmware === undefined ? {} : { firmware }),
    ...(kernel === undefined ? {} : { kernel }),
    ...(initrd === undefined ? {} : { initrd }),
    ...(cmdline === undefined ? {} : { cmdline }),
    disks,
    nets,
    ...(launch === undefined ? {} : { launch }),
    attest,
    ...(relay === undefined ? {} : { relay }),
    ...(holdTimeout === undefined ? {} : { holdTimeout }),
    autostart,
    serial,
    ...(sev === undefined ? {} : { sev }),
    ...(qemu === undefined ? {} : { qemu }),
    qmpAllow,
    qmpDeny,
  };
  checkCombinations(file, keys, spec);
  return spec;
}

function plainValue(key: string, value: string): string {
  if (value === '' || value !== value.trim() || hasControlChar(value)) {
    throw new SupervisorError(
      'SUP_ERR_CONFIG_BAD_VALUE',
      `cannot write ${key} ${quoteForMessage(value)}: a config value is one non-empty line without surrounding spaces`,
      { details: { key } },
    );
  }
  return value;
}

/**
 * Canonical config text for `spec`: every key spelled out (defaults included), absolute paths,
 * booleans as 0/1, the SEV line under the spelling the spec came with.
 * `parseVmConfig(formatVmConfig(s), <dir>/<s.name>.conf)` equals `s` apart from `source`.
 * @throws SUP_ERR_CONFIG_BAD_VALUE / SUP_ERR_PROPERTY_* for values a config file cannot hold.
 */
export function formatVmConfig(spec: VmSpec): string {
  const lines: string[] = [];
  const put = (key: string, value: string): void => {
    lines.push(`${key}: ${plainValue(key, value)}`);
  };
  put('name', spec.name);
  put('memory', String(spec.memory));
  put('cores', String(spec.cores));
  put('cpu', spec.cpu);
  put('bios', spec.bios);
  if (spec.firmware !== undefined) {
    const { path: file, sha256 } = spec.firmware;
    put('firmware', formatPropertyString({ file, ...(sha256 === undefined ? {} : { sha256 }) }, FIRMWARE_SCHEMA));
  }
  if (spec.kernel !== undefined) put('kernel', spec.kernel);
  if (spec.initrd !== undefined) put('initrd', spec.initrd);
  if (spec.cmdline !== undefined) put('cmdline', spec.cmdline);
  for (const disk of spec.disks) {
    const values = { file: disk.file, format: disk.format, ...(disk.readonly ? { readonly: true } : {}) };
    put(`disk${disk.index}`, formatPropertyString(values, DISK_SCHEMA, { bareDefaultKey: false }));
  }
  for (const net of spec.nets) {
    const values = {
      type: net.kind,
      ...(net.kind === 'tap' ? { ifname: net.ifname } : {}),
      ...(net.mac === undefined ? {} : { mac: net.mac }),
    };
    put(`net${net.index}`, formatPropertyString(values, NET_SCHEMA));
  }
  if (spec.launch !== undefined) {
    put('launch', formatPropertyString({ 'dh-cert': spec.launch.dhCert, session: spec.launch.session }, LAUNCH_SCHEMA));
  }
  put('attest', spec.attest);
  if (spec.relay !== undefined) {
    const { url, ca, identity, timeoutSeconds } = spec.relay;
    put('attest-url', url);
    put('attest-ca', ca);
    if (identity.kind === 'mtls') {
      put('attest-cert', identity.cert);
      put('attest-key', identity.key);
    } else {
      put('attest-token-file', identity.tokenFile);
    }
    put('attest-timeout', String(timeoutSeconds));
  }
  if (spec.holdTimeout !== undefined) put('hold-timeout', String(spec.holdTimeout));
  put('autostart', spec.autostart ? '1' : '0');
  put('serial', spec.serial);
  if (spec.qmpAllow.length > 0) put('qmp-allow', spec.qmpAllow.join(','));
  if (spec.qmpDeny.length > 0) put('qmp-deny', spec.qmpDeny.join(','));
  if (spec.qemu !== undefined) put('qemu', spec.qemu);
  if (spec.sev !== undefined) {
    const sev = spec.sev;
    const values =
      sev.type === 'snp'
        ? snpSpecToProperties(sev)
        : {
            type: sev.type,
            ...(sev.nodbg ? { nodbg: true } : {}),
            ...(sev.noks ? { noks: true } : {}),
            ...(sev.kernelHashes ? { 'kernel-hashes': true } : {}),
            ...(sev.cbitpos === undefined ? {} : { cbitpos: sev.cbitpos }),
            ...(sev.reducedPhysBits === undefined ? {} : { 'reduced-phys-bits': sev.reducedPhysBits }),
          };
    const spellings = sev.key === 'amd-sev' ? PROXMOX_SEV_SPELLINGS : [];
    put(sev.key, formatPropertyString(values, SEV_SCHEMA, { bareDefaultKey: false, spellings }));
  }
  return `${lines.join('\n')}\n`;
}

export interface LoadVmConfigOptions {
  /** Directory of `<name>.conf` files. @default DEFAULT_VM_DIR */
  readonly vmDir?: string;
}

/**
 * Load a VM config by name (`web` → `<vmDir>/web.conf`) or by path (`ref` contains `/` or ends
 * in `.conf`; relative paths resolve against the working directory).
 * @throws SUP_ERR_VM_NOT_FOUND (a name with no file, or not a valid name), SUP_ERR_CONFIG_READ
 *   (a path that cannot be read, is too large or is not UTF-8), and every parseVmConfig error.
 */
export async function loadVmConfig(ref: string, options: LoadVmConfigOptions = {}): Promise<VmSpec> {
  const byPath = ref.includes('/') || ref.endsWith(VM_CONFIG_SUFFIX);
  if (!byPath && !VM_NAME_PATTERN.test(ref)) {
    throw new SupervisorError('SUP_ERR_VM_NOT_FOUND', `no VM named ${quoteForMessage(ref)}: a VM name is ${VM_NAME_ALLOWED}`, {
      details: { vm: ref },
    });
  }
  const file = byPath ? path.resolve(ref) : path.join(options.vmDir ?? DEFAULT_VM_DIR, `${ref}${VM_CONFIG_SUFFIX}`);
  let bytes: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > MAX_VM_CONFIG_BYTES) {
        throw new SupervisorError(
          'SUP_ERR_CONFIG_READ',
          `cannot read config file ${file}: it is ${size} bytes, more than the ${MAX_VM_CONFIG_BYTES} a VM config may have`,
          { details: { file } },
        );
      }
      bytes = await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (error: unknown) {
    if (error instanceof SupervisorError) throw error;
    const reason = describeIoError(error);
    if (!byPath && reason === 'no such file') {
      throw new SupervisorError('SUP_ERR_VM_NOT_FOUND', `no VM named '${ref}' (${file} does not exist)`, {
        details: { vm: ref, file },
        cause: error,
      });
    }
    throw new SupervisorError('SUP_ERR_CONFIG_READ', `cannot read config file ${file}: ${reason}`, {
      details: { file },
      cause: error,
    });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_CONFIG_READ', `cannot read config file ${file}: it is not valid UTF-8 text`, {
      details: { file },
      cause: error,
    });
  }
  return parseVmConfig(text, file);
}
