// `sevsup measure` and `sevsup verify` against libvirt's virt-qemu-sev-validate on inputs made
// here: for every case, a measurement built from our digest (HMAC under a random TIK) satisfies
// the validator and our verify (both exit 0), and one changed input makes both refuse (both
// exit 1). Firmware: Debian's 2 MiB and 4 MiB OVMF, and a copy with a hashes area; the real kernel
// and random ones; cmdlines with unicode, commas, quotes, a leading dash and the empty string;
// 1 to 8 vCPUs over several CPU models.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEBIAN_OVMF,
  DEBIAN_OVMF_4M,
  HAVE_VALIDATOR,
  mapLimit,
  measurementFor,
  patchFirmware,
  PYTHON,
  realKernel,
  runValidatorBatch,
  sevsup,
  VALIDATOR,
  writeRecord,
  type HostValues,
} from './helpers.js';

const CONCURRENCY = 2;

type FirmwareName = 'debian' | 'debian4m' | 'hashes';
interface Es {
  readonly vcpus: number;
  /** How our CLI is told the vCPU signature. */
  readonly cpu: readonly string[];
  /** The same signature for the validator. */
  readonly sku: readonly [number, number, number];
}
interface Case {
  readonly name: string;
  readonly firmware: FirmwareName;
  readonly kernel?: 'real' | 'random';
  readonly initrd?: boolean;
  readonly cmdline?: string;
  readonly policy: number;
  readonly es?: Es;
  readonly mutate:
    | 'firmware'
    | 'kernel'
    | 'initrd'
    | 'cmdline'
    | 'measurement'
    | 'api-minor'
    | 'build-id'
    | 'policy'
    | 'vcpus'
    | 'cpu'
    | 'tik';
}

const CASES: readonly Case[] = [
  { name: 'Debian OVMF, no kernel', firmware: 'debian', policy: 0x1, mutate: 'firmware' },
  { name: 'hashes-area OVMF, no kernel', firmware: 'hashes', policy: 0x8, mutate: 'measurement' },
  { name: 'real kernel, no initrd, no cmdline', firmware: 'hashes', kernel: 'real', policy: 0xb, mutate: 'kernel' },
  {
    name: 'kernel, initrd, unicode cmdline',
    firmware: 'hashes',
    kernel: 'random',
    initrd: true,
    cmdline: 'console=ttyS0 motd="héllo wörld" 漢字 ✓',
    policy: 0x3,
    mutate: 'cmdline',
  },
  { name: 'empty cmdline', firmware: 'hashes', kernel: 'random', initrd: true, cmdline: '', policy: 0x9, mutate: 'initrd' },
  {
    name: 'commas, quotes, leading dash',
    firmware: 'hashes',
    kernel: 'real',
    initrd: true,
    cmdline: `-x a,b,,c "d e" 'f' g=h,i --`,
    policy: 0x0,
    mutate: 'api-minor',
  },
  {
    name: 'SEV-ES, 1 vCPU, EPYC',
    firmware: 'debian',
    policy: 0x7,
    es: { vcpus: 1, cpu: ['--vcpu-type', 'EPYC'], sku: [23, 1, 2] },
    mutate: 'build-id',
  },
  {
    name: 'SEV-ES, 2 vCPUs, EPYC-Rome, kernel',
    firmware: 'hashes',
    kernel: 'random',
    initrd: true,
    cmdline: 'quiet',
    policy: 0x5,
    es: { vcpus: 2, cpu: ['--vcpu-type', 'EPYC-Rome'], sku: [23, 49, 0] },
    mutate: 'vcpus',
  },
  {
    name: 'SEV-ES, 4 vCPUs, EPYC-Milan, 4 MiB OVMF',
    firmware: 'debian4m',
    policy: 0xf,
    es: { vcpus: 4, cpu: ['--vcpu-type', 'EPYC-Milan-v2'], sku: [25, 1, 1] },
    mutate: 'cpu',
  },
  {
    name: 'SEV-ES, 8 vCPUs, EPYC-Turin, kernel',
    firmware: 'hashes',
    kernel: 'real',
    initrd: true,
    cmdline: 'console=ttyS0,115200n8',
    policy: 0x7,
    es: { vcpus: 8, cpu: ['--vcpu-type', 'EPYC-Turin'], sku: [26, 0, 0] },
    mutate: 'policy',
  },
  {
    name: 'SEV-ES, 3 vCPUs, Genoa by --vcpu-sig',
    firmware: 'debian',
    policy: 0x4,
    es: { vcpus: 3, cpu: ['--vcpu-sig', '0xa10f10'], sku: [25, 17, 0] },
    mutate: 'tik',
  },
  {
    name: 'SEV-ES, 5 vCPUs, --cpu-family aliases',
    firmware: 'debian4m',
    policy: 0x6,
    es: { vcpus: 5, cpu: ['--cpu-family', '25', '--cpu-model', '1', '--cpu-stepping', '1'], sku: [25, 1, 1] },
    mutate: 'firmware',
  },
];

const HOST = { apiMajor: 1, apiMinor: 49, buildId: 6 };

