import { describe, expect, it } from 'vitest';
import { readQemuArgv } from '../../../../src/platform/sim/argv-model.js';
import { planSnpStartup, readSnpObject, type SnpStartupFacts } from '../../../../src/platform/sim/snp-startup-checks.js';
import type { OvmfTable } from '../../../../src/sev/ovmf-table.js';
import { ovmfTable } from './fixtures.js';

const table = (o: { hashes?: OvmfTable['hashesArea']; reset?: number | null } = {}): OvmfTable => ovmfTable({ ...o, snp: true });

function facts(o: { table?: OvmfTable | null; size?: number | null; bz?: boolean | null; api?: [number, number] } = {}): SnpStartupFacts {
  return {
    host: { apiMajor: o.api?.[0] ?? 1, apiMinor: o.api?.[1] ?? 55, existingDevices: new Set() },
    firmware: {
      given: 'snp.fd',
      size: o.size === undefined ? 0x400000 : o.size,
      table: o.table === undefined ? table() : o.table,
      tableError: null,
    },
    kernelIsBzImage: o.bz === undefined ? true : o.bz,
  };
}

/** The smallest sev-snp-guest QEMU takes, and the one sevsup starts (the host's cbitpos, kernel hashes). */
const GUEST = 'sev-snp-guest,id=sev0,reduced-phys-bits=1';
const STOCK = 'sev-snp-guest,id=sev0,cbitpos=47,reduced-phys-bits=1';
const OBJECT = `${STOCK},kernel-hashes=on`;
function argv(o: { object?: string; machine?: string; kernel?: boolean; accel?: boolean } = {}): string[] {
  return [
    '-S',
    '-machine',
    o.machine ?? 'q35,confidential-guest-support=sev0,smm=off',
    ...(o.accel === false ? [] : ['-accel', 'kvm']),
    '-bios',
    'snp.fd',
    ...(o.kernel === false ? [] : ['-kernel', '/boot/vmlinuz']),
    '-object',
    o.object ?? OBJECT,
  ];
}

const plan = (a: string[], f = facts()) => planSnpStartup(readQemuArgv(a), f);
const PRE = 'qemu-system-x86_64: ';
const KVM_FAILED = `${PRE}-accel kvm: failed to initialize kvm: Operation not permitted`;

describe('readSnpObject', () => {
  const read = (text: string) => {
    const model = readQemuArgv(['-object', text, '-machine', 'q35,confidential-guest-support=sev0']);
    return readSnpObject(model.sevObjects[0] as NonNullable<(typeof model.sevObjects)[0]>);
  };

  it("takes QEMU 10's defaults and decodes the byte properties", () => {
    const r = read(`${GUEST},host-data=${Buffer.alloc(32, 7).toString('base64')}`);
    expect(r).toMatchObject({ policy: 0x30000n, cbitpos: 0, kernelHashes: false, sevDevice: '/dev/sev', idBlock: null });
    if ('error' in r) throw new Error(r.error);
    expect(r.hostData).toEqual(Buffer.alloc(32, 7));
  });

  it('words visitor errors as QEMU does for keyval and for JSON', () => {
    expect(read('sev-snp-guest,id=sev0')).toEqual({ error: "Parameter 'reduced-phys-bits' is missing" });
    expect(read(`${GUEST},legacy-vm-type=on`)).toEqual({ error: "Invalid parameter 'legacy-vm-type'" });
    expect(read('{"qom-type":"sev-snp-guest","id":"sev0","reduced-phys-bits":1,"session-file":"/s"}')).toEqual({
      error: "Parameter 'session-file' is unexpected",
    });
    expect(read(`${GUEST},cbitpos=4294967296`)).toEqual({ error: "Parameter 'cbitpos' expects uint32_t" });
    expect(read('{"qom-type":"sev-snp-guest","id":"sev0","reduced-phys-bits":1,"kernel-hashes":"on"}')).toEqual({
      error: "Invalid parameter type for 'kernel-hashes', expected: boolean",
    });
    expect(read(`${GUEST},vcek-disabled=maybe`)).toEqual({
      error: "Parameter 'vcek-disabled' expects 'on' or 'off'",
    });
  });

  it('reads a 64-bit policy and refuses base64 that qbase64_decode refuses', () => {
    expect(read(`${GUEST},policy=0xffffffffffffffff`)).toMatchObject({ policy: 0xffffffffffffffffn });
    expect(read(`${GUEST},host-data=!!!!`)).toEqual({
      error: 'Base64 data contains invalid characters',
      setter: true,
    });
    // glib drops a trailing incomplete group (QEMU 10.0.13 says "parameter length of 0").
    expect(read(`${GUEST},host-data=AAA`)).toEqual({
      error: 'parameter length of 0 not equal to 32',
      setter: true,
    });
  });
});

