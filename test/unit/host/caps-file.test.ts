// Both capability-file formats, every bad-file error with its exact message, the seed-compatible
// writer (atomic, 0644), and format → parse round trips.
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatCapsFile, parseCapsFile, readCapsFile, writeCapsFile } from '../../../src/host/caps-file.js';
import type { HostCaps } from '../../../src/host/host-caps.js';
import { SIMULATED_HOST_CAPS } from '../../../src/host/simulated.js';
import { catchSupervisorError } from '../../support/catch-error.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/host-caps/', import.meta.url));
const F = '/run/qemu-server/host-hw-capabilities.json';

const fixText = (name: string): Promise<string> => readFile(join(FIXTURES, name), 'utf8');

describe('parseCapsFile', () => {
  it('reads what Proxmox writes on an SEV-SNP host', async () => {
    expect(parseCapsFile(await fixText('proxmox-epyc-genoa.json'), F)).toEqual({
      sev: { supported: true, reason: `supported: ${F} says "sev-support": true`, source: F },
      sevEs: { supported: true, reason: `supported: ${F} says "sev-support-es": true`, source: F },
      sevSnp: { supported: true, reason: `supported: ${F} says "sev-support-snp": true`, source: F },
      cbitpos: 51,
      cbitposSource: F,
      reducedPhysBits: 1,
      reducedPhysBitsSource: F,
    });
  });

  it('reads SEV without ES', async () => {
    const caps = parseCapsFile(await fixText('proxmox-sev-only.json'), F);
    expect(caps.sev.supported).toBe(true);
    expect(caps.sevEs).toEqual({ supported: false, reason: `not supported, because ${F} says "sev-support-es": false`, source: F });
    expect(caps.cbitpos).toBe(47);
  });

  it('reads the seed file: 0/1 flags and no sev-support-snp', async () => {
    const file = '/run/qemu-server/hw-params.json';
    const caps = parseCapsFile(await fixText('seed-hw-params.json'), file);
    expect(caps.sev).toEqual({ supported: true, reason: `supported: ${file} says "sev-support": true`, source: file });
    expect(caps.sevEs.supported).toBe(true);
    expect(caps.sevSnp).toEqual({
      supported: false,
      reason: `not supported, because ${file} has no "sev-support-snp" (written by a version without SEV-SNP)`,
      source: file,
    });
  });

  it('reads a file with no amd-sev section (non-AMD hosts) as unsupported', async () => {
    for (const name of ['proxmox-intel.json', 'proxmox-other-vendor.json']) {
      const caps = parseCapsFile(await fixText(name), F);
      const feature = {
        supported: false,
        reason: `not supported, because ${F} has no "amd-sev" section (it was written on a host without an AMD CPU)`,
        source: F,
      };
      expect(caps).toEqual({
        sev: feature,
        sevEs: feature,
        sevSnp: feature,
        cbitpos: null,
        cbitposSource: F,
        reducedPhysBits: null,
        reducedPhysBitsSource: F,
      });
    }
  });

  it('gives ES and SNP the SEV reason when sev-support is false', () => {
    const caps = parseCapsFile(
      '{"amd-sev": {"cbitpos": 0, "reduced-phys-bits": 0, "sev-support": false, "sev-support-es": true, "sev-support-snp": true}}',
      F,
    );
    const off = { supported: false, reason: `not supported, because ${F} says "sev-support": false`, source: F };
    expect([caps.sev, caps.sevEs, caps.sevSnp]).toEqual([off, off, off]);
    expect(caps.cbitpos).toBe(0);
  });

  it('ignores keys a newer writer adds', () => {
    const caps = parseCapsFile(
      '{"amd-sev": {"cbitpos": 47, "reduced-phys-bits": 1, "sev-support": true, "sev-support-es": true, "max-guests": 509}, "intel-tdx": {}}',
      F,
    );
    expect(caps.sev.supported).toBe(true);
  });

  const hint = `; fix or delete the file, or rewrite it with "sevsup host --write ${F}"`;
  const bad: [string, string, string | null, string][] = [
    ['not JSON', '{"amd-sev": ', null, `host capabilities file ${F} is not valid JSON (Unexpected end of JSON input)`],
    ['an array', '[]', null, `host capabilities file ${F} must contain a JSON object`],
    ['amd-sev not an object', '{"amd-sev": true}', 'amd-sev', `host capabilities file ${F}: key "amd-sev" must be an object`],
    [
      'cbitpos missing',
      '{"amd-sev": {"reduced-phys-bits": 1, "sev-support": true, "sev-support-es": true}}',
      'amd-sev.cbitpos',
      `host capabilities file ${F}: key "amd-sev.cbitpos" is missing`,
    ],
    [
      'cbitpos a string',
      '{"amd-sev": {"cbitpos": "47", "reduced-phys-bits": 1, "sev-support": true, "sev-support-es": true}}',
      'amd-sev.cbitpos',
      `host capabilities file ${F}: key "amd-sev.cbitpos" must be an integer from 0 to 63, got "47"`,
    ],
    [
      'cbitpos 64',
      '{"amd-sev": {"cbitpos": 64, "reduced-phys-bits": 1, "sev-support": true, "sev-support-es": true}}',
      'amd-sev.cbitpos',
      `host capabilities file ${F}: key "amd-sev.cbitpos" must be an integer from 0 to 63, got 64`,
    ],
    [
      'reduced-phys-bits fractional',
      '{"amd-sev": {"cbitpos": 47, "reduced-phys-bits": 1.5, "sev-support": true, "sev-support-es": true}}',
      'amd-sev.reduced-phys-bits',
      `host capabilities file ${F}: key "amd-sev.reduced-phys-bits" must be an integer from 0 to 63, got 1.5`,
    ],
    [
      'sev-support missing',
      '{"amd-sev": {"cbitpos": 47, "reduced-phys-bits": 1, "sev-support-es": true}}',
      'amd-sev.sev-support',
      `host capabilities file ${F}: key "amd-sev.sev-support" is missing`,
    ],
    [
      'sev-support "true"',
      '{"amd-sev": {"cbitpos": 47, "reduced-phys-bits": 1, "sev-support": "true", "sev-support-es": true}}',
      'amd-sev.sev-support',
      `host capabilities file ${F}: key "amd-sev.sev-support" must be true or false (or 0 or 1), got "true"`,
    ],
    [
      'sev-support-es 2',
      '{"amd-sev": {"cbitpos": 47, "reduced-phys-bits": 1, "sev-support": true, "sev-support-es": 2}}',
      'amd-sev.sev-support-es',
      `host capabilities file ${F}: key "amd-sev.sev-support-es" must be true or false (or 0 or 1), got 2`,
    ],
    [
      'sev-support-snp null',
      '{"amd-sev": {"cbitpos": 47, "reduced-phys-bits": 1, "sev-support": true, "sev-support-es": true, "sev-support-snp": null}}',
      'amd-sev.sev-support-snp',
      `host capabilities file ${F}: key "amd-sev.sev-support-snp" must be true or false (or 0 or 1), got null`,
    ],
  ];
  it.each(bad)('refuses %s with SUP_ERR_HOST_CAPS_FILE naming file and key', (_name, text, key, message) => {
    expect(catchSupervisorError(() => parseCapsFile(text, F))).toEqual({
      code: 'SUP_ERR_HOST_CAPS_FILE',
      message: message + hint,
      details: { file: F, key },
    });
  });
});

