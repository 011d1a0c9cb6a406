import { describe, expect, it } from 'vitest';
import { readQemuArgv } from '../../../../src/platform/sim/argv-model.js';
import { CGS_NOT_READY_ASSERT, glibReadError, planStartup, type StartupFacts } from '../../../../src/platform/sim/startup-checks.js';
import { ovmfTable as table, simArgv } from './fixtures.js';

function facts(o: Partial<StartupFacts> = {}): StartupFacts {
  return {
    unreadableFiles: new Map(),
    existingDevices: new Set(),
    firmwareTable: table(),
    firmwareTableError: null,
    kernelIsBzImage: true,
    ...o,
  };
}

/** buildQemuArgv's argv with the sev-guest object's JSON edited. */
function withObject(edit: (o: Record<string, unknown>) => void, argv = simArgv()): string[] {
  const i = argv.indexOf('-object') + 1;
  const object = JSON.parse(argv[i] as string) as Record<string, unknown>;
  edit(object);
  argv[i] = JSON.stringify(object);
  return argv;
}

const KVM_FAILED = 'qemu-system-x86_64: -accel kvm: failed to initialize kvm: Operation not permitted';

describe('planStartup', () => {
  it('accepts buildQemuArgv on the simulated host and measures kernel hashes', () => {
    const plan = planStartup(readQemuArgv(simArgv()), facts());
    expect(plan).toMatchObject({
      kind: 'sev',
      lines: [],
      es: false,
      measureKernelHashes: true,
      params: { policy: 9, cbitpos: 47, reducedPhysBits: 1 },
    });
  });

  it('is plain without the machine link (an unlinked object is a normal VM)', () => {
    const argv = simArgv().map((a) => (a === 'q35,dump-guest-core=off,confidential-guest-support=sev0' ? 'q35,dump-guest-core=off' : a));
    expect(planStartup(readQemuArgv(argv), facts())).toEqual({ kind: 'plain' });
  });

  it.each([
    [
      (o: Record<string, unknown>) => (o['cbitpos'] = 51),
      ["qemu-system-x86_64: -accel kvm: sev_kvm_init: cbitpos check failed, host '47' requested '51'"],
    ],
    [
      (o: Record<string, unknown>) => (o['reduced-phys-bits'] = 0),
      ["qemu-system-x86_64: -accel kvm: sev_kvm_init: reduced_phys_bits check failed, it should be >=1, requested '0'"],
    ],
    [
      (o: Record<string, unknown>) => (o['sev-device'] = '/dev/nosuch'),
      ["qemu-system-x86_64: -accel kvm: sev_kvm_init: Failed to open /dev/nosuch 'No such file or directory'"],
    ],
    [
      (o: Record<string, unknown>) => (o['session-file'] = '/owner/session.b64'),
      [
        "qemu-system-x86_64: -accel kvm: SEV: Failed to read '/owner/session.b64' (Failed to open file “/owner/session.b64”: No such file or directory)",
        'qemu-system-x86_64: -accel kvm: sev_kvm_init: failed to create encryption context',
      ],
    ],
  ])('refuses a bad object with QEMU 7.2 texts (%#)', (edit, lines) => {
    const plan = planStartup(
      readQemuArgv(withObject(edit)),
      facts({ unreadableFiles: new Map([['/owner/session.b64', glibReadError('/owner/session.b64', 'ENOENT')]]) }),
    );
    expect(plan).toEqual({ kind: 'fail', lines: [...lines, KVM_FAILED], exit: 'exit-1' });
  });

  it('checks cbitpos before reduced-phys-bits, as sev_kvm_init does', () => {
    const plan = planStartup(readQemuArgv(withObject((o) => Object.assign(o, { cbitpos: 0, 'reduced-phys-bits': 0 }))), facts());
    expect(plan.kind === 'fail' && plan.lines[0]).toMatch(/cbitpos check failed/);
  });

  it('prints no location without -accel (-enable-kvm)', () => {
    const argv = withObject((o) => (o['cbitpos'] = 1))
      .map((a) => (a === '-accel' ? '-enable-kvm' : a))
      .filter((a) => a !== 'kvm');
    expect(planStartup(readQemuArgv(argv), facts())).toMatchObject({
      lines: [
        "qemu-system-x86_64: sev_kvm_init: cbitpos check failed, host '47' requested '1'",
        'qemu-system-x86_64: failed to initialize kvm: Operation not permitted',
      ],
    });
  });

  it('aborts like 7.2 when TCG ends up as the accelerator', () => {
    const noAccel = simArgv().filter((a, i, all) => a !== '-accel' && all[i - 1] !== '-accel');
    expect(planStartup(readQemuArgv(noAccel), facts())).toEqual({
      kind: 'fail',
      lines: [`qemu-system-x86_64: ${CGS_NOT_READY_ASSERT}`],
      exit: 'abort',
    });
    const fallback = withObject((o) => (o['cbitpos'] = 51), [...simArgv(), '-accel', 'tcg']);
    const plan = planStartup(readQemuArgv(fallback), facts());
    expect(plan).toMatchObject({ kind: 'fail', exit: 'abort' });
    expect(plan.kind === 'fail' && plan.lines.slice(2)).toEqual([
      'qemu-system-x86_64: falling back to tcg',
      `qemu-system-x86_64: ${CGS_NOT_READY_ASSERT}`,
    ]);
  });

  it('runs SEV under kvm:tcg when KVM initialises', () => {
    expect(planStartup(readQemuArgv([...simArgv(), '-accel', 'tcg']), facts()).kind).toBe('sev');
  });

  it.each([
    [{ hashes: { base: 0, size: 0 } }, 'SEV: guest firmware hashes table area is invalid (base=0x0 size=0x0)'],
    [{ hashes: { base: 0x80fc00, size: 0x80 } }, 'SEV: guest firmware hashes table area is invalid (base=0x80fc00 size=0x80)'],
    [{ hashes: null }, 'SEV: kernel specified but guest firmware has no hashes table GUID'],
    [{ hashes: { base: 0x7fff0000, size: 0x400 } }, 'SEV: cannot map hashes table guest memory area'],
  ])('refuses kernel-hashes with firmware %j', (t, line) => {
    expect(planStartup(readQemuArgv(simArgv()), facts({ firmwareTable: table(t) }))).toEqual({
      kind: 'fail',
      lines: [`qemu-system-x86_64: ${line}`],
      exit: 'exit-1',
    });
  });

  it('does not look at the hashes area without kernel-hashes or for a non-bzImage kernel', () => {
    const bad = facts({ firmwareTable: table({ hashes: { base: 0, size: 0 } }) });
    expect(planStartup(readQemuArgv(withObject((o) => delete o['kernel-hashes'])), bad).kind).toBe('sev');
    expect(planStartup(readQemuArgv(simArgv()), { ...bad, kernelIsBzImage: false })).toMatchObject({
      kind: 'sev',
      measureKernelHashes: false,
    });
  });

  it('needs the SEV info block for SEV-ES', () => {
    const es = readQemuArgv(withObject((o) => (o['policy'] = 0xd)));
    expect(planStartup(es, facts())).toMatchObject({ kind: 'sev', es: true, resetAddress: 0x80b004 });
    expect(planStartup(es, facts({ firmwareTable: table({ reset: null }) }))).toEqual({
      kind: 'fail',
      lines: [
        'qemu-system-x86_64: SEV information block/Firmware GUID Table block not found in pflash rom',
        'qemu-system-x86_64: failed to locate and/or save reset vector',
      ],
      exit: 'exit-1',
    });
    expect(planStartup(es, facts({ firmwareTable: table({ reset: 0 }) }))).toMatchObject({
      lines: ['qemu-system-x86_64: SEV-ES reset address is zero', 'qemu-system-x86_64: failed to locate and/or save reset vector'],
    });
  });

  it('leaves objects it cannot read to QEMU', () => {
    expect(planStartup(readQemuArgv(withObject((o) => (o['bogus'] = 1))), facts())).toMatchObject({ kind: 'unreadable' });
    expect(planStartup(readQemuArgv(withObject((o) => delete o['reduced-phys-bits'])), facts())).toMatchObject({ kind: 'unreadable' });
  });
});
