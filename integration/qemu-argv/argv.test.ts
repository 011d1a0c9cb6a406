// The argv from buildQemuArgv against the real QEMU (7.2 on these machines), under -accel kvm
// where /dev/kvm is usable and -accel tcg elsewhere (only SEV initialisation needs KVM; that test
// skips, saying so, without it): a guest without SEV starts paused and answers QMP with every user string intact; an SEV guest's
// argv is accepted up to SEV initialisation (which fails here: no SEV in this CPU); preflight
// refuses kernel-hashes with Debian's OVMF before any QEMU starts. Every QEMU started is reaped.
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { VmSpec } from '../../src/config/vm-spec.js';
import { parseVmConfig } from '../../src/config/vm-config.js';
import { isSupervisorError } from '../../src/errors.js';
import type { HostCaps } from '../../src/host/host-caps.js';
import { SIMULATED_HOST_CAPS } from '../../src/host/simulated.js';
import { prepareVmRunDir, type VmPaths } from '../../src/process/run-dir.js';
import { buildQemuArgv } from '../../src/qemu/argv.js';
import { QmpClient } from '../../src/qmp/client.js';
import { queryStatus, quit } from '../../src/qmp/commands.js';
import { preflight } from '../../src/vm/preflight.js';
import { HAS_KVM, skipWithoutKvm } from '../kvm.js';

const QEMU = process.env['QEMU_BIN'] ?? '/usr/bin/qemu-system-x86_64';
const DEBIAN_OVMF = '/usr/share/ovmf/OVMF.fd';
const CAN_RUN = existsSync(QEMU) && existsSync(DEBIAN_OVMF);
/** On a real SEV host the SEV argv would start instead of failing at the cbitpos check. */
const HOST_HAS_SEV = existsSync('/dev/sev');

/** Caps that claim SEV (as on a Rome/Milan host) so the argv gets its sev-guest object. */
const SEV_CAPS: HostCaps = SIMULATED_HOST_CAPS;

/**
 * A minimal bzImage header (boot protocol 2.15): enough for QEMU's x86_load_linux to load it;
 * the guest never runs (-S), so no code is needed.
 */
function fakeBzImage(): Buffer {
  const setupSects = 4;
  const image = Buffer.alloc(512 * (1 + setupSects) + 4096);
  image[0x1f1] = setupSects;
  image.writeUInt16LE(0xaa55, 0x1fe);
  image.write('HdrS', 0x202, 'latin1');
  image.writeUInt16LE(0x020f, 0x206);
  image[0x211] = 0x01; // LOADED_HIGH
  image.writeUInt32LE(0x7fffffff, 0x22c); // initrd_addr_max
  image.writeUInt32LE(2048, 0x238); // cmdline_size
  return image;
}

let dir: string;
const file = (name: string): string => join(dir, name);
const EXECA_OPTIONS = { reject: false, stdin: 'ignore', cleanup: true } as const;
type QemuChild = ResultPromise<typeof EXECA_OPTIONS>;
const running = new Set<QemuChild>();

/** buildQemuArgv's argv as it is, but under TCG where this host has no usable KVM. */
function runnableHere(argv: readonly string[]): readonly string[] {
  return HAS_KVM ? argv : argv.map((arg, i) => (argv[i - 1] === '-accel' && arg === 'kvm' ? 'tcg' : arg));
}

function spawnQemu(argv: readonly string[]): QemuChild {
  const child = execa(QEMU, runnableHere(argv), EXECA_OPTIONS);
  running.add(child);
  void child.finally(() => running.delete(child));
  return child;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-qa-'));
  await copyFile(DEBIAN_OVMF, file('OV,MF fw.fd'));
  await writeFile(file('vm,linuz 6.1'), fakeBzImage());
  await writeFile(file('initrd, x.img'), Buffer.alloc(4096, 0x5a));
  await writeFile(file('root disk.img'), Buffer.alloc(1024 * 1024));
});

