// buildQemuArgv: golden argv per scenario (test/fixtures/argv/<scenario>.argv, one argument per
// line; regenerate with UPDATE_GOLDEN=1), the seed's checks in order with their exact texts, and
// values that cannot reach QEMU unchanged.
import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { LegacySevSpec, VmSpec } from '../../../src/config/vm-spec.js';
import type { HostCaps } from '../../../src/host/host-caps.js';
import { parseVmConfig } from '../../../src/config/vm-config.js';
import { SIMULATED_HOST_CAPS } from '../../../src/host/simulated.js';
import { isSupervisorError, type ErrorCode } from '../../../src/errors.js';
import { buildQemuArgv, buildQemuCommandLine, type QemuArgvInput } from '../../../src/qemu/argv.js';
import { vmRunPaths } from '../../../src/process/run-dir.js';
import type { SnpLaunchFiles } from '../../../src/qemu/snp.js';
import { AMDSEV_FW, FW, ID_FILES, KERNEL, SNP_SCENARIOS } from '../../support/snp-argv-scenarios.js';

/** SEV, SEV-ES and SEV-SNP supported, cbitpos 47, reduced-phys-bits 1 (each test changes what it needs). */
const CAPS: HostCaps = { ...SIMULATED_HOST_CAPS, sevSnp: { supported: true, reason: 'supported: test host', source: 'test' } };

/** Config text per scenario; every scenario is one golden file. */
interface Scenario {
  readonly lines: readonly string[];
  /** For values a config file cannot hold (property strings have no comma escape). */
  readonly patch?: (spec: VmSpec) => VmSpec;
  readonly options?: QemuArgvInput['options'];
  readonly backingChains?: QemuArgvInput['backingChains'];
  /** What preflight read for an SNP guest (vm/snp-preflight.ts). */
  readonly snp?: SnpLaunchFiles;
}

const SCENARIOS: Record<string, Scenario> = {
  std: { lines: ['amd_sev: type=std', FW] },
  es: { lines: ['amd_sev: es', FW, 'cores: 2'] },
  'std-nodbg-noks': { lines: ['amd_sev: type=std,nodbg=1,noks=1', FW] },
  'std-nodbg-noks-proxmox-spelling': { lines: ['amd-sev: type=std,no-debug=1,no-key-sharing=1', FW] },
  'std-nodbg': { lines: ['amd_sev: type=std,nodbg=1', FW] },
  'es-noks': { lines: ['amd_sev: es,noks=1', FW] },
  'es-nodbg-kernel-hashes-seed': { lines: ['amd_sev: es,nodbg=1,kernel-hashes=1', AMDSEV_FW, ...KERNEL] },
  'kernel-hashes': { lines: ['amd_sev: type=std,kernel-hashes=1', AMDSEV_FW, ...KERNEL] },
  'host-params-override': { lines: ['amd_sev: type=std,cbitpos=51,reduced-phys-bits=5', FW] },
  'launch-session': {
    lines: ['amd_sev: type=std,nodbg=1,noks=1', FW, 'launch: dh-cert=/srv/owner/godh.b64,session=/srv/owner/session.b64'],
  },
  'disks-nets': {
    lines: [
      'amd_sev: type=std',
      FW,
      'disk0: file=/srv/images/root.qcow2',
      'disk1: file=/srv/images/data.img,format=raw,readonly=1',
      'net0: type=user,mac=52:54:00:12:34:56',
      'net1: type=tap,ifname=tap-vm1',
    ],
  },
  'disk-backing-chain': {
    lines: ['amd_sev: type=std', FW, 'disk0: file=/srv/images/top.qcow2', 'disk1: file=/srv/images/solo.qcow2'],
    backingChains: new Map([
      [
        0,
        [
          { file: '/srv/images/mid.qcow2', format: 'qcow2' },
          { file: '/srv/images/base.img', format: 'raw' },
        ],
      ],
      [1, []],
    ]),
  },
  'no-sev': {
    lines: ['disk0: file=/srv/images/root.qcow2', 'net0: type=user', 'memory: 2048', 'cores: 2', 'cpu: qemu64'],
  },
  'no-sev-ovmf-kernel': { lines: ['bios: ovmf', ...KERNEL, 'serial: none'] },
  'sandbox-runas': { lines: ['amd_sev: type=std', FW], options: { sandbox: true, runAs: 'sevsup-qemu' } },
  'firmware-commas-spaces': {
    lines: ['amd_sev: type=std'],
    patch: (spec) => ({ ...spec, firmware: { path: '/srv/fw dir/OVMF, AmdSev,,v2.fd' } }),
  },
  ...SNP_SCENARIOS,
  'cmdline-commas-quotes': {
    lines: [
      'bios: ovmf',
      'kernel: /srv/boot,x/vmlinuz 6.1',
      `cmdline: console=ttyS0,115200 root="/dev/vda1" opt=a,b,,c 'x y' -device foo,id=evil`,
    ],
  },
};

