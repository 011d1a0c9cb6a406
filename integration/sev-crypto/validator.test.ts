// Cross-check of the launch digest, the measurement and launch secrets against libvirt's
// virt-qemu-sev-validate (offline mode): our numbers must satisfy it, and one changed input byte
// must make it refuse. Random keys, nonces, kernels and initrds on every run.
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeLaunchDigestFromFiles } from '../../src/sev/launch-digest.js';
import { buildLaunchSecret, SECRET_ALIASES, verifyLaunchSecret } from '../../src/sev/launch-secret.js';
import { computeMeasurementMac, decodeStrictBase64, encodeMeasurement } from '../../src/sev/measurement.js';
import { parseOvmfTable, SEV_HASH_TABLE_RV_GUID, SEV_SECRET_GUID } from '../../src/sev/ovmf-table.js';
import type { SevEsParams } from '../../src/sev/vmsa.js';
import { DEBIAN_OVMF, HAVE_VALIDATOR, mapLimit, runValidator, type ValidatorArgs } from '../../test/support/validator.js';

const CONCURRENCY = 2;

interface Case {
  readonly name: string;
  readonly firmware: 'debian' | 'patched';
  readonly kernel?: boolean;
  readonly initrd?: boolean;
  readonly cmdline?: string;
  readonly policy: number;
  readonly es?: { readonly vcpus: number; readonly sku: readonly [number, number, number] };
  /** How the negative run differs from the positive one. */
  readonly mutate: 'firmware' | 'kernel' | 'initrd' | 'cmdline' | 'measurement' | 'api-minor' | 'build-id' | 'policy' | 'num-cpus' | 'sku';
}

const CASES: readonly Case[] = [
  { name: 'Debian OVMF, no kernel', firmware: 'debian', policy: 0x3, mutate: 'firmware' },
  { name: 'patched OVMF, no kernel', firmware: 'patched', policy: 0x8, mutate: 'measurement' },
  { name: 'kernel only (no -append: sha256 of NUL)', firmware: 'patched', kernel: true, policy: 0xb, mutate: 'kernel' },
  {
    name: 'kernel, initrd, plain cmdline',
    firmware: 'patched',
    kernel: true,
    initrd: true,
    cmdline: 'console=ttyS0 root=/dev/vda1 quiet',
    policy: 0x9,
    mutate: 'initrd',
  },
  { name: 'empty cmdline', firmware: 'patched', kernel: true, initrd: true, cmdline: '', policy: 0x1, mutate: 'cmdline' },
  {
    name: 'unicode cmdline',
    firmware: 'patched',
    kernel: true,
    cmdline: 'console=ttyS0 motd="héllo wörld" 漢字 ✓',
    policy: 0x3,
    mutate: 'cmdline',
  },
  {
    name: 'commas and quotes',
    firmware: 'debian',
    kernel: true,
    initrd: true,
    cmdline: `a,b,,c "d e" 'f' g=h,i -- x`,
    policy: 0x0,
    mutate: 'api-minor',
  },
  { name: 'SEV-ES, 1 vCPU, Milan', firmware: 'debian', policy: 0x7, es: { vcpus: 1, sku: [25, 1, 1] }, mutate: 'build-id' },
  {
    name: 'SEV-ES, 2 vCPUs, Rome, kernel',
    firmware: 'patched',
    kernel: true,
    initrd: true,
    cmdline: 'quiet',
    policy: 0x5,
    es: { vcpus: 2, sku: [23, 49, 0] },
    mutate: 'num-cpus',
  },
  { name: 'SEV-ES, 4 vCPUs, Genoa', firmware: 'patched', policy: 0xf, es: { vcpus: 4, sku: [25, 17, 1] }, mutate: 'sku' },
  { name: 'SEV-ES, 3 vCPUs, policy flip', firmware: 'debian', policy: 0x4, es: { vcpus: 3, sku: [25, 1, 1] }, mutate: 'policy' },
];

