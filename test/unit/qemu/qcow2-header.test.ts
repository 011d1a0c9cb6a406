// parseQcow2Header on hand-built headers (docs/interop/qcow2.txt layout): the backing name and
// format, the external data file, version 2, and bytes that must be refused rather than guessed.
import { describe, expect, it } from 'vitest';
import { parseQcow2Header, Qcow2HeaderError } from '../../../src/qemu/qcow2-header.js';
import { hasProtocolPrefix } from '../../../src/vm/disk-chain.js';

/** A v3 header (length 104), then extensions, then the backing name at its offset. */
function header(o: { version?: 2 | 3; backing?: string; extensions?: [number, string][]; incompatible?: bigint } = {}): Buffer {
  const version = o.version ?? 3;
  const base = version === 3 ? 104 : 72;
  const exts = (o.extensions ?? []).map(([type, data]) => {
    const body = Buffer.from(data, 'latin1');
    const ext = Buffer.alloc(8 + Math.ceil(body.length / 8) * 8);
    ext.writeUInt32BE(type, 0);
    ext.writeUInt32BE(body.length, 4);
    body.copy(ext, 8);
    return ext;
  });
  const head = Buffer.alloc(base);
  head.writeUInt32BE(0x514649fb, 0);
  head.writeUInt32BE(version, 4);
  if (version === 3) {
    head.writeBigUInt64BE(o.incompatible ?? 0n, 72);
    head.writeUInt32BE(104, 100);
  }
  const bytes = Buffer.concat([head, ...exts, Buffer.alloc(8)]);
  if (o.backing === undefined) return bytes;
  bytes.writeBigUInt64BE(BigInt(bytes.length), 8);
  bytes.writeUInt32BE(o.backing.length, 16);
  return Buffer.concat([bytes, Buffer.from(o.backing, 'latin1')]);
}

describe('parseQcow2Header', () => {
  it('reads the backing name and its format extension', () => {
    expect(parseQcow2Header(header({ backing: '../base.raw', extensions: [[0xe2792aca, 'raw']] }))).toEqual({
      version: 3,
      backingName: '../base.raw',
      backingFormat: 'raw',
      dataFile: null,
    });
  });

  it('reads a version 2 header, which has no extensions area of its own', () => {
    expect(parseQcow2Header(header({ version: 2, backing: '/etc/shadow' }))).toMatchObject({
      version: 2,
      backingName: '/etc/shadow',
      backingFormat: null,
    });
  });

  it('reports an external data file, named or only flagged', () => {
    expect(parseQcow2Header(header({ extensions: [[0x44415441, '/elsewhere/data.raw']], incompatible: 4n })).dataFile).toBe(
      '/elsewhere/data.raw',
    );
    expect(parseQcow2Header(header({ incompatible: 4n })).dataFile).toBe('');
  });

  it('refuses what is not a readable qcow2 header', () => {
    expect(() => parseQcow2Header(Buffer.alloc(200))).toThrow(Qcow2HeaderError);
    const v4 = header();
    v4.writeUInt32BE(4, 4);
    expect(() => parseQcow2Header(v4)).toThrow('qcow2 version 4 is not 2 or 3');
    const cut = header({ backing: 'base.raw' });
    expect(() => parseQcow2Header(cut.subarray(0, cut.length - 2))).toThrow('beyond the header area');
    const endless = header({ extensions: [[0x12345678, 'x']] }).subarray(0, 104 + 16);
    expect(() => parseQcow2Header(endless)).toThrow('run past');
  });
});

describe('hasProtocolPrefix', () => {
  it.each([
    ['nbd:127.0.0.1:10809', true],
    ['json:{"driver":"file"}', true],
    ['http://host/x', true],
    ['base.raw', false],
    ['/srv/a:b.raw', false],
    ['dir/x:y', false],
  ])('%s → %s', (name, expected) => {
    expect(hasProtocolPrefix(name)).toBe(expected);
  });
});
