// Debian's own OVMF.fd (package ovmf, installed by scripts/setup.sh): the footer table as QEMU 7.2
// reads it, through the parser, the streaming file reader and `sevsup inspect-firmware`. An
// integration test: it needs the distribution's firmware file, not a synthetic image.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { inspectFirmwareFile } from '../../src/sev/firmware-file.js';
import { describeHashesAreaProblem, OVMF_TABLE_TAIL_BYTES, parseOvmfTable, parseOvmfTableTail } from '../../src/sev/ovmf-table.js';
import { runCliCaptured } from '../../test/support/run-cli.js';

const DEBIAN_OVMF = '/usr/share/ovmf/OVMF.fd';

describe.runIf(existsSync(DEBIAN_OVMF))("Debian's OVMF.fd", () => {
  const image = existsSync(DEBIAN_OVMF) ? readFileSync(DEBIAN_OVMF) : Buffer.alloc(0);

  it('declares empty hashes and secret areas and an SEV-ES reset address', () => {
    const t = parseOvmfTable(image);
    expect(t.found).toBe(true);
    expect(t.hashesArea).toEqual({ base: 0, size: 0 });
    expect(t.secretArea).toEqual({ base: 0, size: 0 });
    expect(t.sevResetAddress).toBe(0x80b004);
    expect(t.snpMetadata).toBe(true);
    expect(describeHashesAreaProblem(t.hashesArea)).toBe('SEV: guest firmware hashes table area is invalid (base=0x0 size=0x0)');
  });

  it('parses the same from the tail alone as from the whole image', () => {
    const tail = image.subarray(image.length - OVMF_TABLE_TAIL_BYTES);
    expect(parseOvmfTableTail(tail, image.length)).toEqual(parseOvmfTable(image));
  });

  it('inspectFirmwareFile matches a one-shot read', async () => {
    const info = await inspectFirmwareFile(DEBIAN_OVMF);
    expect(info.sha256).toBe(createHash('sha256').update(image).digest('hex'));
    expect(info.table.hashesArea).toEqual({ base: 0, size: 0 });
    expect(info.table.sevResetAddress).not.toBeNull();
  });

  it("sevsup inspect-firmware shows the empty areas with QEMU's refusal and the ES reset address", async () => {
    const { code, out } = await runCliCaptured('inspect-firmware', DEBIAN_OVMF);
    expect(code).toBe(0);
    expect(out).toContain('kernel-hashes area:   base=0x0 size=0x0 — SEV: guest firmware hashes table area is invalid (base=0x0 size=0x0)');
    expect(out).toContain('SEV-ES reset address: 0x80b004 (footer table) — usable for SEV-ES');
    expect(out).toContain('launch-secret area:   base=0x0 size=0x0');
    expect(out).toContain('7255371f-3a3b-4b04-927b-1da6efa8d454  SEV kernel-hashes table area');
    expect(out).toContain('SEV-SNP metadata:     present');
    expect(out).toMatch(/^sha256: +[0-9a-f]{64}$/m);
    expect(out).toContain('size:       2097152 bytes');
  });
});
