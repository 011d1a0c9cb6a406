// Reading the host's SEV-related facts: /proc/cpuinfo, CPUID 0x8000001F (via /dev/cpu/0/cpuid),
// kvm_amd's module parameters, and /dev/sev. Every path is under an injectable `root`, so tests
// build fake trees.
// Owns: reading and narrowing those files. Must not: load kernel modules, spawn processes, throw
// (an unreadable fact is `null`: unknown), or judge support (host/decide-caps.ts does).
import { constants } from 'node:fs';
import { access, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf } from '../util/io-error.js';

export interface CpuInfoFacts {
  /** `vendor_id` of the first processor, e.g. AuthenticAMD. */
  readonly vendor: string | null;
  readonly flags: ReadonlySet<string>;
}

export interface CpuidFacts {
  /** From leaf 0 (EBX, EDX, ECX). */
  readonly vendor: string;
  /** EAX of leaf 0x80000000. */
  readonly maxExtendedLeaf: number;
  /** Leaf 0x8000001F, or null when the CPU has no such leaf. */
  readonly memoryEncryption: { readonly eax: number; readonly ebx: number } | null;
}

/** A kvm_amd boolean parameter: null when the parameter does not exist in this kernel. */
export type KvmParam = { readonly enabled: boolean; readonly raw: string } | null;

export interface KvmAmdFacts {
  readonly sev: KvmParam;
  readonly sevEs: KvmParam;
  readonly sevSnp: KvmParam;
}

export type DevSevFacts =
  | { readonly present: false }
  | { readonly present: true; readonly accessible: true }
  | { readonly present: true; readonly accessible: false; readonly error: string };

export interface HostFacts {
  /** null: /proc/cpuinfo unreadable. */
  readonly cpuinfo: CpuInfoFacts | null;
  /** null: /dev/cpu/0/cpuid absent or unreadable (no cpuid module, not root). */
  readonly cpuid: CpuidFacts | null;
  /** null: kvm_amd is not loaded. */
  readonly kvmAmd: KvmAmdFacts | null;
  readonly devSev: DevSevFacts;
}

export const CPUID_LEAF_EXTENDED_MAX = 0x8000_0000;
export const CPUID_LEAF_MEMORY_ENCRYPTION = 0x8000_001f;

/** Gather every fact; never throws. */
export async function readHostFacts(root = '/'): Promise<HostFacts> {
  const [cpuinfo, cpuid, kvmAmd, devSev] = await Promise.all([
    readCpuInfo(join(root, 'proc/cpuinfo')),
    readCpuid(join(root, 'dev/cpu/0/cpuid')),
    readKvmAmd(join(root, 'sys/module/kvm_amd')),
    readDevSev(join(root, 'dev/sev')),
  ]);
  return { cpuinfo, cpuid, kvmAmd, devSev };
}

/** Parse the first processor block of /proc/cpuinfo text (pure; exported for tests). */
export function parseCpuInfo(text: string): CpuInfoFacts {
  let vendor: string | null = null;
  let flags: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' && (vendor !== null || flags.length > 0)) break;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (key === 'vendor_id') vendor = value;
    else if (key === 'flags') flags = value.split(/\s+/).filter((flag) => flag !== '');
  }
  return { vendor, flags: new Set(flags) };
}

/** Decode the four registers of a CPUID read (EAX, EBX, ECX, EDX little-endian). */
export function decodeCpuidRegisters(bytes: Uint8Array): { eax: number; ebx: number; ecx: number; edx: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { eax: view.getUint32(0, true), ebx: view.getUint32(4, true), ecx: view.getUint32(8, true), edx: view.getUint32(12, true) };
}

async function readCpuInfo(path: string): Promise<CpuInfoFacts | null> {
  try {
    // procfs hands out cpuinfo a page per read; readFile loops to the end (~1 KiB per CPU).
    return parseCpuInfo(await readFile(path, 'utf8'));
  } catch {
    return null;
  }
}

/** The cpuid driver answers a 16-byte pread at offset = leaf (subleaf in the high 32 bits). */
async function readCpuid(path: string): Promise<CpuidFacts | null> {
  try {
    const handle = await open(path, 'r');
    try {
      const leaf = async (n: number): Promise<ReturnType<typeof decodeCpuidRegisters> | null> => {
        const buffer = Buffer.alloc(16);
        const { bytesRead } = await handle.read(buffer, 0, 16, n);
        return bytesRead === 16 ? decodeCpuidRegisters(buffer) : null;
      };
      const base = await leaf(0);
      const extended = await leaf(CPUID_LEAF_EXTENDED_MAX);
      if (base === null || extended === null) return null;
      const vendor = Buffer.alloc(12);
      vendor.writeUInt32LE(base.ebx, 0);
      vendor.writeUInt32LE(base.edx, 4);
      vendor.writeUInt32LE(base.ecx, 8);
      const maxExtendedLeaf = extended.eax;
      // Above the maximum leaf, Intel CPUs answer with the highest basic leaf: not data.
      const encryption = maxExtendedLeaf >= CPUID_LEAF_MEMORY_ENCRYPTION ? await leaf(CPUID_LEAF_MEMORY_ENCRYPTION) : null;
      return {
        vendor: vendor.toString('latin1'),
        maxExtendedLeaf,
        memoryEncryption: encryption === null ? null : { eax: encryption.eax, ebx: encryption.ebx },
      };
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
}

async function readKvmAmd(moduleDir: string): Promise<KvmAmdFacts | null> {
  try {
    if (!(await stat(moduleDir)).isDirectory()) return null;
  } catch {
    return null;
  }
  const param = async (name: string): Promise<KvmParam> => {
    try {
      const raw = (await readFile(join(moduleDir, 'parameters', name), 'utf8')).trim();
      // Booleans read Y/N; older kernels exposed sev as an int (1/0).
      if (raw === 'Y' || raw === 'y' || raw === '1') return { enabled: true, raw };
      if (raw === 'N' || raw === 'n' || raw === '0') return { enabled: false, raw };
      return { enabled: false, raw };
    } catch {
      return null;
    }
  };
  const [sev, sevEs, sevSnp] = await Promise.all([param('sev'), param('sev_es'), param('sev_snp')]);
  return { sev, sevEs, sevSnp };
}

async function readDevSev(path: string): Promise<DevSevFacts> {
  try {
    await stat(path);
  } catch {
    return { present: false };
  }
  try {
    // QEMU opens /dev/sev read-write; sevctl checks the same.
    await access(path, constants.R_OK | constants.W_OK);
    return { present: true, accessible: true };
  } catch (error: unknown) {
    const code = errnoOf(error) ?? String(error);
    return { present: true, accessible: false, error: code };
  }
}
