// The lookup order with fake roots: explicit file → probe cache (only when its key matches) →
// the seed's hw-params.json → Proxmox's host-hw-capabilities.json → live probe (then cached).
import { copyFile, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CACHE_SCHEMA, computeCacheKey } from '../../../src/host/caps-cache.js';
import type { QemuSevProbe } from '../../../src/host/decide-caps.js';
import { resolveHostCaps, type ResolveOptions } from '../../../src/host/resolve.js';
import { makeFakeHost, ROME_CPUID, type FakeHost } from './fake-host.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/host-caps/', import.meta.url));
const FAKE_QEMU = fileURLToPath(new URL('./fixtures/fake-qemu-sev.mjs', import.meta.url));

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const remove of cleanups.splice(0)) await remove();
});

interface Setup {
  readonly root: string;
  readonly qemu: string;
  readonly cacheFile: string;
  readonly seed: string;
  readonly proxmox: string;
  /** How often the (injected) QEMU sub-probe ran. */
  asked: number;
  resolve(extra?: Partial<ResolveOptions>): ReturnType<typeof resolveHostCaps>;
}

async function setup(
  spec: FakeHost = { cpuid: ROME_CPUID },
  qemuAnswer: QemuSevProbe = { ok: true, cbitpos: 47, reducedPhysBits: 1 },
): Promise<Setup> {
  const host = await makeFakeHost(spec);
  cleanups.push(host.remove);
  const qemu = join(host.root, 'usr/bin/qemu-system-x86_64');
  await mkdir(join(host.root, 'usr/bin'), { recursive: true });
  await copyFile(FAKE_QEMU, qemu);
  const s: Setup = {
    root: host.root,
    qemu,
    cacheFile: join(host.root, 'var/cache/sevsup/host-caps.json'),
    seed: join(host.root, 'run/qemu-server/hw-params.json'),
    proxmox: join(host.root, 'run/qemu-server/host-hw-capabilities.json'),
    asked: 0,
    resolve: (extra = {}) =>
      resolveHostCaps({
        root: host.root,
        qemu,
        qemuProbe: async () => {
          s.asked += 1;
          return qemuAnswer;
        },
        ...extra,
      }),
  };
  return s;
}

async function place(path: string, fixture: string): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await copyFile(join(FIXTURES, fixture), path);
}

