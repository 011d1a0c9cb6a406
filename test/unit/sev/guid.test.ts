import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { guidAt, guidFromBytesLe, guidToBytesLe, isGuid } from '../../../src/sev/guid.js';

describe('GUID byte order', () => {
  it('matches Python uuid.UUID(...).bytes_le for known GUIDs', () => {
    // Reference values from /usr/bin/python3 -c 'import uuid; print(uuid.UUID(g).bytes_le.hex())'.
    expect(guidToBytesLe('96b582de-1fb2-45f7-baea-a366c55a082d').toString('hex')).toBe('de82b596b21ff745baeaa366c55a082d');
    expect(guidToBytesLe('9438d606-4f22-4cc9-b479-a793d411fd21').toString('hex')).toBe('06d63894224fc94cb479a793d411fd21');
  });

  it('round-trips any GUID and reads it at an offset', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.nat(8), (guid, pad) => {
        const bytes = Buffer.concat([Buffer.alloc(pad), guidToBytesLe(guid)]);
        expect(guidFromBytesLe(bytes, pad)).toBe(guid.toLowerCase());
        expect(guidAt(bytes, pad, guidToBytesLe(guid))).toBe(true);
      }),
    );
  });

  it('refuses malformed text and reads outside the buffer', () => {
    expect(isGuid('96b582de-1fb2-45f7-baea-a366c55a082')).toBe(false);
    expect(isGuid('96b582de1fb245f7baeaa366c55a082d')).toBe(false);
    expect(() => guidToBytesLe('luks-key')).toThrow(RangeError);
    expect(() => guidFromBytesLe(Buffer.alloc(15))).toThrow(RangeError);
    expect(guidAt(Buffer.alloc(15), 0, Buffer.alloc(16))).toBe(false);
    expect(guidAt(Buffer.alloc(32), -1, Buffer.alloc(16))).toBe(false);
  });
});
