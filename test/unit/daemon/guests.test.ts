// The daemon's guest registry on real processes: the real lifecycle launches test/fixtures/bin/fake-qemu.mjs
// detached, the real QMP proxy and state files are used. Covers config reloads (added, changed,
// removed), the gate before re-attaching is done, start/stop/attest through the registry, the
// seed's refusals, events, and a restart (shutdown keep → a new registry adopts the same QEMU).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StreamEvent } from '../../../src/api/server.js';
import { discoverGuests } from '../../../src/daemon/discover.js';
import { GuestRegistry, type GuestRegistryOptions } from '../../../src/daemon/guests.js';
import { scanVmConfigs } from '../../../src/daemon/vm-configs.js';
import { SupervisorError } from '../../../src/errors.js';
import { SIMULATED_HOST_CAPS } from '../../../src/host/simulated.js';
import { silentLogger } from '../../../src/log.js';
import { isPidAlive } from '../../../src/process/pid.js';
import { DetachedPids, FAKE_QEMU } from '../../support/detached-fakes.js';
import { DEBIAN_LIKE_IMAGE } from '../../support/ovmf-images.js';

/** A synthetic image shaped like Debian's OVMF.fd (empty hashes and secret areas), written in beforeAll. */
let OVMF: string;

let root: string;
let n = 0;
const registries: GuestRegistry[] = [];
const pids = new DetachedPids();

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sgr-'));
  OVMF = join(root, 'OVMF.fd');
  await writeFile(OVMF, DEBIAN_LIKE_IMAGE);
});
afterEach(async () => {
  for (const r of registries.splice(0)) await r.shutdown('shutdown');
  await pids.endAll();
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Rig {
  readonly dir: string;
  readonly vmDir: string;
  readonly events: StreamEvent[];
  make(extra?: Partial<GuestRegistryOptions>): GuestRegistry;
  conf(name: string, extra?: readonly string[]): Promise<void>;
}

async function rig(): Promise<Rig> {
  const dir = join(root, String(n++));
  const vmDir = join(dir, 'vms');
  await mkdir(vmDir, { recursive: true });
  const events: StreamEvent[] = [];
  const options: GuestRegistryOptions = {
    runDir: join(dir, 'run'),
    stateDir: join(dir, 'state'),
    platform: 'simulated',
    binary: FAKE_QEMU,
    binaryArgs: [],
    caps: SIMULATED_HOST_CAPS,
    holdTimeoutSeconds: 600,
    defaultFirmware: OVMF,
    logger: silentLogger(),
    lifecycle: { powerdownTimeoutMs: 1000 },
  };
  return {
    dir,
    vmDir,
    events,
    make: (extra = {}) => {
      const registry = new GuestRegistry({ ...options, ...extra });
      registry.subscribe((e) => {
        events.push(e);
        if ((e.event === 'spawned' || e.event === 'attached') && typeof e['pid'] === 'number') pids.add(e['pid']);
      }, null);
      registries.push(registry);
      return registry;
    },
    conf: async (name, extra = []) => {
      await writeFile(
        join(vmDir, `${name}.conf`),
        ['memory: 256', 'cores: 1', 'bios: ovmf', 'amd_sev: type=std,nodbg=1', ...extra, ''].join('\n'),
      );
    },
  };
}

describe('GuestRegistry', () => {
  it('refuses operations until opened, but serves reads', async () => {
    const r = await rig();
    await r.conf('a');
    const registry = r.make();
    registry.reload(await scanVmConfigs(r.vmDir));
    expect(registry.status('a')).toMatchObject({ vm: 'a', state: 'defined', sev: true, pid: null });
    await expect(registry.start('a')).rejects.toMatchObject({
      code: 'SUP_ERR_VM_STATE',
      message: 'the daemon is re-attaching its guests (or shutting down); try again in a moment',
    });
  });

  it('starts a held guest, lists it, refuses a second start, stops it', async () => {
    const r = await rig();
    await r.conf('b', ['attest: hold']);
    await r.conf('a');
    const registry = r.make();
    registry.reload(await scanVmConfigs(r.vmDir));
    registry.open();
    const held = await registry.start('b');
    expect(held).toMatchObject({ vm: 'b', state: 'held', sev: true, secretsInjected: 0, error: null });
    expect(held.holdDeadline).not.toBeNull();
    expect(registry.list().vms.map((s) => [s.vm, s.state])).toEqual([
      ['a', 'defined'],
      ['b', 'held'],
    ]);
    expect(registry.countByState()).toEqual({ defined: 1, held: 1 });
    expect(await registry.measurement('b')).toMatchObject({ vm: 'b', schema: 'sevsup.measurement/v1' });
    expect(await registry.measurement('a')).toBeNull();
    expect((await registry.records('b')).map((x) => x.path)).toEqual([held.record]);
    expect(await registry.record('b', 'latest')).toMatchObject({ vm: 'b' });
    expect(await registry.record('b', '../../etc/passwd')).toBeNull();
    await expect(registry.start('b')).rejects.toMatchObject({ code: 'SUP_ERR_VM_STATE', message: 'VM b is already held' });
    await expect(registry.attest('a', { action: 'approve' })).rejects.toMatchObject({ code: 'SUP_ERR_ATTEST_NOT_HELD' });
    await expect(registry.stop('a', { force: false })).rejects.toMatchObject({
      code: 'SUP_ERR_VM_STATE',
      message: 'VM a is not running (it is defined)',
    });
    expect(await registry.stop('b', { force: false })).toMatchObject({ state: 'stopped', pid: null });
    expect(r.events.filter((e) => e.vm === 'b').map((e) => e.event)).toEqual([
      'config-added',
      'starting',
      'spawned',
      'checked',
      'measured',
      'held',
      'stopping',
      'stopped',
    ]);
  });

  it('runs beforeLaunch in the prepared run directory before spawning; a throw fails the start with no QEMU', async () => {
    const r = await rig();
    await r.conf('a', ['attest: hold']);
    const seen: { vm: string; dir: string; spawnedBefore: boolean }[] = [];
    let refuse = true;
    const registry = r.make({
      beforeLaunch: async (vm, _spec, paths) => {
        seen.push({ vm, dir: paths.dir, spawnedBefore: r.events.some((e) => e.event === 'spawned') });
        await writeFile(paths.snpCertTable, 'table');
        if (refuse) throw new SupervisorError('SUP_ERR_CERTS_CACHE', 'cannot write the table');
      },
    });
    registry.reload(await scanVmConfigs(r.vmDir));
    registry.open();
    await expect(registry.start('a')).rejects.toMatchObject({ code: 'SUP_ERR_CERTS_CACHE' });
    expect(registry.status('a')).toMatchObject({ state: 'defined', pid: null });
    expect(r.events.some((e) => e.event === 'spawned')).toBe(false);
    refuse = false;
    expect(await registry.start('a')).toMatchObject({ state: 'held' });
    expect(seen).toEqual([
      { vm: 'a', dir: join(r.dir, 'run', 'a'), spawnedBefore: false },
      { vm: 'a', dir: join(r.dir, 'run', 'a'), spawnedBefore: false },
    ]);
    expect(registry.snpGuestPaths()).toEqual([]); // an SEV guest: no SNP table kept
  });

  it("applies the seed's rules to a guest with a QEMU", async () => {
    const r = await rig();
    // A qcow2 header without a backing file is all preflight reads (vm/disk-chain.ts); the fake QEMU opens nothing.
    const header = Buffer.alloc(112);
    header.writeUInt32BE(0x514649fb, 0);
    header.writeUInt32BE(3, 4);
    header.writeUInt32BE(104, 100);
    await writeFile(join(r.dir, 'c.qcow2'), header);
    await r.conf('c', ['attest: hold', `disk0: file=${join(r.dir, 'c.qcow2')},format=qcow2`]);
    const registry = r.make();
    registry.reload(await scanVmConfigs(r.vmDir));
    registry.open();
    await registry.start('c');
    await expect(registry.snapshot('c', { name: 's1', vmstate: true })).rejects.toMatchObject({
      code: 'SUP_ERR_SNAPSHOT_VMSTATE',
      message: 'Snapshots that include memory are not supported while memory is encrypted by AMD SEV.',
    });
    await expect(registry.migrate('c', { target: '/srv/x' })).rejects.toMatchObject({
      code: 'SUP_ERR_MIGRATE_SEV',
      message: 'VMs with AMD SEV are not live migratable!',
    });
    // The fake QEMU has no `transaction`: QEMU's refusal is reported, coded.
    await expect(registry.snapshot('c', { name: 's1', vmstate: false })).rejects.toMatchObject({
      code: 'SUP_ERR_SNAPSHOT_FAILED',
      message: "VM c: QEMU refused the disk snapshot 's1': The command transaction has not been found",
    });
  });

  it('reload: added configs appear, changed ones apply at next start, removed ones go once stopped', async () => {
    const r = await rig();
    await r.conf('keep', ['attest: hold']);
    await r.conf('gone', ['attest: hold']);
    const registry = r.make();
    registry.reload(await scanVmConfigs(r.vmDir));
    registry.open();
    const keepBefore = await registry.start('keep');
    await registry.start('gone');

    await writeFile(join(r.vmDir, 'keep.conf'), 'memory: 512\ncores: 1\nbios: ovmf\namd_sev: type=std,nodbg=1\nattest: hold\n');
    await r.conf('new');
    await rm(join(r.vmDir, 'gone.conf'));
    await writeFile(join(r.vmDir, 'broken.conf'), 'memory: lots\n');
    registry.reload(await scanVmConfigs(r.vmDir));

    expect(registry.list().vms.map((s) => [s.vm, s.state])).toEqual([
      ['gone', 'held'],
      ['keep', 'held'],
      ['new', 'defined'],
    ]);
    expect(registry.list().configErrors.map((p) => p.code)).toEqual(['SUP_ERR_CONFIG_BAD_VALUE']);
    expect(registry.status('keep')).toEqual(keepBefore);
    const daemonEvents = r.events.filter((e) => e.event.startsWith('config-')).map((e) => `${e.event} ${e.vm}`);
    expect(daemonEvents).toEqual(expect.arrayContaining(['config-changed keep', 'config-added new', 'config-removed gone']));
    await expect(registry.start('gone')).rejects.toMatchObject({ code: 'SUP_ERR_VM_STATE' });

    await registry.stop('gone', { force: true });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(registry.status('gone')).toBeUndefined();

    await registry.stop('keep', { force: false });
    const restarted = await registry.start('keep');
    expect(restarted.pid).not.toBe(keepBefore.pid);
    expect(restarted.state).toBe('held');
  });

  it('survives a restart: shutdown keep leaves QEMU, a new registry re-attaches it held', async () => {
    const r = await rig();
    await r.conf('h', ['attest: hold']);
    const first = r.make();
    first.reload(await scanVmConfigs(r.vmDir));
    first.open();
    const before = await first.start('h');
    await first.shutdown('keep');
    expect(isPidAlive(before.pid ?? 0)).toBe(true);

    const second = r.make();
    second.reload(await scanVmConfigs(r.vmDir));
    await second.adopt((await discoverGuests(join(r.dir, 'run'))).found);
    expect(second.status('h')).toEqual(before);
    second.open();
    expect(await second.attest('h', { action: 'approve' })).toMatchObject({ vm: 'h', action: 'approve', state: 'running' });
    await second.shutdown('shutdown');
    expect(isPidAlive(before.pid ?? 0)).toBe(false);
  });
});