function specFor(name: string, lines: readonly string[], patch?: Scenario['patch']): VmSpec {
  const spec = parseVmConfig([`name: ${name}`, ...lines, ''].join('\n'), `/etc/sevsup/vms/${name}.conf`);
  return patch === undefined ? spec : patch(spec);
}

function inputFor(
  spec: VmSpec,
  options?: QemuArgvInput['options'],
  backingChains?: QemuArgvInput['backingChains'],
  snp?: SnpLaunchFiles,
): QemuArgvInput {
  const paths = vmRunPaths('/run/sevsup', spec.name);
  return {
    spec,
    caps: CAPS,
    paths: {
      monitorSocket: paths.monitorSocket,
      pidFile: paths.pidFile,
      ...(spec.serial === 'file' ? { serialLog: paths.serialLog } : {}),
    },
    ...(options === undefined ? {} : { options }),
    ...(backingChains === undefined ? {} : { backingChains }),
    ...(snp === undefined ? {} : { snp }),
  };
}

async function expectGolden(scenario: string, argv: readonly string[]): Promise<void> {
  const file = new URL(`../../fixtures/argv/${scenario}.argv`, import.meta.url);
  const text = `${argv.join('\n')}\n`;
  if (process.env['UPDATE_GOLDEN'] === '1') {
    await writeFile(file, text);
    return;
  }
  let expected: string;
  try {
    expected = await readFile(file, 'utf8');
  } catch {
    throw new Error(`no golden file test/fixtures/argv/${scenario}.argv; run with UPDATE_GOLDEN=1 to create it`);
  }
  expect(text).toBe(expected);
}

describe('buildQemuArgv golden files', () => {
  for (const [scenario, { lines, patch, options, backingChains, snp }] of Object.entries(SCENARIOS)) {
    it(scenario, async () => {
      const argv = buildQemuArgv(inputFor(specFor('vm1', lines, patch), options, backingChains, snp));
      await expectGolden(scenario, argv);
    });
  }

  it('gives the same argv for the seed and the shipped Proxmox spelling', () => {
    const seed = buildQemuArgv(inputFor(specFor('vm1', SCENARIOS['std-nodbg-noks']!.lines)));
    const proxmox = buildQemuArgv(inputFor(specFor('vm1', SCENARIOS['std-nodbg-noks-proxmox-spelling']!.lines)));
    expect(proxmox).toEqual(seed);
  });
});