describe('planSnpStartup', () => {
  it('accepts a stock SNP launch and builds the kernel-hashes table', () => {
    expect(plan(argv())).toMatchObject({ kind: 'snp', resetAddress: 0x80b004, kernelHashesBuilt: true, lines: [] });
    expect(plan(argv({ kernel: false }))).toMatchObject({ kind: 'snp', kernelHashesBuilt: false });
  });

  it('refuses the SMM, reduced-phys-bits and policy problems in sev_common_kvm_init order', () => {
    expect(plan(argv({ machine: 'q35,confidential-guest-support=sev0,smm=on' }))).toEqual({
      kind: 'fail',
      lines: [`${PRE}-accel kvm: SEV-SNP does not support SMM.`, KVM_FAILED],
      exit: 'exit-1',
    });
    expect(plan(argv({ object: 'sev-snp-guest,id=sev0,cbitpos=47,reduced-phys-bits=64' }))).toMatchObject({
      lines: [
        `${PRE}-accel kvm: sev_common_kvm_init: reduced_phys_bits check failed, it should be in the range of 1 to 63, requested '64'`,
        KVM_FAILED,
      ],
    });
    // Bit 17 clear, MIGRATE_MA or a reserved bit set: KVM's -EINVAL; an ABI floor above the firmware's: the PSP's POLICY_FAILURE.
    for (const policy of ['0x70000', '0x4030000']) {
      expect(plan(argv({ object: `${STOCK},policy=${policy}` })), policy).toMatchObject({
        lines: [`${PRE}-accel kvm: sev_snp_launch_start: SNP_LAUNCH_START ret=-22 fw_error=0 ''`, expect.any(String), KVM_FAILED],
      });
    }
    expect(plan(argv({ object: `${STOCK},policy=0x3f30000` }))).toMatchObject({ kind: 'snp' });
    expect(plan(argv({ object: `${STOCK},policy=0x10000` }))).toMatchObject({
      lines: [
        `${PRE}-accel kvm: sev_snp_launch_start: SNP_LAUNCH_START ret=-22 fw_error=0 ''`,
        `${PRE}-accel kvm: sev_common_kvm_init: failed to create encryption context`,
        KVM_FAILED,
      ],
    });
    expect(plan(argv({ object: `${STOCK},policy=0x30200` }))).toMatchObject({
      lines: [
        `${PRE}-accel kvm: sev_snp_launch_start: SNP_LAUNCH_START ret=-5 fw_error=7 'Policy is not allowed'`,
        expect.any(String),
        KVM_FAILED,
      ],
    });
  });

  it('aborts when no accelerator makes the object ready (TCG)', () => {
    expect(plan(argv({ accel: false }))).toMatchObject({ kind: 'fail', exit: 'abort' });
  });

  it('refuses firmware as x86_bios_rom_init and the reset-vector search do', () => {
    expect(plan(argv(), facts({ size: 0x37c000 }))).toEqual({
      kind: 'fail',
      lines: [`${PRE}qemu: could not load PC BIOS 'snp.fd'`],
      exit: 'exit-1',
    });
    expect(plan(argv(), facts({ size: null }))).toMatchObject({ lines: [`${PRE}qemu: could not load PC BIOS 'snp.fd'`] });
    expect(plan(argv(), facts({ table: table({ reset: 0 }) }))).toMatchObject({
      lines: [`${PRE}SEV-ES reset address is zero`, `${PRE}failed to locate and/or save reset vector`],
    });
    expect(plan(argv(), facts({ table: null }))).toMatchObject({
      lines: [
        `${PRE}SEV information block/Firmware GUID Table block not found in pflash rom`,
        `${PRE}failed to locate and/or save reset vector`,
      ],
    });
  });

  it('refuses kernel-hashes with a firmware whose hashes area is missing or invalid', () => {
    expect(plan(argv(), facts({ table: table({ hashes: null }) }))).toMatchObject({
      lines: [`${PRE}SEV: kernel specified but guest firmware has no hashes table GUID`],
    });
    expect(plan(argv(), facts({ table: table({ hashes: { base: 0, size: 0 } }) }))).toMatchObject({
      lines: [`${PRE}SEV: guest firmware hashes table area is invalid (base=0x0 size=0x0)`],
    });
  });
});