describe('formatCapsFile', () => {
  it('writes the seed-compatible JSON', () => {
    expect(JSON.parse(formatCapsFile(SIMULATED_HOST_CAPS))).toEqual({
      'amd-sev': { cbitpos: 47, 'reduced-phys-bits': 1, 'sev-support': true, 'sev-support-es': true, 'sev-support-snp': true },
    });
    expect(formatCapsFile(SIMULATED_HOST_CAPS).endsWith('}\n')).toBe(true);
  });

  it('writes unknown bit fields as 0, as Proxmox does', () => {
    const caps: HostCaps = { ...SIMULATED_HOST_CAPS, cbitpos: null, reducedPhysBits: null };
    expect(JSON.parse(formatCapsFile(caps))['amd-sev']).toMatchObject({ cbitpos: 0, 'reduced-phys-bits': 0 });
  });

  it('round-trips the support flags and bit fields', () => {
    const feature = (supported: boolean) => ({ supported, reason: 'r', source: 's' });
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 63 }),
        fc.integer({ min: 0, max: 63 }),
        (sev, es, snp, cbitpos, reduced) => {
          const caps: HostCaps = {
            sev: feature(sev),
            sevEs: feature(es),
            sevSnp: feature(snp),
            cbitpos,
            cbitposSource: 's',
            reducedPhysBits: reduced,
            reducedPhysBitsSource: 's',
          };
          const back = parseCapsFile(formatCapsFile(caps), F);
          expect([back.sev.supported, back.sevEs.supported, back.sevSnp.supported]).toEqual([sev, sev && es, sev && snp]);
          expect([back.cbitpos, back.reducedPhysBits]).toEqual([cbitpos, reduced]);
        },
      ),
    );
  });
});

