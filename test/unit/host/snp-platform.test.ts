// The host's SNP identity sources: the operator's facts file (each mistake named by file, line and
// key; re-read at every call), the hardware source's honest "unknown", identity comparison.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { fileTcbSource, hardwareTcbSource, parseSnpPlatformFacts, sameIdentity } from '../../../src/host/snp-platform.js';

const CHIP = 'ab'.repeat(64);
const good = `# from snphost show identifier / show tcb\nproduct: Milan\nchip-id: ${CHIP}\nreported-tcb: 0xd517000000000004\n`;

const messageOf = (text: string): string => {
  try {
    parseSnpPlatformFacts(text, '/etc/sevsup/snp-platform');
  } catch (error: unknown) {
    expect(hasCode(error, 'SUP_ERR_SNP_PLATFORM')).toBe(true);
    return (error as Error).message;
  }
  throw new Error('no error');
};

describe('the snp-platform facts file', () => {
  it('reads product, chip id and REPORTED_TCB (hex or decimal, any product case)', () => {
    const id = parseSnpPlatformFacts(good, 'f');
    expect(id).toEqual({ product: 'Milan', chipId: Buffer.from(CHIP, 'hex'), reportedTcb: 0xd517000000000004n });
    expect(parseSnpPlatformFacts(good.replace('Milan', 'turin').replace('0xd517000000000004', '42'), 'f')).toMatchObject({
      product: 'Turin',
      reportedTcb: 42n,
    });
  });

  it.each([
    [good.replace('Milan', 'Rome'), /snp-platform:2: product: 'Rome' is not one of Milan, Genoa, Turin/],
    [good.replace(CHIP, CHIP.slice(2)), /snp-platform:3: chip-id: must be the 64-byte CHIP_ID as 128 hex digits/],
    [good.replace('0xd517000000000004', '0x1d517000000000004'), /snp-platform:4: reported-tcb: .* is not a 64-bit value/],
    [good.replace('0xd517000000000004', '18446744073709551616'), /snp-platform:4: reported-tcb/],
    [good.replace('0xd517000000000004', '-1'), /snp-platform:4: reported-tcb/],
    [`${good}tcb: 1\n`, /snp-platform:5: tcb: unknown key \(the keys are product, chip-id, reported-tcb\)/],
    [good.replace(/^chip-id.*$/m, ''), /snp-platform: no 'chip-id:' line/],
    [`${good}product: Genoa\n`, /snp-platform:5: duplicate key 'product'/],
    ['product Milan\n', /snp-platform:1: line .* is not "key: value"/],
  ])('refuses %j with a message naming file, line and key', (text, message) => {
    expect(messageOf(text)).toMatch(message);
  });

  it('is re-read at every call, and a broken or missing file is an answer, not a throw', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sevsup-snp-platform-'));
    try {
      const file = join(dir, 'snp-platform');
      const source = fileTcbSource(file);
      expect(await source.read()).toMatchObject({
        known: false,
        reason: expect.stringMatching(/cannot read .*snp-platform: no such file/),
      });
      writeFileSync(file, good);
      expect(await source.read()).toMatchObject({ known: true, identity: { reportedTcb: 0xd517000000000004n }, source: `file:${file}` });
      writeFileSync(file, good.replace('0xd517000000000004', '0xd618000000000004'));
      expect(await source.read()).toMatchObject({ known: true, identity: { reportedTcb: 0xd618000000000004n } });
      writeFileSync(file, 'product: Rome\n');
      expect(await source.read()).toMatchObject({ known: false, reason: expect.stringContaining(`${file}:1: product`) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the hardware source says what the operator must give', async () => {
    expect(await hardwareTcbSource().read()).toMatchObject({ known: false, reason: expect.stringContaining('snp-platform: FILE') });
  });

  it('compares identities by product, chip and TCB', () => {
    const a = parseSnpPlatformFacts(good, 'f');
    expect(sameIdentity(a, parseSnpPlatformFacts(good, 'g'))).toBe(true);
    expect(sameIdentity(a, { ...a, reportedTcb: a.reportedTcb + 1n })).toBe(false);
    expect(sameIdentity(a, { ...a, chipId: Buffer.alloc(64) })).toBe(false);
    expect(sameIdentity(a, null)).toBe(false);
    expect(sameIdentity(null, null)).toBe(true);
  });
});
