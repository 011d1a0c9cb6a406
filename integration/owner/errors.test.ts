// Bad inputs to `sevsup measure` and `sevsup verify`: each a clear message and its exit code
// (verify uses libvirt's: 2 unsupported usage, 3 insecure, 4 bad configuration, 5 bad state).
// Includes the case the validator does not catch: a kernel with a firmware lacking a hashes area.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeLaunchDigestFromFiles } from '../../src/sev/launch-digest.js';
import { DEBIAN_OVMF, HAVE_VALIDATOR, measurementFor, runValidator, sevsup, writeRecord } from './helpers.js';

const HOST = { apiMajor: 1, apiMinor: 49, buildId: 6, policy: 0x7 };

describe.runIf(existsSync(DEBIAN_OVMF))('sevsup measure/verify refusals', () => {
  let dir = '';
  const f: Record<string, string> = {};
  let measurement = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sevsup-owner-errors-'));
    const put = (name: string, data: Buffer | string): string => {
      const path = join(dir, name);
      writeFileSync(path, data);
      f[name] = path;
      return path;
    };
    put('tik', randomBytes(16));
    put('tek', randomBytes(16));
    put('nofooter', randomBytes(1024 * 1024)); // no OVMF footer table at all
    put('kernel', randomBytes(200 * 1024));
    const measured = await sevsup(['measure', '--mode', 'seves', '--firmware', DEBIAN_OVMF, '--vcpus', '2', '--vcpu-type', 'EPYC-Milan']);
    expect(measured.code, measured.stderr).toBe(0);
    measurement = measurementFor(readFileSync(f['tik'] ?? ''), HOST, measured.stdout.trim());
  });
  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  const host = (m = measurement): string[] => [
    '--measurement',
    m,
    '--api-major',
    '1',
    '--api-minor',
    '49',
    '--build-id',
    '6',
    '--policy',
    '7',
    '--tik',
    f['tik'] ?? '',
  ];
  const es = ['--vcpus', '2', '--vcpu-type', 'EPYC-Milan'];

  it('measure: a firmware without a footer table cannot be SEV-ES; a kernel needs a hashes area (exit 3)', async () => {
    const noTable = await sevsup(['measure', '--mode', 'seves', '--firmware', f['nofooter'] ?? '', ...es]);
    expect(noTable.code).toBe(3);
    expect(noTable.stderr).toMatch(
      /SEV information block\/Firmware GUID Table block not found in pflash rom: QEMU refuses .* no OVMF footer table.*\[SUP_ERR_FIRMWARE_NO_SEV_INFO\]/,
    );
    const noArea = await sevsup(['measure', '--mode', 'sev', '--firmware', DEBIAN_OVMF, '--kernel', f['kernel'] ?? '']);
    expect(noArea.code).toBe(3);
    expect(noArea.stderr).toMatch(
      /SEV: guest firmware hashes table area is invalid \(base=0x0 size=0x0\).*OVMF AmdSev.*\[SUP_ERR_FIRMWARE_NO_HASHES_AREA\]/,
    );
    const noGuid = await sevsup(['measure', '--mode', 'sev', '--firmware', f['nofooter'] ?? '', '--kernel', f['kernel'] ?? '']);
    expect(noGuid.code).toBe(3);
    expect(noGuid.stderr).toMatch(/SEV: kernel specified but guest firmware has no hashes table GUID/);
  });

  it('measure: usage errors (exit 2)', async () => {
    const cases: [string[], RegExp][] = [
      [['measure', '--firmware', DEBIAN_OVMF], /required option '--mode <mode>' not specified/],
      [['measure', '--mode', 'seves', '--firmware', DEBIAN_OVMF, '--vcpu-type', 'EPYC'], /missing --vcpus N in guest mode 'seves'/],
      [['measure', '--mode', 'seves', '--firmware', DEBIAN_OVMF, '--vcpus', '2'], /missing --vcpu-type, --vcpu-sig/],
      [
        ['measure', '--mode', 'seves', '--firmware', DEBIAN_OVMF, '--vcpus', '2', '--vcpu-type', 'EPYC', '--vcpu-sig', '0x800f12'],
        /one way/,
      ],
      [['measure', '--mode', 'seves', '--firmware', DEBIAN_OVMF, '--vcpus', '2', '--vcpu-family', '25'], /go together/],
      [
        ['measure', '--mode', 'seves', '--firmware', DEBIAN_OVMF, '--vcpus', '2', '--vcpu-sig', '0x10a00f11'],
        /outside family, model and stepping/,
      ],
      [['measure', '--mode', 'seves', '--firmware', DEBIAN_OVMF, '--vcpus', '0x'], /argument '0x' is invalid/],
      [
        ['measure', '--mode', 'sev', '--firmware', DEBIAN_OVMF, '--ovmf', f['nofooter'] ?? ''],
        /--firmware and its alias --ovmf were given different values/,
      ],
      [['measure', '--mode', 'sev', '--firmware', DEBIAN_OVMF, '--initrd', f['kernel'] ?? ''], /--initrd\/--cmdline require --kernel/],
      [['measure', '--mode', 'sev'], /--firmware \(or --ovmf\) is required/],
      [['measure', '--mode', 'seves', '--firmware', DEBIAN_OVMF, ...es, '--sev-features', '-1'], /64-bit unsigned/],
    ];
    for (const [args, message] of cases) {
      const r = await sevsup(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('verify: bad configuration is exit 4, including what the validator lets through', async () => {
    const noTable = await sevsup(['verify', ...host(), '--firmware', f['nofooter'] ?? '', ...es]);
    expect(noTable.code).toBe(4);
    expect(noTable.stderr).toMatch(/not found in pflash rom/);
    const noArea = await sevsup(['verify', ...host(), '--firmware', DEBIAN_OVMF, '--kernel', f['kernel'] ?? '', ...es]);
    expect(noArea.code).toBe(4);
    expect(noArea.stderr).toMatch(/hashes table area is invalid/);
    const missing = await sevsup(['verify', ...host(), '--firmware', join(dir, 'nope.fd'), ...es]);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/cannot read firmware image .*nope\.fd: no such file \[SUP_ERR_FIRMWARE_READ\]/);
    const garbage = await sevsup(['verify', '--record', f['kernel'] ?? '', '--tik', f['tik'] ?? '', '--firmware', DEBIAN_OVMF]);
    expect(garbage.code).toBe(4);
    expect(garbage.stderr).toMatch(/is not JSON/);
  });

  it.runIf(HAVE_VALIDATOR)('the validator computes a digest for a kernel QEMU would refuse (so we must check)', async () => {
    // The digest of a launch QEMU refuses ("hashes table area is invalid"), computed without the check.
    const { digest } = await computeLaunchDigestFromFiles({ firmware: DEBIAN_OVMF, kernel: f['kernel'] ?? '', kernelHashes: true });
    const host = { ...HOST, policy: 0x3 };
    const m = measurementFor(readFileSync(f['tik'] ?? ''), host, digest.toString('hex'));
    const v = await runValidator({
      measurement: m,
      ...host,
      firmware: DEBIAN_OVMF,
      tik: f['tik'] ?? '',
      tek: f['tek'] ?? '',
      kernel: f['kernel'] ?? '',
    });
    expect(v.exitCode, v.stderr).toBe(0);
    const ours = await sevsup([
      'verify',
      '--measurement',
      m,
      '--api-major',
      '1',
      '--api-minor',
      '49',
      '--build-id',
      '6',
      '--policy',
      '3',
      '--tik',
      f['tik'] ?? '',
      '--firmware',
      DEBIAN_OVMF,
      '--kernel',
      f['kernel'] ?? '',
    ]);
    expect(ours.code).toBe(4);
  });

  it('verify: unsupported usage is exit 2', async () => {
    const short = Buffer.alloc(47).toString('base64');
    const cases: [string[], RegExp][] = [
      [['verify', ...host(short), '--firmware', DEBIAN_OVMF, ...es], /launch measurement must be 48 bytes, got 47/],
      [['verify', ...host('@@not-base64@@'), '--firmware', DEBIAN_OVMF, ...es], /not valid base64/],
      [
        ['verify', '--measurement', measurement, '--tik', f['tik'] ?? '', '--firmware', DEBIAN_OVMF],
        /either --api-major or --record is required/,
      ],
      [['verify', ...host(), ...es], /--firmware is required/],
      [['verify', ...host(), '--firmware', DEBIAN_OVMF], /give the number of vCPUs/],
      [['verify', ...host(), '--firmware', DEBIAN_OVMF, '--vcpus', '2'], /give the vCPU signature/],
      [['verify', ...host(), '--firmware', DEBIAN_OVMF, ...es, '--tk', f['tik'] ?? ''], /--tk is mutually exclusive/],
      [['verify', ...host(), '--firmware', DEBIAN_OVMF, ...es, '--use-record-inputs'], /--use-record-inputs needs --record/],
      [['verify', ...host(), '--firmware', DEBIAN_OVMF, ...es, '--min-api', '1'], /expected MAJOR.MINOR/],
      [['verify', ...host(), '--firmware', DEBIAN_OVMF, ...es, '--no-such-option'], /unknown option '--no-such-option'/],
      [
        ['verify', '--record', f['kernel'] ?? '', ...host(), '--firmware', DEBIAN_OVMF],
        /--record and --measurement, --api-major, --api-minor, --build-id, --policy exclude each other/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await sevsup(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  it('verify: record inputs are insecure (exit 3) unless asked for; a record without a measurement is a bad state (exit 5)', async () => {
    const rec = (state: string): string => {
      const path = join(dir, `rec-${state}.json`);
      writeRecord(path, {
        host: HOST,
        measurement,
        state,
        platform: 'hardware',
        launch: { firmware: { path: DEBIAN_OVMF, sha256: '0'.repeat(64) }, vcpus: 2, cpuModel: 'EPYC-Milan' },
        cpuSignature: { family: 25, model: 1, stepping: 1 },
      });
      return path;
    };
    const insecure = await sevsup(['verify', '--record', rec('launch-secret'), '--tik', f['tik'] ?? '', ...es]);
    expect(insecure.code).toBe(3);
    expect(insecure.stderr).toMatch(
      /using the firmware path .* from the measurement record is not secure .*give --firmware.*\[SUP_ERR_VERIFY_INSECURE\]/,
    );
    const cpu = await sevsup(['verify', '--record', rec('launch-secret'), '--tik', f['tik'] ?? '', '--firmware', DEBIAN_OVMF]);
    expect(cpu.code).toBe(3);
    expect(cpu.stderr).toMatch(/vCPU count \(2\)/);
    const accepted = await sevsup(['verify', '--record', rec('running'), '--tik', f['tik'] ?? '', '--use-record-inputs', '--json']);
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(accepted.stderr).toMatch(/WARNING: insecure: firmware/);
    expect(JSON.parse(accepted.stdout)).toMatchObject({ valid: true, sources: { firmware: 'record', vcpus: 'record', cpu: 'record' } });
    const state = await sevsup([
      'verify',
      '--record',
      rec('launch-update'),
      '--tik',
      f['tik'] ?? '',
      '--firmware',
      DEBIAN_OVMF,
      ...es,
      '--json',
    ]);
    expect(state.code).toBe(5);
    expect(JSON.parse(state.stdout)).toEqual({
      valid: false,
      exitCode: 5,
      error: { code: 'SUP_ERR_VERIFY_STATE', message: expect.stringContaining('"launch-update"') },
    });
  });

  it('verify: --quiet prints nothing, the exit code tells', async () => {
    const ok = await sevsup(['verify', ...host(), '--firmware', DEBIAN_OVMF, ...es, '--quiet']);
    expect(ok).toEqual({ code: 0, stdout: '', stderr: '' });
    const bad = await sevsup(['verify', ...host(), '--firmware', DEBIAN_OVMF, '--vcpus', '3', '--vcpu-type', 'EPYC-Milan', '-q']);
    expect(bad).toEqual({ code: 1, stdout: '', stderr: '' });
  });
});
