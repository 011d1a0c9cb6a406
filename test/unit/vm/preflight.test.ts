// preflight: the firmware, kernel, initrd and launch files a VM boots from, checked before QEMU
// starts, on real files in a temp dir (synthetic OVMF images from test/support/ovmf-images.ts).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LegacySevSpec, VmSpec } from '../../../src/config/vm-spec.js';
import { isSupervisorError, type ErrorCode } from '../../../src/errors.js';
import { preflight } from '../../../src/vm/preflight.js';
import {
  AMDSEV_LIKE_IMAGE,
  buildImage,
  DEBIAN_LIKE_IMAGE as DEBIAN_LIKE,
  hashes,
  IMAGE_BYTES,
  sevInfo,
} from '../../support/ovmf-images.js';

let dir: string;
const file = (name: string): string => join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-preflight-'));
  await writeFile(file('debian-like.fd'), DEBIAN_LIKE);
  await writeFile(file('amdsev.fd'), AMDSEV_LIKE_IMAGE);
  await writeFile(file('no-hashes-guid.fd'), buildImage([sevInfo(0x80b004)]));
  await writeFile(file('small-hashes.fd'), buildImage([hashes(0x80fc00, 0xa0), sevInfo(0x80b004)]));
  await writeFile(file('no-sev-info.fd'), buildImage([hashes(0x80fc00, 0x400)]));
  await writeFile(file('zero-reset.fd'), buildImage([sevInfo(0)]));
  await writeFile(file('bad-table.fd'), buildImage([], { totalLen: 2 }));
  await writeFile(file('vmlinuz'), 'kernel');
  await writeFile(file('initrd.img'), 'initrd');
  await mkdir(file('a-directory'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const CONF = '/etc/sevsup/vms/vm1.conf';

const sha256 = (bytes: Buffer | Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Preflight passed: which firmware it inspected (path and sha256), for the record's launch inputs. */
async function inspected(s: VmSpec): Promise<{ path: string; sha256: string }> {
  const { firmware } = await preflight(s);
  if (firmware === null) throw new Error('preflight inspected no firmware');
  return { path: firmware.path, sha256: firmware.sha256 };
}

function spec(overrides: Partial<VmSpec> = {}): VmSpec {
  return {
    name: 'vm1',
    source: CONF,
    memory: 1024,
    cores: 1,
    cpu: 'EPYC-v4',
    bios: 'ovmf',
    firmware: { path: file('debian-like.fd') },
    disks: [],
    nets: [],
    attest: 'none',
    autostart: false,
    serial: 'none',
    sev: { type: 'std', nodbg: false, noks: false, kernelHashes: false, key: 'amd_sev' },
    qmpAllow: [],
    qmpDeny: [],
    ...overrides,
  };
}

const sev = (overrides: Partial<LegacySevSpec>): LegacySevSpec => ({
  type: 'std',
  nodbg: false,
  noks: false,
  kernelHashes: false,
  key: 'amd_sev',
  ...overrides,
});

async function failure(s: VmSpec): Promise<{ code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> }> {
  try {
    await preflight(s);
  } catch (error) {
    if (isSupervisorError(error)) return { code: error.code, message: error.message, details: error.details };
    throw error;
  }
  throw new Error('expected preflight to fail');
}

describe('preflight firmware', () => {
  it('inspects the firmware and returns its sha256 and table', async () => {
    const result = await preflight(spec());
    expect(result.firmware).toMatchObject({
      path: file('debian-like.fd'),
      size: IMAGE_BYTES,
      sha256: createHash('sha256').update(DEBIAN_LIKE).digest('hex'),
    });
    expect(result.firmware?.table.hashesArea).toEqual({ base: 0, size: 0 });
  });

  it('reads no firmware for SeaBIOS', async () => {
    const { sev: _sev, firmware: _fw, ...plain } = spec();
    expect(await preflight({ ...plain, bios: 'seabios' })).toEqual({ firmware: null, firmwareHash: null, disks: new Map() });
  });

  it('names the config, key and image when the firmware is missing', async () => {
    const error = await failure(spec({ firmware: { path: file('missing.fd') } }));
    expect(error.code).toBe('SUP_ERR_FIRMWARE_READ');
    expect(error.message).toBe(`${CONF}: firmware: cannot read firmware image ${file('missing.fd')}: no such file; fix the firmware key`);
    expect(error.details).toMatchObject({ file: CONF, key: 'firmware', path: file('missing.fd') });
  });

  it('refuses a firmware that is a directory', async () => {
    const error = await failure(spec({ firmware: { path: file('a-directory') } }));
    expect(error.message).toBe(
      `${CONF}: firmware: cannot read firmware image ${file('a-directory')}: not a regular file; fix the firmware key`,
    );
  });

  it('refuses an image whose pinned sha256 differs, giving both', async () => {
    const pinned = 'a'.repeat(64);
    const actual = createHash('sha256').update(DEBIAN_LIKE).digest('hex');
    const error = await failure(spec({ firmware: { path: file('debian-like.fd'), sha256: pinned } }));
    expect(error.code).toBe('SUP_ERR_FIRMWARE_HASH_MISMATCH');
    expect(error.message).toBe(
      `${CONF}: firmware: ${file('debian-like.fd')} has sha256 ${actual}, but the config pins ${pinned}; ` +
        'the image changed since it was pinned: check where it came from, then update the sha256 or restore the image',
    );
    expect(error.details).toMatchObject({ expected: pinned, actual });
  });

  it('accepts an image whose pinned sha256 matches', async () => {
    const actual = createHash('sha256').update(DEBIAN_LIKE).digest('hex');
    expect(await inspected(spec({ firmware: { path: file('debian-like.fd'), sha256: actual } }))).toEqual({
      path: file('debian-like.fd'),
      sha256: actual,
    });
  });

  it('refuses an image with a corrupt footer table, naming it', async () => {
    const error = await failure(spec({ firmware: { path: file('bad-table.fd') } }));
    expect(error.code).toBe('SUP_ERR_FIRMWARE_TABLE_INVALID');
    expect(error.message).toBe(
      `${CONF}: firmware: ${file('bad-table.fd')}: OVMF table has invalid size -16 (QEMU would refuse it); use an intact OVMF image`,
    );
  });
});

describe('preflight kernel-hashes', () => {
  const withHashes = (fw: string): VmSpec =>
    spec({ firmware: { path: file(fw) }, sev: sev({ kernelHashes: true }), kernel: file('vmlinuz') });

  it.each([
    ['debian-like.fd', 'SEV: guest firmware hashes table area is invalid (base=0x0 size=0x0)'],
    ['no-hashes-guid.fd', 'SEV: kernel specified but guest firmware has no hashes table GUID'],
    ['small-hashes.fd', 'SEV: guest firmware hashes table area is invalid (base=0x80fc00 size=0xa0)'],
  ])("refuses %s with QEMU's reason, the image and what to use", async (fw, reason) => {
    const error = await failure(withHashes(fw));
    expect(error.code).toBe('SUP_ERR_FIRMWARE_NO_HASHES_AREA');
    expect(error.message).toBe(
      `${CONF}: amd_sev: kernel-hashes=1, but QEMU would refuse the firmware ${file(fw)}: "${reason}"; ` +
        'use an OVMF AmdSev build (OvmfPkg/AmdSev/AmdSevX64.dsc; Debian ships none) and point the firmware key at it',
    );
    expect(error.details).toMatchObject({ path: file(fw), reason });
  });

  it('accepts an AmdSev-like image', async () => {
    expect(await inspected(withHashes('amdsev.fd'))).toEqual({ path: file('amdsev.fd'), sha256: sha256(AMDSEV_LIKE_IMAGE) });
  });

  it('does not look at the hashes area without kernel-hashes', async () => {
    expect(await inspected(spec({ kernel: file('vmlinuz') }))).toEqual({ path: file('debian-like.fd'), sha256: sha256(DEBIAN_LIKE) });
  });

  it('names the spelling the config used', async () => {
    const error = await failure(spec({ sev: sev({ kernelHashes: true, key: 'amd-sev' }), kernel: file('vmlinuz') }));
    expect(error.message.startsWith(`${CONF}: amd-sev: kernel-hashes=1`)).toBe(true);
  });
});

describe('preflight SEV-ES', () => {
  it.each([
    ['no-sev-info.fd', 'SEV information block/Firmware GUID Table block not found in pflash rom'],
    ['zero-reset.fd', 'SEV-ES reset address is zero'],
  ])('refuses %s', async (fw, reason) => {
    const error = await failure(spec({ firmware: { path: file(fw) }, sev: sev({ type: 'es' }) }));
    expect(error.code).toBe('SUP_ERR_FIRMWARE_NO_SEV_INFO');
    expect(error.message).toBe(
      `${CONF}: amd_sev: SEV-ES needs the firmware's SEV info block (the AP reset address), but QEMU would refuse ` +
        `${file(fw)}: "${reason}"; use an OVMF build with SEV support (an AmdSev build, or Debian's /usr/share/ovmf/OVMF.fd)`,
    );
  });

  it('plain SEV does not need the reset address', async () => {
    expect((await inspected(spec({ firmware: { path: file('no-sev-info.fd') } }))).path).toBe(file('no-sev-info.fd'));
  });

  it('accepts an image with a reset address', async () => {
    expect(await inspected(spec({ sev: sev({ type: 'es' }) }))).toEqual({ path: file('debian-like.fd'), sha256: sha256(DEBIAN_LIKE) });
  });
});

describe('preflight kernel, initrd and launch files', () => {
  it('refuses a missing kernel', async () => {
    const error = await failure(spec({ kernel: file('nope') }));
    expect(error.code).toBe('SUP_ERR_KERNEL_READ');
    expect(error.message).toBe(`${CONF}: kernel: cannot read ${file('nope')}: no such file; give an existing, readable file`);
    expect(error.details).toEqual({ file: CONF, key: 'kernel', path: file('nope'), reason: 'no such file' });
  });

  it('refuses an initrd that is a directory', async () => {
    const error = await failure(spec({ kernel: file('vmlinuz'), initrd: file('a-directory') }));
    expect(error.code).toBe('SUP_ERR_KERNEL_READ');
    expect(error.message).toBe(`${CONF}: initrd: cannot read ${file('a-directory')}: not a regular file; give an existing, readable file`);
  });

  it('refuses a missing launch session file', async () => {
    const error = await failure(spec({ launch: { dhCert: file('vmlinuz'), session: file('session.b64') } }));
    expect(error.code).toBe('SUP_ERR_CONFIG_BAD_VALUE');
    expect(error.message).toBe(
      `${CONF}: launch session: cannot read ${file('session.b64')}: no such file; give an existing, readable file`,
    );
  });

  it('passes readable kernel, initrd and launch files', async () => {
    await expect(
      preflight(
        spec({
          kernel: file('vmlinuz'),
          initrd: file('initrd.img'),
          launch: { dhCert: file('vmlinuz'), session: file('initrd.img') },
        }),
      ),
    ).resolves.toMatchObject({ firmware: { path: file('debian-like.fd') } });
  });
});
