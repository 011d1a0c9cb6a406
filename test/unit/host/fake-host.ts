// Test helper: a fake host tree (proc/, sys/, dev/ under a temp root) for the probe and the
// lookup order. Regular files stand in for /dev nodes; the CPUID "device" is a sparse file
// answering 16-byte reads at offset = leaf, as the cpuid driver does.
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export interface FakeHost {
  /** `vendor_id` in /proc/cpuinfo; null: no cpuinfo at all. @default 'AuthenticAMD' */
  readonly vendor?: string | null;
  /** CPU flags in /proc/cpuinfo. @default ['fpu', 'svm', 'sev', 'sev_es'] */
  readonly flags?: readonly string[];
  /** kvm_amd parameters (file content); null: kvm_amd not loaded; a missing key: no such parameter. */
  readonly kvmAmd?: Partial<Record<'sev' | 'sev_es' | 'sev_snp', string>> | null;
  /** @default true */
  readonly devSev?: boolean;
  /** CPUID 0x8000001F; null: no /dev/cpu/0/cpuid. */
  readonly cpuid?: { readonly eax: number; readonly ebx: number; readonly maxExtendedLeaf?: number } | null;
  readonly bootId?: string;
}

/** EAX bits 1 (SEV) and 3 (ES); EBX cbitpos 47, reduced-phys-bits 1. */
export const ROME_CPUID = { eax: 0b1011, ebx: 47 | (1 << 6) };

export async function makeFakeHost(spec: FakeHost = {}): Promise<{ root: string; remove: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'sevsup-fakehost-'));
  const put = async (path: string, text: string): Promise<void> => {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  };
  const vendor = spec.vendor === undefined ? 'AuthenticAMD' : spec.vendor;
  if (vendor !== null) {
    const flags = (spec.flags ?? ['fpu', 'svm', 'sev', 'sev_es']).join(' ');
    const block = (n: number): string => `processor\t: ${n}\nvendor_id\t: ${vendor}\nflags\t\t: ${flags}\n\n`;
    await put('proc/cpuinfo', block(0) + block(1));
  }
  const kvmAmd = spec.kvmAmd === undefined ? { sev: 'Y', sev_es: 'Y', sev_snp: 'N' } : spec.kvmAmd;
  if (kvmAmd !== null) {
    await mkdir(join(root, 'sys/module/kvm_amd/parameters'), { recursive: true });
    for (const [name, value] of Object.entries(kvmAmd)) await put(`sys/module/kvm_amd/parameters/${name}`, `${value}\n`);
  }
  if (spec.devSev !== false) await put('dev/sev', '');
  if (spec.cpuid != null) {
    await mkdir(join(root, 'dev/cpu/0'), { recursive: true });
    const handle = await open(join(root, 'dev/cpu/0/cpuid'), 'w');
    const regs = (eax: number, ebx: number, ecx: number, edx: number): Buffer => {
      const b = Buffer.alloc(16);
      b.writeUInt32LE(eax >>> 0, 0);
      b.writeUInt32LE(ebx >>> 0, 4);
      b.writeUInt32LE(ecx >>> 0, 8);
      b.writeUInt32LE(edx >>> 0, 12);
      return b;
    };
    const v = Buffer.from((vendor ?? 'AuthenticAMD').padEnd(12, ' ').slice(0, 12), 'latin1');
    await handle.write(regs(0x10, v.readUInt32LE(0), v.readUInt32LE(8), v.readUInt32LE(4)), 0, 16, 0);
    await handle.write(regs(spec.cpuid.maxExtendedLeaf ?? 0x8000_0021, 0, 0, 0), 0, 16, 0x8000_0000);
    await handle.write(regs(spec.cpuid.eax, spec.cpuid.ebx, 0, 0), 0, 16, 0x8000_001f);
    await handle.close();
  }
  await put('proc/sys/kernel/random/boot_id', `${spec.bootId ?? '0f4c3e2a-0000-4000-8000-000000000001'}\n`);
  return { root, remove: () => rm(root, { recursive: true, force: true }) };
}