describe.runIf(HAVE_VALIDATOR && existsSync(DEBIAN_OVMF))('sev/ against virt-qemu-sev-validate', () => {
  let dir = '';
  const files = { patched: '', kernel: '', initrd: '', tik: '', tek: '' };
  let tik = Buffer.alloc(0);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sevsup-validate-'));
    const image = readFileSync(DEBIAN_OVMF);
    const table = parseOvmfTable(image);
    for (const [guid, base, size] of [
      [SEV_HASH_TABLE_RV_GUID, 0x80a000, 0x400],
      [SEV_SECRET_GUID, 0x80b000, 0x1000],
    ] as const) {
      const entry = table.entries.find((e) => e.guid === guid);
      if (!entry) throw new Error(`Debian OVMF has no ${guid} entry`);
      image.writeUInt32LE(base, entry.offset);
      image.writeUInt32LE(size, entry.offset + 4);
    }
    files.patched = join(dir, 'ovmf-patched.fd');
    writeFileSync(files.patched, image);
    files.kernel = join(dir, 'vmlinuz');
    writeFileSync(files.kernel, randomBytes(3 * 1024 * 1024 + randomInt(4096)));
    files.initrd = join(dir, 'initrd');
    writeFileSync(files.initrd, randomBytes(512 * 1024 + randomInt(4096)));
    tik = randomBytes(16);
    files.tik = join(dir, 'tik.bin');
    files.tek = join(dir, 'tek.bin');
    writeFileSync(files.tik, tik);
    writeFileSync(files.tek, randomBytes(16));
  });
  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  /** Our measurement and the matching validator arguments for a case. */
  async function measure(c: Case): Promise<{ args: ValidatorArgs; mac: Buffer }> {
    const firmware = c.firmware === 'debian' ? DEBIAN_OVMF : files.patched;
    const resetAddress = parseOvmfTable(readFileSync(firmware)).sevResetAddress ?? 0;
    const sevEs: SevEsParams | undefined =
      c.es === undefined
        ? undefined
        : { vcpus: c.es.vcpus, family: c.es.sku[0], model: c.es.sku[1], stepping: c.es.sku[2], resetAddress, vmsaInit: 'legacy' };
    const { digest } = await computeLaunchDigestFromFiles({
      firmware,
      ...(c.kernel === true ? { kernel: files.kernel } : {}),
      ...(c.initrd === true ? { initrd: files.initrd } : {}),
      ...(c.cmdline === undefined ? {} : { cmdline: c.cmdline }),
      kernelHashes: true,
      ...(sevEs === undefined ? {} : { sevEs }),
    });
    const fields = { apiMajor: 1, apiMinor: randomInt(256), buildId: randomInt(256), policy: c.policy };
    const mnonce = randomBytes(16);
    const mac = computeMeasurementMac({ tik, ...fields, digest, mnonce });
    return {
      mac,
      args: {
        measurement: encodeMeasurement(mac, mnonce),
        ...fields,
        firmware,
        tik: files.tik,
        tek: files.tek,
        ...(c.kernel === true ? { kernel: files.kernel } : {}),
        ...(c.initrd === true ? { initrd: files.initrd } : {}),
        ...(c.cmdline === undefined ? {} : { cmdline: c.cmdline }),
        ...(c.es === undefined ? {} : { numCpus: c.es.vcpus, sku: c.es.sku }),
      },
    };
  }

  /** Copy `path` into the temp dir with one byte changed. */
  function flippedCopy(path: string, name: string): string {
    const bytes = readFileSync(path);
    const at = randomInt(bytes.length);
    bytes[at] = (bytes[at] ?? 0) ^ 0x01;
    const out = join(dir, name);
    writeFileSync(out, bytes);
    return out;
  }

  function mutated(c: Case, args: ValidatorArgs, index: number): ValidatorArgs {
    switch (c.mutate) {
      case 'firmware':
        return { ...args, firmware: flippedCopy(args.firmware, `fw-${index}.fd`) };
      case 'kernel':
        return { ...args, kernel: flippedCopy(files.kernel, `kernel-${index}`) };
      case 'initrd':
        return { ...args, initrd: flippedCopy(files.initrd, `initrd-${index}`) };
      case 'cmdline': {
        const cmdline = args.cmdline ?? '';
        // Change one UTF-8 byte's worth: the last character, or add one to an empty line.
        return { ...args, cmdline: cmdline === '' ? ' ' : `${cmdline.slice(0, -1)}${cmdline.endsWith('x') ? 'y' : 'x'}` };
      }
      case 'measurement': {
        const raw = Buffer.from(args.measurement, 'base64');
        const at = randomInt(32);
        raw[at] = (raw[at] ?? 0) ^ 0x80;
        return { ...args, measurement: raw.toString('base64') };
      }
      case 'api-minor':
        return { ...args, apiMinor: (args.apiMinor + 1) % 256 };
      case 'build-id':
        return { ...args, buildId: (args.buildId + 1) % 256 };
      case 'policy':
        return { ...args, policy: args.policy ^ 0x1 };
      case 'num-cpus':
        return { ...args, numCpus: (args.numCpus ?? 1) + 1 };
      case 'sku': {
        const [family, model, stepping] = args.sku ?? [25, 1, 1];
        return { ...args, sku: [family, model, stepping ^ 1] };
      }
    }
  }

  it('accepts our measurement for every case and refuses it after one changed input', async () => {
    const results = await mapLimit(CASES, CONCURRENCY, async (c, index) => {
      const { args } = await measure(c);
      const good = await runValidator(args);
      const bad = await runValidator(mutated(c, args, index));
      return { name: c.name, good: good.exitCode, goodErr: good.stderr, bad: bad.exitCode, badErr: bad.stderr };
    });
    for (const r of results) {
      expect(r.good, `${r.name}: ${r.goodErr}`).toBe(0);
      expect(r.bad, `${r.name} (mutated): ${r.badErr}`).toBe(1);
      expect(r.badErr).toContain('Measurement does not match');
    }
  });

  it("verifies the validator's secret packets and builds byte-identical ones from the same IV", async () => {
    const c: Case = {
      name: 'secrets',
      firmware: 'patched',
      kernel: true,
      initrd: true,
      cmdline: 'root=/dev/vda',
      policy: 0x3,
      mutate: 'measurement',
    };
    const { args, mac } = await measure(c);
    const tek = readFileSync(files.tek);
    const otherGuid = 'a3b7d1c8-0f29-4b6e-9d51-7c2e8f4a6b10';
    // 20 + (20 + 12) + (20 + 8) = 80: already 16-aligned, so libvirt pads a whole extra block.
    for (const [luksLen, otherLen] of [
      [12, 8],
      [33, 1],
    ] as const) {
      const luks = randomBytes(luksLen);
      const other = randomBytes(otherLen);
      writeFileSync(join(dir, 'luks.bin'), luks);
      writeFileSync(join(dir, 'other.bin'), other);
      const header = join(dir, 'secret-header.b64');
      const payload = join(dir, 'secret-payload.b64');
      const run = await runValidator({
        ...args,
        secrets: [`luks-key:${join(dir, 'luks.bin')}`, `${otherGuid}:${join(dir, 'other.bin')}`],
        secretHeader: header,
        secretPayload: payload,
      });
      expect(run.exitCode, run.stderr).toBe(0);
      const theirs = {
        header: decodeStrictBase64(readFileSync(header, 'utf8')) ?? Buffer.alloc(0),
        payload: decodeStrictBase64(readFileSync(payload, 'utf8')) ?? Buffer.alloc(0),
      };
      expect(theirs.header.length).toBe(52);
      expect(verifyLaunchSecret({ tik, tek, measurementMac: mac, ...theirs })).toEqual({
        ok: true,
        secrets: [
          { guid: SECRET_ALIASES['luks-key'], length: luksLen },
          { guid: otherGuid, length: otherLen },
        ],
      });
      const ours = buildLaunchSecret({
        tik,
        tek,
        measurementMac: mac,
        iv: theirs.header.subarray(4, 20),
        secrets: [
          { guid: SECRET_ALIASES['luks-key'], data: luks },
          { guid: otherGuid, data: other },
        ],
      });
      expect(ours.header.equals(theirs.header)).toBe(true);
      expect(ours.payload.equals(theirs.payload)).toBe(true);

      // The platform refuses their packet under another TIK or with any flipped bit.
      expect(verifyLaunchSecret({ tik: randomBytes(16), measurementMac: mac, ...theirs }).ok).toBe(false);
      const flipped = Buffer.from(theirs.payload);
      const at = randomInt(flipped.length);
      flipped[at] = (flipped[at] ?? 0) ^ 0x04;
      expect(verifyLaunchSecret({ tik, measurementMac: mac, header: theirs.header, payload: flipped }).ok).toBe(false);
      const flippedHeader = Buffer.from(theirs.header);
      const hat = 4 + randomInt(48);
      flippedHeader[hat] = (flippedHeader[hat] ?? 0) ^ 0x10;
      expect(verifyLaunchSecret({ tik, measurementMac: mac, header: flippedHeader, payload: theirs.payload }).ok).toBe(false);
    }
  });
});