describe('buildQemuArgv invariants', () => {
  const all = Object.entries(SCENARIOS).map(([scenario, { lines, patch, options, snp }]) => {
    const spec = specFor('vm1', lines, patch);
    return { scenario, spec, argv: buildQemuArgv(inputFor(spec, options, undefined, snp)) };
  });

  it.each(all)('$scenario: paused, KVM alone, no pflash or -drive, private monitor', ({ argv }) => {
    expect(argv).toContain('-S');
    expect(argv.filter((a) => a === '-accel')).toHaveLength(1);
    expect(argv[argv.indexOf('-accel') + 1]).toBe('kvm');
    expect(argv.join('\n')).not.toMatch(/tcg|pflash|accel=/);
    expect(argv).not.toContain('-drive');
    expect(argv).not.toContain('-enable-kvm');
    expect(argv).toContain('chardev=monitor,mode=control');
  });

  it.each(all)('$scenario: SEV object exactly when SEV is configured, always linked', ({ spec, argv }) => {
    const machine = argv[argv.indexOf('-machine') + 1];
    const objects = argv.filter((_, i) => argv[i - 1] === '-object').map((o) => JSON.parse(o) as Record<string, unknown>);
    if (spec.sev === undefined) {
      expect(machine).toBe('q35,dump-guest-core=off');
      expect(objects).toEqual([]);
    } else if (spec.sev.type === 'snp') {
      expect(machine).toBe('q35,dump-guest-core=off,confidential-guest-support=sev0,smm=off');
      expect(objects).toHaveLength(1);
      expect(objects[0]).toMatchObject({ 'qom-type': 'sev-snp-guest', id: 'sev0' });
      // sev-guest's launch-session properties do not exist on sev-snp-guest.
      for (const name of ['dh-cert-file', 'session-file', 'handle', 'legacy-vm-type']) expect(objects[0]).not.toHaveProperty(name);
      expect(argv[argv.indexOf('-bios') + 1]).toMatch(/\.fd$/);
    } else {
      expect(machine).toBe('q35,dump-guest-core=off,confidential-guest-support=sev0');
      expect(objects).toHaveLength(1);
      expect(objects[0]).toMatchObject({ 'qom-type': 'sev-guest', id: 'sev0' });
    }
  });

  it.each(all)('$scenario: every virtio device of an SEV guest uses the platform IOMMU', ({ spec, argv }) => {
    const devices = argv.filter((_, i) => argv[i - 1] === '-device').map((d) => JSON.parse(d) as Record<string, unknown>);
    for (const device of devices.filter((d) => String(d['driver']).startsWith('virtio-'))) {
      if (spec.sev === undefined) expect(device).not.toHaveProperty('iommu_platform');
      else expect(device).toMatchObject({ iommu_platform: true, 'disable-legacy': 'on' });
    }
  });

  it.each(all)('$scenario: every qcow2 node states its backing (a stated node or null)', ({ argv }) => {
    const nodes = argv.filter((_, i) => argv[i - 1] === '-blockdev').map((b) => JSON.parse(b) as Record<string, unknown>);
    const defined = new Set<unknown>();
    for (const node of nodes) {
      if (node['driver'] === 'qcow2') {
        expect(node).toHaveProperty('backing');
        if (node['backing'] !== null) expect(defined.has(node['backing'])).toBe(true);
      }
      defined.add(node['node-name']);
    }
  });

  it('opens backing images read-only, deepest first, and pins a raw base without a backing key', () => {
    const argv = buildQemuArgv(
      inputFor(specFor('vm1', SCENARIOS['disk-backing-chain']!.lines), undefined, SCENARIOS['disk-backing-chain']!.backingChains),
    );
    const nodes = argv.filter((_, i) => argv[i - 1] === '-blockdev').map((b) => JSON.parse(b) as Record<string, unknown>);
    const backing = nodes.filter((n) => String(n['node-name']).includes('backing'));
    expect(backing.every((n) => n['read-only'] === true)).toBe(true);
    expect(nodes.find((n) => n['node-name'] === 'disk0-backing2')).not.toHaveProperty('backing');
    expect(nodes.find((n) => n['node-name'] === 'disk0')).toMatchObject({ backing: 'disk0-backing1', 'read-only': false });
    expect(nodes.find((n) => n['node-name'] === 'disk1')).toMatchObject({ backing: null });
  });

  it('groups each option with its arguments for one-per-line printing', () => {
    const groups = buildQemuCommandLine(inputFor(specFor('vm1', SCENARIOS['cmdline-commas-quotes']!.lines)));
    expect(groups.every((g) => g[0]?.startsWith('-') === true)).toBe(true);
    expect(groups).toContainEqual(['-append', `console=ttyS0,115200 root="/dev/vda1" opt=a,b,,c 'x y' -device foo,id=evil`]);
    expect(groups.flat()).toEqual(buildQemuArgv(inputFor(specFor('vm1', SCENARIOS['cmdline-commas-quotes']!.lines))));
  });
});

function errorOf(fn: () => unknown): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
  try {
    fn();
  } catch (error) {
    if (isSupervisorError(error)) return { code: error.code, message: error.message, details: error.details };
    throw error;
  }
  throw new Error('expected an error');
}

