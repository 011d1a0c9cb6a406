import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { inspectFirmwareFile } from '../../../src/sev/firmware-file.js';
import { parseOvmfTable } from '../../../src/sev/ovmf-table.js';
import { buildImage, debianLikeEntries } from '../../support/ovmf-images.js';

const dir = mkdtempSync(join(tmpdir(), 'sevsup-fw-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('inspectFirmwareFile', () => {
  it('streams size, sha256 and the table of an image bigger than one read', async () => {
    const image = buildImage(debianLikeEntries({ hashes: [0x80a000, 0x400] }), { size: 3 * 1024 * 1024 + 4096 });
    image.fill(0x5a, 0, 1000);
    const path = join(dir, 'fw.fd');
    writeFileSync(path, image);
    const info = await inspectFirmwareFile(path);
    expect(info.path).toBe(path);
    expect(info.size).toBe(image.length);
    expect(info.sha256).toBe(createHash('sha256').update(image).digest('hex'));
    expect(info.table).toEqual(parseOvmfTable(image));
    expect(info.table.hashesArea).toEqual({ base: 0x80a000, size: 0x400 });
  });

  it('reports small and table-less files without failing', async () => {
    const path = join(dir, 'tiny');
    writeFileSync(path, 'not firmware');
    const info = await inspectFirmwareFile(path);
    expect(info.size).toBe(12);
    expect(info.table.found).toBe(false);
  });

  it('fails with SUP_ERR_FIRMWARE_READ for unreadable paths and SUP_ERR_FIRMWARE_TABLE_INVALID for a bad table', async () => {
    const missing = await inspectFirmwareFile(join(dir, 'missing.fd')).catch((e: unknown) => e);
    expect(hasCode(missing, 'SUP_ERR_FIRMWARE_READ')).toBe(true);
    expect((missing as Error).message).toMatch(/^cannot read firmware image .*missing\.fd: no such file$/);
    const bad = join(dir, 'bad.fd');
    writeFileSync(bad, buildImage(debianLikeEntries(), { totalLen: 3 }));
    const invalid = await inspectFirmwareFile(bad).catch((e: unknown) => e);
    expect(hasCode(invalid, 'SUP_ERR_FIRMWARE_TABLE_INVALID')).toBe(true);
    expect((invalid as Error).message).toBe('OVMF table has invalid size -15');
  });
});