describe('readCapsFile / writeCapsFile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sevsup-capsfile-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is null for a missing file', async () => {
    expect(await readCapsFile(join(dir, 'none.json'))).toBeNull();
  });

  it('refuses a file too large to be a caps file', async () => {
    const file = join(dir, 'big.json');
    await writeFile(file, ' '.repeat(70_000));
    await expect(readCapsFile(file)).rejects.toMatchObject({
      code: 'SUP_ERR_HOST_CAPS_FILE',
      message: `host capabilities file ${file} is 70000 bytes, more than a capabilities file can be (65536); fix or delete the file, or rewrite it with "sevsup host --write ${file}"`,
    });
  });

  it('refuses a directory', async () => {
    await expect(readCapsFile(dir)).rejects.toMatchObject({
      code: 'SUP_ERR_HOST_CAPS_FILE',
      message: `host capabilities file ${dir} cannot be read (EISDIR); fix or delete the file, or rewrite it with "sevsup host --write ${dir}"`,
    });
  });

  it('writes atomically with mode 0644 and leaves no temp file; replaces an old file', async () => {
    const file = join(dir, 'hw-params.json');
    const old = process.umask(0o077);
    try {
      await writeCapsFile(file, SIMULATED_HOST_CAPS);
      await writeCapsFile(file, SIMULATED_HOST_CAPS);
    } finally {
      process.umask(old);
    }
    expect(await readFile(file, 'utf8')).toBe(formatCapsFile(SIMULATED_HOST_CAPS));
    expect((await stat(file)).mode & 0o777).toBe(0o644);
    expect(await readdir(dir)).toEqual(['hw-params.json']);
    expect((await readCapsFile(file))?.sev.supported).toBe(true);
  });

  it("creates a missing directory, as Proxmox's writer does for /run/qemu-server", async () => {
    const file = join(dir, 'run', 'qemu-server', 'hw-params.json');
    await writeCapsFile(file, SIMULATED_HOST_CAPS);
    expect((await readCapsFile(file))?.cbitpos).toBe(47);
  });

  it('names the file when it cannot write', async () => {
    await writeFile(join(dir, 'not-a-dir'), '');
    const file = join(dir, 'not-a-dir', 'caps.json');
    await expect(writeCapsFile(file, SIMULATED_HOST_CAPS)).rejects.toMatchObject({
      code: 'SUP_ERR_HOST_CAPS_WRITE',
      message: `cannot write host capabilities file ${file} (EEXIST); check that its directory exists and is writable`,
    });
  });
});