describe('the seed checks, in its order and texts', () => {
  const sevSpec = (extra: Partial<VmSpec> = {}, sev: Partial<LegacySevSpec> = {}): VmSpec => {
    const base = specFor('vm1', ['amd_sev: type=std', FW]);
    return { ...base, ...extra, sev: { ...(base.sev as LegacySevSpec), ...sev } };
  };
  const noSev = { ...CAPS, sev: { supported: false, reason: 'not supported, because /dev/sev is missing', source: 'probe:/dev/sev' } };
  const noEs = { ...CAPS, sevEs: { supported: false, reason: 'not supported, because kvm_amd sev_es=N', source: 'probe:kvm_amd' } };
  const run = (spec: VmSpec, caps: HostCaps) => () => buildQemuArgv({ ...inputFor(spec), caps });

  it('bios not ovmf comes first, even on a host without SEV', () => {
    const error = errorOf(run(sevSpec({ bios: 'seabios' }, { type: 'es' }), noSev));
    expect(error.code).toBe('SUP_ERR_SEV_BIOS_NOT_OVMF');
    expect(error.message).toBe('For using SEV you need to change your guest bios to ovmf.');
    expect(error.details).toEqual({ file: '/etc/sevsup/vms/vm1.conf', key: 'amd_sev', bios: 'seabios' });
  });

  it('no SEV on the host comes before the SEV-ES check', () => {
    const error = errorOf(run(sevSpec({}, { type: 'es' }), { ...noSev, sevEs: noEs.sevEs }));
    expect(error.code).toBe('SUP_ERR_SEV_UNSUPPORTED');
    expect(error.message).toBe('Your CPU does not support AMD SEV!');
    expect(error.details).toMatchObject({ reason: 'not supported, because /dev/sev is missing', source: 'probe:/dev/sev' });
  });

  it('SEV-ES without host ES support', () => {
    const error = errorOf(run(sevSpec({}, { type: 'es' }), noEs));
    expect(error.code).toBe('SUP_ERR_SEV_ES_UNSUPPORTED');
    expect(error.message).toBe('Your CPU does not support AMD SEV-ES!');
  });

  it('plain SEV does not need host ES support', () => {
    expect(buildQemuArgv({ ...inputFor(sevSpec()), caps: noEs })).toContain('-object');
  });

  it('a cbitpos unknown to the host and not overridden', () => {
    const error = errorOf(run(sevSpec(), { ...CAPS, cbitpos: null, cbitposSource: '/run/qemu-server/hw-params.json' }));
    expect(error.code).toBe('SUP_ERR_SEV_HOST_PARAMS');
    expect(error.message).toBe(
      '/etc/sevsup/vms/vm1.conf: amd_sev: cbitpos is unknown: the host capabilities (/run/qemu-server/hw-params.json) ' +
        'do not give it; add cbitpos=N to the amd_sev line, or give a host capabilities file that has them ' +
        "(`sevsup host` shows the host's values)",
    );
    expect(error.details).toMatchObject({ missing: ['cbitpos'] });
  });

  it('both values unknown', () => {
    const caps = { ...CAPS, cbitpos: null, reducedPhysBits: null, cbitposSource: 'probe', reducedPhysBitsSource: 'probe' };
    const error = errorOf(run(sevSpec(), caps));
    expect(error.message).toBe(
      '/etc/sevsup/vms/vm1.conf: amd_sev: cbitpos and reduced-phys-bits are unknown: the host capabilities (probe) ' +
        'do not give them; add cbitpos=N,reduced-phys-bits=N to the amd_sev line, or give a host capabilities file ' +
        "that has them (`sevsup host` shows the host's values)",
    );
  });

  it('config overrides fill values the host does not know', () => {
    const argv = buildQemuArgv({
      ...inputFor(sevSpec({}, { cbitpos: 51, reducedPhysBits: 1 })),
      caps: { ...CAPS, cbitpos: null, reducedPhysBits: null },
    });
    expect(JSON.parse(argv[argv.indexOf('-object') + 1]!)).toMatchObject({ cbitpos: 51, 'reduced-phys-bits': 1 });
  });

  it('a VM without SEV never consults the SEV caps', () => {
    const spec = specFor('vm1', ['cpu: qemu64']);
    expect(buildQemuArgv({ ...inputFor(spec), caps: { ...noSev, cbitpos: null, reducedPhysBits: null } })).not.toContain('-object');
  });
});