afterEach(async () => {
  for (const child of running) child.kill('SIGKILL');
  await Promise.all([...running]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const CMDLINE = `console=ttyS0,115200 root="/dev/vda1" opt=a,b,,c 'x y' -device foo,id=evil`;

function config(name: string, lines: readonly string[]): VmSpec {
  const spec = parseVmConfig([`name: ${name}`, ...lines, ''].join('\n'), file(`${name}.conf`));
  // A firmware path with commas and spaces cannot be written in a config (property strings have
  // no escape), but a VmSpec may carry one: QEMU must still get it verbatim.
  return { ...spec, firmware: { path: file('OV,MF fw.fd') } };
}

function argvFor(spec: VmSpec, caps: HostCaps, paths: VmPaths, options: { sandbox?: boolean; runAs?: string } = {}): readonly string[] {
  return buildQemuArgv({
    spec,
    caps,
    paths: { monitorSocket: paths.monitorSocket, pidFile: paths.pidFile, serialLog: paths.serialLog },
    options,
  });
}

const DEVICES = [
  `disk0: file=${join('DIR', 'root disk.img')},format=raw`,
  'net0: type=user,mac=52:54:00:12:34:56',
  'memory: 256',
  'cpu: qemu64',
];
const devices = (): string[] => DEVICES.map((line) => line.replace('DIR', dir));

async function connect(paths: VmPaths, child: QemuChild): Promise<QmpClient> {
  return QmpClient.connect({ path: paths.monitorSocket, exited: child, connectTimeoutMs: 20_000 });
}

async function qomGet(client: QmpClient, path: string, property: string): Promise<unknown> {
  return client.execute('qom-get', { path, property });
}

describe.runIf(CAN_RUN)(`real QEMU (${QEMU})`, () => {
  it('starts a guest without SEV paused, with every user string intact', async () => {
    const spec = config('plain', [
      'bios: ovmf',
      `kernel: ${file('vm,linuz 6.1')}`,
      `initrd: ${file('initrd, x.img')}`,
      `cmdline: ${CMDLINE}`,
      ...devices(),
    ]);
    await preflight(spec);
    const paths = await prepareVmRunDir(file('run,dir'), spec.name);
    const argv = argvFor(spec, SEV_CAPS, paths, { sandbox: true });
    expect(argv).toContain('-accel');
    expect(argv).not.toContain('-object');

    const child = spawnQemu(argv);
    const client = await connect(paths, child);
    try {
      expect(await queryStatus(client)).toEqual({ status: 'prelaunch', running: false });
      expect(await qomGet(client, '/machine', 'firmware')).toBe(file('OV,MF fw.fd'));
      expect(await qomGet(client, '/machine', 'kernel')).toBe(file('vm,linuz 6.1'));
      expect(await qomGet(client, '/machine', 'initrd')).toBe(file('initrd, x.img'));
      expect(await qomGet(client, '/machine', 'append')).toBe(CMDLINE);
      expect(await qomGet(client, '/machine', 'confidential-guest-support')).toBe('');
      const chardevs = (await client.execute('query-chardev')) as { label: string; filename: string }[];
      expect(chardevs).toContainEqual(expect.objectContaining({ label: 'monitor', filename: `unix:${paths.monitorSocket},server=on` }));
      expect(existsSync(paths.serialLog)).toBe(true); // QEMU opened the log at the path with a comma
      expect((await readFile(paths.pidFile, 'utf8')).trim()).toBe(String(child.pid));
      await quit(client);
    } finally {
      await client.close();
    }
    const result = await child;
    expect(result.exitCode).toBe(0);
  });

  it.skipIf(HOST_HAS_SEV)("accepts an SEV guest's argv up to SEV initialisation (cbitpos check)", async (ctx) => {
    skipWithoutKvm(ctx, 'QEMU initialises SEV (and checks cbitpos) only under -accel kvm:');
    const spec = config('sev', ['amd_sev: type=std,nodbg=1,noks=1', `kernel: ${file('vm,linuz 6.1')}`, ...devices()]);
    await preflight(spec);
    const paths = await prepareVmRunDir(file('run,dir'), spec.name);
    const argv = argvFor(spec, SEV_CAPS, paths);
    expect(argv).toContain('q35,dump-guest-core=off,confidential-guest-support=sev0');

    const result = await spawnQemu(argv);
    expect(result.exitCode).toBe(1);
    // QEMU's own words after the function name (sev_kvm_init in 7.2, sev_common_kvm_init in 10.x).
    expect(result.stderr).toMatch(/^qemu-system-x86_64: -accel kvm: \w+: cbitpos check failed, host '0' requested '47'$/m);
  });

  it("starts the SEV guest's devices (iommu_platform, no legacy virtio, no option ROM) without the SEV object", async () => {
    const spec = config('sevdev', ['amd_sev: type=es', ...devices()]);
    const paths = await prepareVmRunDir(file('run,dir'), spec.name);
    const sevArgv = argvFor(spec, SEV_CAPS, paths);
    // Drop only the sev-guest object and its machine link: everything else is the SEV guest's argv.
    const objectAt = sevArgv.indexOf('-object');
    const argv = sevArgv
      .filter((_, i) => i !== objectAt && i !== objectAt + 1)
      .map((arg) => (arg === 'q35,dump-guest-core=off,confidential-guest-support=sev0' ? 'q35,dump-guest-core=off' : arg));
    expect(argv.length).toBe(sevArgv.length - 2);

    const child = spawnQemu(argv);
    const client = await connect(paths, child);
    try {
      expect(await queryStatus(client)).toEqual({ status: 'prelaunch', running: false });
      for (const device of ['virtio-disk0', 'virtio-net0']) {
        expect(await qomGet(client, `/machine/peripheral/${device}`, 'iommu_platform')).toBe(true);
        expect(await qomGet(client, `/machine/peripheral/${device}`, 'disable-legacy')).toBe('on');
      }
      expect(await qomGet(client, '/machine/peripheral/virtio-net0', 'romfile')).toBe('');
      await quit(client);
    } finally {
      await client.close();
    }
    expect((await child).exitCode).toBe(0);
  });

  it('drops to -runas under -sandbox: QEMU keeps running as that user and answers QMP', async () => {
    const spec = config('runas', ['memory: 128', 'cpu: qemu64']);
    const paths = await prepareVmRunDir(file('run-runas'), spec.name);
    const argv = argvFor(spec, SEV_CAPS, paths, { sandbox: true, runAs: 'nobody' });
    const child = spawnQemu(argv);
    const client = await connect(paths, child);
    try {
      expect(await queryStatus(client)).toEqual({ status: 'prelaunch', running: false });
      const pid = child.pid ?? -1;
      const uidLine = (await readFile(`/proc/${pid}/status`, 'utf8')).split('\n').find((l) => l.startsWith('Uid:'));
      expect(uidLine?.split(/\s+/)[1]).toBe('65534');
    } finally {
      await quit(client);
    }
  });

  it("refuses kernel-hashes with Debian's OVMF in preflight, before any QEMU starts", async () => {
    const spec = parseVmConfig(
      ['name: hashes', 'amd_sev: es,nodbg=1,kernel-hashes=1', `kernel: ${file('vm,linuz 6.1')}`, ''].join('\n'),
      file('hashes.conf'),
    );
    expect(spec.firmware).toBeUndefined(); // the default firmware: Debian's OVMF.fd
    let spawned = 0;
    const start = async (): Promise<void> => {
      await preflight(spec);
      spawned += 1;
      spawnQemu(argvFor(spec, SEV_CAPS, await prepareVmRunDir(file('run,dir'), spec.name)));
    };
    let caught: unknown;
    await start().catch((error: unknown) => {
      caught = error;
    });
    expect(spawned).toBe(0);
    expect(running.size).toBe(0);
    expect(isSupervisorError(caught) && caught.code).toBe('SUP_ERR_FIRMWARE_NO_HASHES_AREA');
    expect((caught as Error).message).toBe(
      `${file('hashes.conf')}: amd_sev: kernel-hashes=1, but QEMU would refuse the firmware ${DEBIAN_OVMF}: ` +
        '"SEV: guest firmware hashes table area is invalid (base=0x0 size=0x0)"; use an OVMF AmdSev build ' +
        '(OvmfPkg/AmdSev/AmdSevX64.dsc; Debian ships none) and point the firmware key at it',
    );
  });
});
