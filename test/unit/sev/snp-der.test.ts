// The minimal DER reader/writer behind the SNP certificate code: strict DER only (no indefinite or
// non-minimal lengths, no trailing bytes), OIDs and INTEGERs both ways.
import { describe, expect, it } from 'vitest';
import { children, decodeOid, decodeSmallUint, DerError, integer, oid, readOnly, readTlv, seq, tlv } from '../../../src/sev/snp-der.js';

describe('snp-der', () => {
  it('round-trips OIDs, small INTEGERs and long lengths', () => {
    expect(decodeOid(readOnly(oid('1.3.6.1.4.1.3704.1.3.9')).value)).toBe('1.3.6.1.4.1.3704.1.3.9');
    expect(decodeOid(readOnly(oid('2.16.840.1.101.3.4.2.2')).value)).toBe('2.16.840.1.101.3.4.2.2');
    for (const n of [0, 1, 127, 128, 255, 256, 65535]) expect(decodeSmallUint(readOnly(integer(n)).value)).toBe(n);
    expect(integer(128).toString('hex')).toBe('02020080');
    const big = tlv(0x04, Buffer.alloc(300, 1));
    expect(big.subarray(0, 4).toString('hex')).toBe('0482012c');
    expect(readOnly(big).value.length).toBe(300);
    expect(children(readOnly(seq(integer(1), integer(2))).value).map((t) => decodeSmallUint(t.value))).toEqual([1, 2]);
  });

  it('refuses BER and malformed input', () => {
    expect(() => readTlv(Buffer.from('3080', 'hex'))).toThrow(DerError); // indefinite length
    expect(() => readTlv(Buffer.from('04810101', 'hex'))).toThrow(/non-minimal/); // long form for 1
    expect(() => readTlv(Buffer.from('040501', 'hex'))).toThrow(/truncated/);
    expect(() => readOnly(Buffer.from('0101ff00', 'hex'))).toThrow(/trailing/);
    expect(() => decodeSmallUint(Buffer.from('ff', 'hex'))).toThrow(DerError); // negative
    expect(() => readTlv(Buffer.from('1f8101', 'hex'))).toThrow(/multi-byte/);
  });
});