describe('values that cannot reach QEMU unchanged', () => {
  const plain = specFor('vm1', ['cpu: qemu64', 'bios: ovmf', 'kernel: /srv/vmlinuz']);

  it('refuses a NUL in the kernel path', () => {
    const error = errorOf(() => buildQemuArgv(inputFor({ ...plain, kernel: '/srv/vm\0linuz' })));
    expect(error.code).toBe('SUP_ERR_CONFIG_BAD_VALUE');
    expect(error.message).toBe(
      '/etc/sevsup/vms/vm1.conf: kernel: the value contains a NUL character, so it cannot be passed to QEMU unchanged; remove it',
    );
  });

  it('refuses a lone surrogate in a disk path', () => {
    const spec = { ...plain, disks: [{ index: 3, file: '/srv/\ud800.img', format: 'raw' as const, readonly: false }] };
    expect(errorOf(() => buildQemuArgv(inputFor(spec))).message).toBe(
      '/etc/sevsup/vms/vm1.conf: disk3: the value is not valid Unicode (a lone UTF-16 surrogate), so it cannot be passed to QEMU unchanged; remove it',
    );
  });

  it('doubles commas in the VM name', () => {
    const argv = buildQemuArgv(inputFor({ ...plain, name: 'a,guest=b' }));
    expect(argv[argv.indexOf('-name') + 1]).toBe('guest=a,,guest=b,debug-threads=on');
  });

  it('doubles commas in the monitor and serial paths', () => {
    const argv = buildQemuArgv({
      ...inputFor(plain),
      paths: { monitorSocket: '/run/s,v/m.sock', serialLog: '/run/s,v/serial,wait=on.log' },
    });
    expect(argv).toContain('socket,id=monitor,path=/run/s,,v/m.sock,server=on,wait=off');
    expect(argv).toContain('file,id=serial0,path=/run/s,,v/serial,,wait=on.log');
  });

  it('refuses a CPU model with feature flags (-cpu cannot escape commas)', () => {
    const error = errorOf(() => buildQemuArgv(inputFor({ ...plain, cpu: 'EPYC,+sev' })));
    expect(error.code).toBe('SUP_ERR_CONFIG_BAD_VALUE');
    expect(error.message).toBe(
      `/etc/sevsup/vms/vm1.conf: cpu: "EPYC,+sev" is not a QEMU CPU model name (letters, digits, '.', '_', '-'; ` +
        'no feature flags); run `qemu-system-x86_64 -cpu help` for the names',
    );
  });

  it('refuses a monitor socket path longer than a unix socket allows', () => {
    const long = `/run/${'x'.repeat(100)}/monitor.sock`;
    const error = errorOf(() => buildQemuArgv({ ...inputFor(plain), paths: { monitorSocket: long } }));
    expect(error.code).toBe('SUP_ERR_CONFIG_BAD_VALUE');
    expect(error.message).toBe(
      `monitor socket path ${long} is 118 bytes, but a unix socket path may have at most 107: use a shorter run directory or VM name`,
    );
  });

  it('refuses a non-integer memory size', () => {
    expect(errorOf(() => buildQemuArgv(inputFor({ ...plain, memory: 1.5 }))).message).toBe(
      '/etc/sevsup/vms/vm1.conf: memory: 1.5 is not a positive whole number',
    );
  });
});

describe('SEV-SNP refusals in the argv builder', () => {
  const snpSpec = (line: string): VmSpec => specFor('vm1', [line, FW]);

  it("refuses SNP on a host without it, in the seed's style", () => {
    const noSnp = { ...CAPS, sevSnp: { supported: false, reason: 'not supported, because kvm_amd sev_snp=N', source: 'probe:kvm_amd' } };
    const error = errorOf(() => buildQemuArgv({ ...inputFor(snpSpec('amd-sev: type=snp')), caps: noSnp }));
    expect(error.code).toBe('SUP_ERR_SEV_SNP_UNSUPPORTED');
    expect(error.message).toBe('Your CPU does not support AMD SEV-SNP!');
    expect(error.details).toMatchObject({ key: 'amd-sev', reason: 'not supported, because kvm_amd sev_snp=N' });
  });

  it('refuses SNP without OVMF first, as for SEV (SNP firmware is -bios only)', () => {
    const error = errorOf(() => buildQemuArgv(inputFor({ ...snpSpec('amd-sev: type=snp'), bios: 'seabios' })));
    expect(error.code).toBe('SUP_ERR_SEV_BIOS_NOT_OVMF');
  });

  it.each([
    [`amd-sev: type=snp,${ID_FILES}`, 'id-block, id-auth'],
    ['amd-sev: type=snp,host-data-file=/srv/hd', 'host-data'],
  ])('never builds an object without the files the line names (%s)', (line, names) => {
    const error = errorOf(() => buildQemuArgv(inputFor(snpSpec(line))));
    expect(error.code).toBe('SUP_ERR_INTERNAL');
    expect(error.message).toBe(`SNP ${names} not read by preflight`);
  });
});