describe.runIf(HAVE_VALIDATOR && existsSync(DEBIAN_OVMF) && existsSync(DEBIAN_OVMF_4M))(
  'sevsup measure/verify against virt-qemu-sev-validate',
  () => {
    let dir = '';
    const files: Record<string, string> = {};
    const keys = { tik: Buffer.alloc(0), otherTik: '' };

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'sevsup-owner-'));
      const put = (name: string, data: Buffer): string => {
        const path = join(dir, name);
        writeFileSync(path, data);
        files[name] = path;
        return path;
      };
      files['debian'] = DEBIAN_OVMF;
      files['debian4m'] = DEBIAN_OVMF_4M;
      files['hashes'] = patchFirmware(DEBIAN_OVMF, join(dir, 'hashes.fd'));
      const flipped = readFileSync(DEBIAN_OVMF);
      flipped[0x1000] = (flipped[0x1000] ?? 0) ^ 1;
      put('debian-flipped', flipped);
      const flipped4m = readFileSync(DEBIAN_OVMF_4M);
      flipped4m[7] = (flipped4m[7] ?? 0) ^ 0x40;
      put('debian4m-flipped', flipped4m);
      files['real'] = realKernel() ?? put('real-standin', randomBytes(3 * 1024 * 1024));
      put('random', randomBytes(1536 * 1024 + 7));
      put('other-kernel', randomBytes(1536 * 1024 + 7));
      put('initrd', randomBytes(300 * 1024 + 3));
      put('other-initrd', randomBytes(300 * 1024 + 3));
      keys.tik = randomBytes(16);
      put('tik', keys.tik);
      put('tek', randomBytes(16));
      keys.otherTik = put('other-tik', randomBytes(16));
    });
    afterAll(() => {
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    });

    /** Inputs of one case, as our CLI options and as the validator's. */
    function inputs(c: Case, mutated: boolean): { ours: string[]; theirs: string[] } {
      const m = mutated ? c.mutate : null;
      const fw = m === 'firmware' ? `${c.firmware}-flipped` : c.firmware;
      const common: string[] = ['--firmware', files[fw] ?? ''];
      if (c.kernel !== undefined) common.push('--kernel', files[m === 'kernel' ? 'other-kernel' : c.kernel] ?? '');
      if (c.initrd === true) common.push('--initrd', files[m === 'initrd' ? 'other-initrd' : 'initrd'] ?? '');
      if (c.cmdline !== undefined) common.push(`--cmdline=${m === 'cmdline' ? `${c.cmdline} ` : c.cmdline}`);
      const ours = [...common];
      const theirs = [...common];
      if (c.es !== undefined) {
        const vcpus = String(m === 'vcpus' ? c.es.vcpus + 1 : c.es.vcpus);
        const sku = m === 'cpu' ? [25, 17, 0] : c.es.sku;
        ours.push('--vcpus', vcpus, ...(m === 'cpu' ? ['--vcpu-type', 'EPYC-Genoa'] : c.es.cpu));
        theirs.push('--num-cpus', vcpus, '--cpu-family', String(sku[0]), '--cpu-model', String(sku[1]), '--cpu-stepping', String(sku[2]));
      }
      return { ours, theirs };
    }

    function hostArgs(c: Case, host: HostValues, measurement: string, mutated: boolean): string[] {
      const m = mutated ? c.mutate : null;
      let meas = measurement;
      if (m === 'measurement') {
        const raw = Buffer.from(measurement, 'base64');
        raw[5] = (raw[5] ?? 0) ^ 0x10;
        meas = raw.toString('base64');
      }
      return [
        `--measurement=${meas}`,
        '--api-major',
        String(host.apiMajor),
        '--api-minor',
        String(m === 'api-minor' ? host.apiMinor + 1 : host.apiMinor),
        '--build-id',
        String(m === 'build-id' ? host.buildId + 1 : host.buildId),
        '--policy',
        String(m === 'policy' ? host.policy | 0x8 : host.policy),
        '--tik',
        m === 'tik' ? keys.otherTik : (files['tik'] ?? ''),
      ];
    }

    function validator(args: string[]): Promise<number> {
      return new Promise((resolve) => {
        execFile(PYTHON, [VALIDATOR, ...args, '--tek', files['tek'] ?? ''], { timeout: 60_000 }, (error) => {
          resolve(error === null ? 0 : typeof error.code === 'number' ? error.code : -1);
        });
      });
    }

    it('agree on every case: our measurement passes both, one changed input fails both', async () => {
      // Our digest for every case first; then our verify (a process per run, two at a time) beside
      // the validator's runs, in two Python processes of a half each (runValidatorBatch).
      const measured = await mapLimit(CASES, CONCURRENCY, async (c) => {
        const m = await sevsup(['measure', '--mode', c.es === undefined ? 'sev' : 'seves', ...inputs(c, false).ours]);
        expect(m.code, `${c.name}: measure ${m.stderr}`).toBe(0);
        const digest = m.stdout.trim();
        expect(digest, c.name).toMatch(/^[0-9a-f]{64}$/);
        const host = { ...HOST, policy: c.policy };
        return { c, host, measurement: measurementFor(keys.tik, host, digest) };
      });
      const runs = measured.flatMap(({ c, host, measurement }) =>
        [false, true].map((mutated) => ({ args: hostArgs(c, host, measurement, mutated), io: inputs(c, mutated) })),
      );
      const argvs = runs.map((r) => [...r.args, ...r.io.theirs, '--tek', files['tek'] ?? '']);
      const half = Math.ceil(argvs.length / 2);
      const [theirs, ours] = await Promise.all([
        mapLimit([argvs.slice(0, half), argvs.slice(half)], CONCURRENCY, runValidatorBatch).then((parts) => parts.flat()),
        mapLimit(runs, CONCURRENCY, (r) => sevsup(['verify', ...r.args, ...r.io.ours])),
      ]);
      measured.forEach(({ c }, i) => {
        const [theirsOk, theirsBad] = [theirs[2 * i], theirs[2 * i + 1]];
        const [oursOk, oursBad] = [ours[2 * i], ours[2 * i + 1]];
        expect(
          [theirsOk?.exitCode, oursOk?.code, theirsBad?.exitCode, oursBad?.code],
          `${c.name} (mutated: ${c.mutate}) ${oursOk?.stderr ?? ''}${oursBad?.stderr ?? ''}${theirsOk?.stderr ?? ''}${theirsBad?.stderr ?? ''}`,
        ).toEqual([0, 0, 1, 1]);
      });
    });

    it("verifies from a record with the owner's inputs, and the record's own validator arguments pass the validator", async () => {
      const kernel = files['random'] ?? '';
      const initrd = files['initrd'] ?? '';
      const firmware = files['hashes'] ?? '';
      const cmdline = 'root=/dev/vda1 ✓';
      const measured = await sevsup([
        'measure',
        '--mode',
        'seves',
        '--ovmf',
        firmware,
        '--kernel',
        kernel,
        '--initrd',
        initrd,
        '--append',
        cmdline,
        '--vcpus',
        '2',
        '--vcpu-type',
        'EPYC-Milan',
      ]);
      expect(measured.code, measured.stderr).toBe(0);
      const host = { ...HOST, policy: 0x7 };
      const measurement = measurementFor(keys.tik, host, measured.stdout.trim());
      const recordPath = join(dir, 'record.json');
      const record = writeRecord(recordPath, {
        host,
        measurement,
        launch: {
          firmware: { path: firmware, sha256: '0'.repeat(64) },
          kernel: { path: kernel, sha256: '0'.repeat(64) },
          initrd: { path: initrd, sha256: '0'.repeat(64) },
          cmdline,
          kernelHashes: true,
          vcpus: 2,
          cpuModel: 'EPYC-Milan',
        },
        cpuSignature: { family: 25, model: 1, stepping: 1 },
      });
      const owner = [
        '--firmware',
        firmware,
        '--kernel',
        kernel,
        '--initrd',
        initrd,
        `--cmdline=${cmdline}`,
        '--vcpus',
        '2',
        '--vcpu-type',
        'EPYC-Milan',
      ];
      const [ours, theirs, insecure] = await Promise.all([
        sevsup(['verify', '--record', recordPath, '--tik', files['tik'] ?? '', ...owner, '--json']),
        validator([...record.validateArgs, '--tik', files['tik'] ?? '']),
        sevsup(['verify', '--record', recordPath, '--tik', files['tik'] ?? '', '--use-record-inputs']),
      ]);
      expect(ours.code, ours.stderr).toBe(0);
      expect(JSON.parse(ours.stdout)).toMatchObject({
        valid: true,
        sevType: 'sev-es',
        platform: 'simulated',
        sources: { firmware: 'owner', cpu: 'owner' },
      });
      expect(theirs).toBe(0);
      expect(insecure.code, insecure.stderr).toBe(0);
      expect(insecure.stderr).toMatch(/WARNING: insecure: firmware: firmware path .* taken from the host's measurement record/);
      expect(insecure.stderr).toMatch(/WARNING: insecure: cpu: vCPU signature/);
    });

    it('keeps verify usable on a copy of the inputs (paths do not matter, bytes do)', async () => {
      const copy = join(dir, 'copy.fd');
      copyFileSync(files['debian'] ?? '', copy);
      const measured = await sevsup(['measure', '--mode', 'sev', '--firmware', files['debian'] ?? '', '--output-format', 'base64']);
      expect(measured.code).toBe(0);
      const digestHex = Buffer.from(measured.stdout.trim(), 'base64').toString('hex');
      const host = { ...HOST, policy: 0x1 };
      const measurement = measurementFor(keys.tik, host, digestHex);
      const r = await sevsup([
        'verify',
        '--measurement',
        measurement,
        '--api-major',
        '1',
        '--api-minor',
        '49',
        '--build-id',
        '6',
        '--policy',
        '1',
        '--tik',
        files['tik'] ?? '',
        '--firmware',
        copy,
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^OK: the measurement matches/);
    });
  },
);
