// The owner's CLI in-process: option resolution, secret specs, libvirt's exit codes for every
// error verify can meet, and a whole measure → verify → secret build round on synthetic files.
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveLaunchOptions } from '../../../src/cli/actions/measure.js';
import { parseSecretSpec } from '../../../src/attestation/secret-packet.js';
import { verifyExitCode } from '../../../src/cli/actions/verify.js';
import type { LaunchInputCliOptions } from '../../../src/cli/commands/measure.js';
import { errorTable, hasCode, isErrorCode, type ErrorCode } from '../../../src/errors.js';
import { verifyLaunchSecret } from '../../../src/sev/launch-secret.js';
import { runCliCaptured, type CliRun } from '../../support/run-cli.js';
import { errorOf as thrown } from '../../support/sev-helpers.js';
import { buildImage, debianLikeEntries } from '../../support/ovmf-images.js';

const dir = mkdtempSync(join(tmpdir(), 'sevsup-owner-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, data: Buffer | string): string => {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
};

/** The CLI in-process; verify sets process.exitCode itself, so it is reset after each run. */
async function cli(...args: string[]): Promise<CliRun> {
  try {
    return await runCliCaptured(...args);
  } finally {
    process.exitCode = undefined;
  }
}

const base: LaunchInputCliOptions = { vmsaInit: 'legacy', sevFeatures: 0n };

describe('resolveLaunchOptions', () => {
  it('merges aliases and resolves the three ways of giving a vCPU signature', () => {
    expect(resolveLaunchOptions({ ...base, ovmf: 'f', append: '', numCpus: 2, vcpuType: 'EPYC-Rome' })).toEqual({
      owner: { firmware: 'f', cmdline: '', vcpus: 2, cpu: { family: 23, model: 49, stepping: 0 } },
      cpuSource: 'EPYC-Rome',
      vmsaInit: 'legacy',
      sevFeatures: 0n,
    });
    expect(resolveLaunchOptions({ ...base, vcpuSig: 0xa10f10 })).toMatchObject({
      owner: { cpu: { family: 25, model: 17, stepping: 0 } },
      cpuSource: '--vcpu-sig 0xa10f10',
    });
    expect(resolveLaunchOptions({ ...base, cpuFamily: 26, vcpuModel: 0, cpuStepping: 0 })).toMatchObject({
      owner: { cpu: { family: 26, model: 0, stepping: 0 } },
    });
    expect(resolveLaunchOptions({ ...base, firmware: 'f', ovmf: 'f' }).owner.firmware).toBe('f');
  });

  it('refuses contradictions as usage errors', () => {
    for (const bad of [
      { firmware: 'a', ovmf: 'b' },
      { vcpus: 1, numCpus: 2 },
      { vcpuFamily: 25 },
      { vcpuType: 'EPYC', vcpuSig: 0x800f12 },
      { vcpuType: 'Skylake-Server' },
      { vcpuFamily: 25, cpuFamily: 23, vcpuModel: 1, vcpuStepping: 1 },
    ]) {
      expect(
        hasCode(
          thrown(() => resolveLaunchOptions({ ...base, ...bad })),
          'SUP_ERR_USAGE',
        ),
        JSON.stringify(bad),
      ).toBe(true);
    }
  });
});

describe('parseSecretSpec', () => {
  it('splits at the first colon and resolves the luks-key alias', () => {
    expect(parseSecretSpec('luks-key:/a:b')).toEqual({ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', path: '/a:b' });
    expect(parseSecretSpec('E6F5A162-D67F-4750-A67C-5D065F2A9910:x')).toEqual({ guid: 'e6f5a162-d67f-4750-a67c-5d065f2a9910', path: 'x' });
    for (const bad of ['luks-key', 'luks-key:', 'disk:/x', ':x'])
      expect(
        hasCode(
          thrown(() => parseSecretSpec(bad)),
          'SUP_ERR_USAGE',
        ),
        bad,
      ).toBe(true);
  });
});

describe('verifyExitCode', () => {
  it("maps every error verify can meet to libvirt's codes, and nothing else", () => {
    const expected: [ErrorCode, number][] = [
      ['SUP_ERR_VERIFY_MISMATCH', 1],
      ['SUP_ERR_VERIFY_UNSUPPORTED', 2],
      ['SUP_ERR_USAGE', 2],
      ['SUP_ERR_VERIFY_INSECURE', 3],
      ['SUP_ERR_VERIFY_CONFIG', 4],
      ['SUP_ERR_FIRMWARE_READ', 4],
      ['SUP_ERR_FIRMWARE_TABLE_INVALID', 4],
      ['SUP_ERR_FIRMWARE_NO_HASHES_AREA', 4],
      ['SUP_ERR_FIRMWARE_NO_SEV_INFO', 4],
      ['SUP_ERR_KERNEL_READ', 4],
      ['SUP_ERR_CONFIG_BAD_VALUE', 4],
      ['SUP_ERR_VERIFY_STATE', 5],
    ];
    for (const [code, exit] of expected) expect(verifyExitCode(code), code).toBe(exit);
    const mapped = new Set(expected.map(([c]) => c));
    for (const code of Object.keys(errorTable()).filter(isErrorCode)) {
      if (!mapped.has(code)) expect(verifyExitCode(code), code).toBeNull();
    }
  });
});

describe('measure → verify → secret build, in-process', () => {
  const image = buildImage(debianLikeEntries({ hashes: [0x80fc00, 0x400], secret: [0x80f000, 0xc00] }), { size: 128 * 1024 });
  const f = {
    fw: file('fw.fd', image),
    kernel: file('vmlinuz', randomBytes(64 * 1024)),
    initrd: file('initrd', randomBytes(16 * 1024)),
    tik: file('tik', randomBytes(16)),
    tek: file('tek', randomBytes(16)),
    secret: file('luks', 'correct horse battery staple'),
  };
  const inputs = [
    '--firmware',
    f.fw,
    '--kernel',
    f.kernel,
    '--initrd',
    f.initrd,
    '--cmdline',
    'console=ttyS0',
    '--vcpus',
    '3',
    '--vcpu-type',
    'EPYC-Milan',
  ];

  it('agrees with itself, refuses a changed input, and builds a packet for the verified measurement', async () => {
    const m = await cli('measure', '--mode', 'seves', ...inputs, '--output-format', 'base64');
    expect(m.code, m.err).toBe(0);
    const digest = Buffer.from(m.out.trim(), 'base64');
    expect(digest).toHaveLength(32);
    const json = await cli('measure', '--mode', 'sev-es', ...inputs, '--json');
    expect(JSON.parse(json.out)).toMatchObject({
      mode: 'seves',
      launchDigest: digest.toString('hex'),
      vmsa: { vcpus: 3, variant: 'legacy', cpu: { signature: '0xa00f11', from: 'EPYC-Milan' } },
    });

    const mnonce = randomBytes(16);
    const head = Buffer.from([4, 1, 52, 4, 0x0f, 0, 0, 0]);
    const mac = createHmac('sha256', readFileSync(f.tik)).update(head).update(digest).update(mnonce).digest();
    const measurement = Buffer.concat([mac, mnonce]).toString('base64');
    const host = [
      '--measurement',
      measurement,
      '--api-major',
      '1',
      '--api-minor',
      '52',
      '--build-id',
      '4',
      '--policy',
      '0xf',
      '--tik',
      f.tik,
    ];
    const ok = await cli('verify', ...host, ...inputs, '--json', '--min-api', '1.52', '--allowed-build-id', '4');
    expect(ok.code, ok.err).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ valid: true, exitCode: 0, sevType: 'sev-es', launchDigest: digest.toString('hex') });
    const init2 = await cli('verify', ...host, ...inputs, '--vmsa-init', 'init2');
    expect(init2.code).toBe(1);
    expect(init2.err).toMatch(/ERROR: the measurement does not match[\s\S]*hint: SEV-ES: QEMU 7.2 to 10.x use KVM_SEV_ES_INIT/);
    const policy = await cli('verify', ...host, ...inputs, '--expected-policy', '7');
    expect(policy.code).toBe(1);
    expect(policy.err).toContain('ERROR: policy 0xf is not the expected 0x7');

    const h = join(dir, 'h.b64');
    const p = join(dir, 'p.b64');
    const s = await cli(
      'secret',
      'build',
      '--tik',
      f.tik,
      '--tek',
      f.tek,
      '--measurement',
      measurement,
      '--secret',
      `luks-key:${f.secret}`,
      '--header-out',
      h,
      '--payload-out',
      p,
      '--firmware',
      f.fw,
    );
    expect(s.code, s.err).toBe(0);
    const check = verifyLaunchSecret({
      tik: readFileSync(f.tik),
      tek: readFileSync(f.tek),
      measurementMac: mac,
      header: Buffer.from(readFileSync(h, 'utf8'), 'base64'),
      payload: Buffer.from(readFileSync(p, 'utf8'), 'base64'),
    });
    expect(check).toEqual({ ok: true, secrets: [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', length: 28 }] });
  });

  it('reports a failure it could not check as JSON with its exit code', async () => {
    const r = await cli(
      'verify',
      '--measurement',
      'AAAA',
      '--api-major',
      '1',
      '--api-minor',
      '0',
      '--build-id',
      '0',
      '--policy',
      '1',
      '--tik',
      f.tik,
      '--firmware',
      f.fw,
      '--json',
    );
    expect(r.code).toBe(2);
    expect(JSON.parse(r.out)).toEqual({
      valid: false,
      exitCode: 2,
      error: { code: 'SUP_ERR_VERIFY_UNSUPPORTED', message: '--measurement: launch measurement must be 48 bytes, got 3' },
    });
  });
});
