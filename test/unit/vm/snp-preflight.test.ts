// SNP preflight: the firmware checked for SNP with the VM's own kernel settings, and the SNP line's
// files read into the base64 values sev-snp-guest takes (raw or base64 files), refusals named.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSnpFirmware } from '../../../src/attestation/snp-inputs.js';
import { parseVmConfig } from '../../../src/config/vm-config.js';
import type { SnpSpec } from '../../../src/config/vm-spec.js';
import { snpPreflight } from '../../../src/vm/snp-preflight.js';
import { buildSnpImage } from '../../support/ovmf-images.js';

const dir = mkdtempSync(path.join(tmpdir(), 'snp-preflight-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fw = path.join(dir, 'fw.fd');
writeFileSync(
  fw,
  buildSnpImage({
    sections: [
      [0x800000, 0x1000, 1],
      [0x801000, 0x1000, 2],
      [0x802000, 0x1000, 3],
      [0x803000, 0x1000, 0x10],
    ],
    hashes: [0x803c00, 0x400],
  }),
);
const plainFw = path.join(dir, 'plain.fd');
writeFileSync(plainFw, buildSnpImage({ sections: [[0x800000, 0x1000, 1]] }));

function load(lines: string) {
  const spec = parseVmConfig(lines, path.join(dir, 'g.conf'));
  if (spec.sev?.type !== 'snp') throw new Error('not SNP');
  return { spec, sev: spec.sev as SnpSpec };
}

describe('snpPreflight', () => {
  it('reads the ID block (base64 file), ID auth (raw file) and host data', async () => {
    writeFileSync(path.join(dir, 'g.idblock'), `${Buffer.alloc(96, 7).toString('base64')}\n`);
    writeFileSync(path.join(dir, 'g.idauth'), Buffer.alloc(4096, 9));
    writeFileSync(path.join(dir, 'hd.bin'), Buffer.alloc(32, 5));
    const { spec, sev } = load(
      `firmware: ${fw}\nkernel: /k\namd-sev: type=snp,kernel-hashes=1,id-block=g.idblock,id-auth=g.idauth,host-data-file=hd.bin\n`,
    );
    const read = await snpPreflight(spec, sev, await readSnpFirmware(spec.firmware?.path ?? ''));
    expect(read.firmware).toMatchObject({ path: fw, size: read.firmware.bytes.length });
    expect(read.files).toEqual({
      idBlock: Buffer.alloc(96, 7).toString('base64'),
      idAuth: Buffer.alloc(4096, 9).toString('base64'),
      hostData: Buffer.alloc(32, 5).toString('base64'),
    });
  });

  it('refuses a kernel with a firmware that has no KERNEL_HASHES section, naming the file and why', async () => {
    const { spec, sev } = load(`firmware: ${plainFw}\nkernel: /k\namd-sev: type=snp\n`);
    await expect(snpPreflight(spec, sev, await readSnpFirmware(spec.firmware?.path ?? ''))).rejects.toMatchObject({
      code: 'SUP_ERR_FIRMWARE_SNP',
      message: expect.stringContaining(
        `firmware: ${plainFw} cannot launch this SEV-SNP guest: a kernel is given, but the firmware has no KERNEL_HASHES section`,
      ),
    });
  });

  it('refuses an ID block file of the wrong size', async () => {
    writeFileSync(path.join(dir, 'short.idblock'), Buffer.alloc(95, 1).toString('base64'));
    writeFileSync(path.join(dir, 'ok.idauth'), Buffer.alloc(100, 1).toString('base64'));
    const { spec, sev } = load(`firmware: ${fw}\namd-sev: type=snp,id-block=short.idblock,id-auth=ok.idauth\n`);
    await expect(snpPreflight(spec, sev, await readSnpFirmware(spec.firmware?.path ?? ''))).rejects.toMatchObject({
      code: 'SUP_ERR_CONFIG_BAD_VALUE',
      message: `${path.join(dir, 'g.conf')}: amd-sev: id-block ${path.join(dir, 'short.idblock')}: must hold 96 bytes, raw or in base64 (\`sevsup id-block\` writes them); it holds neither`,
    });
  });
});
