// Test helper: a second, independent description of the VMSA save area (sev-snp-measure's ctypes
// field list, offsets summed here) and the pages its build_save_area makes for QEMU, ec2 and gce.
// The callers choose RDX and the x87/SSE words, as those are what the VMM types differ in.
/**
 * A second, independent description of the save area: sev-snp-measure's field list (names and
 * sizes in order, as in its ctypes SevEsSaveArea), turned into offsets here by summing sizes.
 */
const FIELDS: readonly (readonly [string, number])[] = [
  ...['es', 'cs', 'ss', 'ds', 'fs', 'gs', 'gdtr', 'ldtr', 'idtr', 'tr'].map((s) => [s, 16] as const),
  ['vmpl0_ssp', 8],
  ['vmpl1_ssp', 8],
  ['vmpl2_ssp', 8],
  ['vmpl3_ssp', 8],
  ['u_cet', 8],
  ['reserved_1', 2],
  ['vmpl', 1],
  ['cpl', 1],
  ['reserved_2', 4],
  ['efer', 8],
  ['reserved_3', 104],
  ['xss', 8],
  ['cr4', 8],
  ['cr3', 8],
  ['cr0', 8],
  ['dr7', 8],
  ['dr6', 8],
  ['rflags', 8],
  ['rip', 8],
  ['dr0', 8],
  ['dr1', 8],
  ['dr2', 8],
  ['dr3', 8],
  ['dr0m', 8],
  ['dr1m', 8],
  ['dr2m', 8],
  ['dr3m', 8],
  ['reserved_4', 24],
  ['rsp', 8],
  ['s_cet', 8],
  ['ssp', 8],
  ['isst_addr', 8],
  ['rax', 8],
  ['star', 8],
  ['lstar', 8],
  ['cstar', 8],
  ['sfmask', 8],
  ['kernel_gs_base', 8],
  ['sysenter_cs', 8],
  ['sysenter_esp', 8],
  ['sysenter_eip', 8],
  ['cr2', 8],
  ['reserved_5', 32],
  ['g_pat', 8],
  ['dbgctrl', 8],
  ['br_from', 8],
  ['br_to', 8],
  ['last_excp_from', 8],
  ['last_excp_to', 8],
  ['reserved_7', 80],
  ['pkru', 4],
  ['reserved_8', 20],
  ['reserved_9', 8],
  ['rcx', 8],
  ['rdx', 8],
  ['rbx', 8],
  ['reserved_10', 8],
  ['rbp', 8],
  ['rsi', 8],
  ['rdi', 8],
  ['r8', 8],
  ['r9', 8],
  ['r10', 8],
  ['r11', 8],
  ['r12', 8],
  ['r13', 8],
  ['r14', 8],
  ['r15', 8],
  ['reserved_11', 16],
  ['guest_exit_info_1', 8],
  ['guest_exit_info_2', 8],
  ['guest_exit_int_info', 8],
  ['guest_nrip', 8],
  ['sev_features', 8],
  ['vintr_ctrl', 8],
  ['guest_exit_code', 8],
  ['virtual_tom', 8],
  ['tlb_id', 8],
  ['pcpu_id', 8],
  ['event_inj', 8],
  ['xcr0', 8],
  ['reserved_12', 16],
  ['x87_dp', 8],
  ['mxcsr', 4],
  ['x87_ftw', 2],
  ['x87_fsw', 2],
  ['x87_fcw', 2],
];
const AT = new Map<string, number>();
let next = 0;
for (const [name, size] of FIELDS) {
  AT.set(name, next);
  next += size;
}
const at = (name: string): number => {
  const offset = AT.get(name);
  if (offset === undefined) throw new Error(`no field ${name}`);
  return offset;
};

/** The page sev-snp-measure builds for QEMU (its build_save_area), with x87/SSE words optional. */
export function referencePage(eip: number, sig: number, features: bigint, fpu: boolean, vmm: 'QEMU' | 'ec2' | 'gce' = 'QEMU'): Buffer {
  const page = Buffer.alloc(4096);
  const seg = (name: string, selector: number, attrib: number, limit: number, segBase: number): void => {
    page.writeUInt16LE(selector, at(name));
    page.writeUInt16LE(attrib, at(name) + 2);
    page.writeUInt32LE(limit, at(name) + 4);
    page.writeBigUInt64LE(BigInt(segBase), at(name) + 8);
  };
  for (const s of ['es', 'ss', 'ds', 'fs', 'gs']) seg(s, 0, s === 'ss' && vmm === 'ec2' ? 0x92 : 0x93, 0xffff, 0);
  seg('cs', 0xf000, vmm === 'ec2' && eip === 0xfffffff0 ? 0x9a : 0x9b, 0xffff, eip - (eip % 0x10000));
  seg('gdtr', 0, 0, 0xffff, 0);
  seg('idtr', 0, 0, 0xffff, 0);
  seg('ldtr', 0, 0x82, 0xffff, 0);
  seg('tr', 0, vmm === 'ec2' ? 0x83 : 0x8b, 0xffff, 0);
  const q = (name: string, v: bigint): void => {
    page.writeBigUInt64LE(v, at(name));
  };
  q('efer', 0x1000n);
  q('cr4', 0x40n);
  q('cr0', 0x10n);
  q('dr7', 0x400n);
  q('dr6', 0xffff0ff0n);
  q('rflags', 2n);
  q('rip', BigInt(eip % 0x10000));
  q('g_pat', vmm === 'gce' ? 0x70106n : 0x7040600070406n);
  q('rdx', BigInt(sig));
  q('sev_features', features);
  q('xcr0', 1n);
  if (fpu) {
    page.writeUInt32LE(0x1f80, at('mxcsr'));
    page.writeUInt16LE(0x37f, at('x87_fcw'));
  }
  return page;
}