describe('resolveHostCaps lookup order', () => {
  it('an explicit file wins over everything, and is used alone', async () => {
    const s = await setup();
    await place(s.seed, 'seed-hw-params.json');
    const file = join(s.root, 'etc/caps.json');
    await place(file, 'proxmox-sev-only.json');
    const caps = await s.resolve({ file });
    expect(caps.sev.source).toBe(file);
    expect(caps.sevEs.supported).toBe(false);
    expect(s.asked).toBe(0);
  });

  it('an explicit file that does not exist is an error', async () => {
    const s = await setup();
    const file = join(s.root, 'etc/none.json');
    await expect(s.resolve({ file })).rejects.toMatchObject({
      code: 'SUP_ERR_HOST_CAPS_FILE',
      message: `host capabilities file ${file} does not exist; create it with "sevsup host --write ${file}"`,
    });
  });

  it('the seed file comes before the Proxmox file', async () => {
    const s = await setup();
    await place(s.seed, 'seed-hw-params.json');
    await place(s.proxmox, 'proxmox-intel.json');
    expect((await s.resolve()).sev.source).toBe(s.seed);
  });

  it('the Proxmox file is used when the seed file is absent', async () => {
    const s = await setup();
    await place(s.proxmox, 'proxmox-epyc-genoa.json');
    const caps = await s.resolve();
    expect(caps.sevSnp).toEqual({ supported: true, reason: `supported: ${s.proxmox} says "sev-support-snp": true`, source: s.proxmox });
    expect(s.asked).toBe(0);
  });

  it('a bad seed file is an error, not a reason to look further', async () => {
    const s = await setup();
    await mkdir(join(s.seed, '..'), { recursive: true });
    await writeFile(s.seed, '{"amd-sev": {"cbitpos": 47}}');
    await place(s.proxmox, 'proxmox-epyc-genoa.json');
    await expect(s.resolve()).rejects.toMatchObject({
      code: 'SUP_ERR_HOST_CAPS_FILE',
      details: { file: s.seed, key: 'amd-sev.reduced-phys-bits' },
    });
  });

  it('with no file, probes live and caches the result under the QEMU key', async () => {
    const s = await setup();
    const caps = await s.resolve();
    expect(s.asked).toBe(1);
    expect(caps.sev.source).toBe('probe:qemu');
    const cached: unknown = JSON.parse(await readFile(s.cacheFile, 'utf8'));
    expect(cached).toMatchObject({
      schema: CACHE_SCHEMA,
      key: { qemu: s.qemu, version: '7.2.99 (fake for sevsup tests)', bootId: '0f4c3e2a-0000-4000-8000-000000000001' },
      caps,
    });
  });

  it('a matching cache answers next time, before any /run file, and says so in every source', async () => {
    const s = await setup();
    await s.resolve();
    await place(s.seed, 'proxmox-intel.json');
    const caps = await s.resolve();
    expect(s.asked).toBe(1);
    expect(caps.sev).toEqual({
      supported: true,
      reason: 'supported: confirmed by cpuinfo, cpuid, kvm_amd, dev-sev, qemu',
      source: `${s.cacheFile} (probe:qemu)`,
    });
    expect(caps.reducedPhysBitsSource).toBe(`${s.cacheFile} (probe:cpuid)`);
  });

  it('a cache from another QEMU binary (mtime) or another boot is not used', async () => {
    const s = await setup();
    await s.resolve();
    await utimes(s.qemu, new Date(), new Date(Date.now() - 3_600_000));
    await s.resolve();
    expect(s.asked).toBe(2);
    await writeFile(join(s.root, 'proc/sys/kernel/random/boot_id'), 'another-boot\n');
    await s.resolve();
    expect(s.asked).toBe(3);
    await s.resolve();
    expect(s.asked).toBe(3);
  });

  it('a corrupt cache is ignored and rewritten', async () => {
    const s = await setup();
    await mkdir(join(s.cacheFile, '..'), { recursive: true });
    await writeFile(s.cacheFile, '{"schema": "sevsup.host-caps-cache/v1", "key": ');
    expect((await s.resolve()).sev.source).toBe('probe:qemu');
    expect(JSON.parse(await readFile(s.cacheFile, 'utf8'))).toMatchObject({ schema: CACHE_SCHEMA });
  });

  it('an unwritable cache does not fail the lookup', async () => {
    const s = await setup();
    await writeFile(join(s.root, 'not-a-dir'), '');
    const caps = await s.resolve({ cacheFile: join(s.root, 'not-a-dir', 'host-caps.json') });
    expect(caps.sev.supported).toBe(true);
  });

  it('without a QEMU binary there is no cache key, but the probe still answers', async () => {
    const s = await setup({ kvmAmd: { sev: 'N' } });
    const caps = await s.resolve({ qemu: join(s.root, 'nonexistent-qemu') });
    expect(caps.sev.source).toBe('probe:kvm_amd');
    expect(await computeCacheKey(join(s.root, 'nonexistent-qemu'), s.root)).toBeNull();
    await expect(readFile(s.cacheFile)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('probe: false reads files only, and says so when there are none', async () => {
    const s = await setup();
    const caps = await s.resolve({ probe: false });
    expect(s.asked).toBe(0);
    expect(caps.sev).toEqual({
      supported: false,
      reason: `not supported, because no host capabilities file was found (looked for ${s.seed} and ${s.proxmox}) and probing is off`,
      source: 'default',
    });
    expect(caps.cbitpos).toBeNull();
  });
});
