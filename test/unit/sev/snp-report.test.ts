// SNP report layout, TCB layouts, AMD's pinned ARKs (checked with Node and OpenSSL), certificate
// extensions and PSS parameters, KDS URLs and the GHCB certificate table.
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AMD_ARK_PEM, AMD_ARK_SHA256 } from '../../../src/sev/snp-amd-roots.js';
import { amdPssAlgorithm } from '../../../src/sev/snp-cert-builder.js';
import {
  amdExtensions,
  CERT_TABLE_GUID,
  decodeCertTable,
  encodeCertTable,
  isAmdPss,
  kdsChainUrl,
  kdsVcekUrl,
  loadCert,
  shapeProblems,
} from '../../../src/sev/snp-certs.js';
import { explicit, integer, oid, readOnly, seq, tlv } from '../../../src/sev/snp-der.js';
import {
  decodeTcb,
  encodeSnpReport,
  encodeTcb,
  parseSnpReport,
  productFromCpuid,
  SNP_PRODUCTS,
  structureProblems,
  type SnpReportFields,
} from '../../../src/sev/snp-report.js';
import { chainFor, CHIP_ID, fieldsFor, TCB } from '../../support/snp-fixtures.js';

describe('AMD ARKs built in', () => {
  it.each(SNP_PRODUCTS)("%s: self-signed RSA-4096 PSS with AMD's subject and the recorded fingerprint", (product) => {
    const pem = AMD_ARK_PEM[product];
    const x = new X509Certificate(pem);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.subject.split('\n')).toEqual([
      'OU=Engineering',
      'C=US',
      'L=Santa Clara',
      'ST=CA',
      'O=Advanced Micro Devices',
      `CN=ARK-${product}`,
    ]);
    expect(x.subject).toBe(x.issuer);
    expect(createHash('sha256').update(x.raw).digest('hex')).toBe(AMD_ARK_SHA256[product]);
    expect(shapeProblems(loadCert('ark', Buffer.from(pem)))).toEqual([]);
    // OpenSSL, independently: the self-signature verifies with its PSS parameters.
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: pem }).toString();
    expect(text).toMatch(/Public-Key: \(4096 bit\)/);
    expect(text).toMatch(/Salt Length: 0x30/);
    const dir = mkdtempSync(join(tmpdir(), 'sevsup-ark-'));
    try {
      writeFileSync(join(dir, 'ark.pem'), pem);
      expect(execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ark.pem'), join(dir, 'ark.pem')]).toString()).toMatch(/: OK/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('report layout', () => {
  it.each([2, 3, 5] as const)('v%s round-trips every field', (version) => {
    const f: SnpReportFields = fieldsFor({ product: 'Genoa', kind: 'vcek', version });
    const r = parseSnpReport(encodeSnpReport(f));
    const { raw: _raw, signatureR: _r, signatureS: _s, ...fields } = r;
    expect(fields).toEqual(f);
    expect(structureProblems(r)).toEqual([]);
  });

  it('places fields at the documented offsets', () => {
    const b = encodeSnpReport(fieldsFor({ product: 'Turin', kind: 'vcek', version: 5 }, { policy: 0x30000n, vmpl: 2 }));
    expect(b.readUInt32LE(0)).toBe(5);
    expect(b.readBigUInt64LE(0x08)).toBe(0x30000n);
    expect(b.readUInt32LE(0x30)).toBe(2);
    expect(b.subarray(0x90, 0x90 + 48)).toEqual(Buffer.alloc(48, 0x4d));
    expect(b.subarray(0xc0, 0xc0 + 32)).toEqual(Buffer.alloc(32, 0x48));
    expect(b.subarray(0x1a0, 0x1e0)).toEqual(CHIP_ID);
    expect(b[0x188]).toBe(0x1a);
    expect(b.readBigUInt64LE(0x1f8)).toBe(3n);
  });

  it('v2 has no CPUID and its 0x188.. bytes must be zero', () => {
    const b = encodeSnpReport(fieldsFor({ product: 'Milan', kind: 'vcek', version: 2 }));
    expect(parseSnpReport(b).cpuid).toBeNull();
    b[0x188] = 0x19;
    expect(structureProblems(parseSnpReport(b))).toEqual(['reserved byte 0x188 is not zero']);
    const v3 = encodeSnpReport(fieldsFor({ product: 'Milan', kind: 'vcek', version: 3 }));
    v3[0x1f8] = 1; // a v5 field in a v3 report
    expect(structureProblems(parseSnpReport(v3))).toEqual(['reserved byte 0x1f8 is not zero']);
  });

  it('refuses a report of the wrong size', () => {
    expect(() => parseSnpReport(Buffer.alloc(0x4a0 - 1))).toThrow(/0x4a0/);
  });
});

describe('TCB layouts', () => {
  it('Milan/Genoa: bytes 0, 1, 6, 7; Turin: 0, 1, 2, 3, 7', () => {
    expect(encodeTcb({ bootloader: 1, tee: 2, snp: 3, microcode: 4 }, 'milan-genoa')).toBe(0x0403000000000201n);
    expect(encodeTcb({ fmc: 5, bootloader: 1, tee: 2, snp: 3, microcode: 4 }, 'turin')).toBe(0x0400000003020105n);
    expect(decodeTcb(0x0400000003020105n, 'turin')).toEqual({ fmc: 5, bootloader: 1, tee: 2, snp: 3, microcode: 4 });
  });
  it('CPUID family/model pick the product', () => {
    expect(productFromCpuid({ family: 0x19, model: 0x01 })).toBe('Milan');
    expect(productFromCpuid({ family: 0x19, model: 0x11 })).toBe('Genoa');
    expect(productFromCpuid({ family: 0x1a, model: 0x02 })).toBe('Turin');
    expect(productFromCpuid({ family: 0x17, model: 0x31 })).toBeNull();
  });
});

describe('certificates', () => {
  it('reads the AMD extensions (hwID raw, Turin fmcSPL, VLEK CSP id)', () => {
    const turin = amdExtensions(loadCert('vcek', chainFor({ product: 'Turin', kind: 'vcek' }).leaf).parts);
    expect(turin).toMatchObject({ productName: 'Turin-B0', fmcSpl: 1, blSpl: 1, snpSpl: 1, ucodeSpl: 0x4c, cspId: null });
    expect(turin.hwId).toEqual(CHIP_ID.subarray(0, 8));
    const vlek = amdExtensions(loadCert('vlek', chainFor({ product: 'Genoa', kind: 'vlek' }).leaf).parts);
    expect(vlek).toMatchObject({ productName: 'Genoa', hwId: null, snpSpl: TCB.Genoa.snp });
    expect(vlek.cspId).not.toBeNull();
  });

  it('accepts only RSASSA-PSS SHA-384 / MGF1 SHA-384 / salt 48', () => {
    expect(isAmdPss(readOnly(amdPssAlgorithm()))).toBe(true);
    const sha384 = seq(oid('2.16.840.1.101.3.4.2.2'), tlv(5));
    const mgf = explicit(1, seq(oid('1.2.840.113549.1.1.8'), sha384));
    const pss = (...params: Buffer[]): Buffer => seq(oid('1.2.840.113549.1.1.10'), seq(...params));
    expect(isAmdPss(readOnly(pss(explicit(0, sha384), mgf, explicit(2, integer(48)))))).toBe(true); // trailer by default
    expect(isAmdPss(readOnly(pss(explicit(0, sha384), mgf, explicit(2, integer(32)))))).toBe(false);
    expect(isAmdPss(readOnly(pss(explicit(0, seq(oid('2.16.840.1.101.3.4.2.1'), tlv(5))), mgf, explicit(2, integer(48)))))).toBe(false);
    expect(isAmdPss(readOnly(seq(oid('1.2.840.113549.1.1.12'), tlv(5))))).toBe(false);
  });
});

describe('AMD key server URLs', () => {
  it('builds the VCEK URL from CHIP_ID and REPORTED_TCB (Turin: 8-byte hwid and fmcSPL)', () => {
    const milan = encodeTcb(TCB.Milan, 'milan-genoa');
    expect(kdsVcekUrl('Milan', CHIP_ID, milan)).toBe(
      `https://kdsintf.amd.com/vcek/v1/Milan/${CHIP_ID.toString('hex')}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`,
    );
    const turin = encodeTcb(TCB.Turin, 'turin');
    expect(kdsVcekUrl('Turin', CHIP_ID, turin)).toBe(
      `https://kdsintf.amd.com/vcek/v1/Turin/${CHIP_ID.subarray(0, 8).toString('hex')}?fmcSPL=1&blSPL=1&teeSPL=1&snpSPL=1&ucodeSPL=76`,
    );
    expect(kdsChainUrl('Genoa', 'vlek')).toBe('https://kdsintf.amd.com/vlek/v1/Genoa/cert_chain');
  });
});

describe('GHCB certificate table', () => {
  it('round-trips, ends with a zero entry and is page-aligned', () => {
    const entries = [
      { guid: CERT_TABLE_GUID.ark, data: Buffer.from('ark') },
      { guid: CERT_TABLE_GUID.ask, data: Buffer.from('ask!') },
      { guid: CERT_TABLE_GUID.vcek, data: Buffer.from('vcek') },
    ];
    const t = encodeCertTable(entries);
    expect(t.length).toBe(4096);
    expect(t.subarray(0, 16).toString('hex')).toBe('c0b406a4a80349529743' + '3fb6014cd0ae');
    expect(t.readUInt32LE(16)).toBe(96);
    expect(t.subarray(72, 96)).toEqual(Buffer.alloc(24));
    expect(decodeCertTable(t)).toEqual(entries);
  });
  it('refuses entries outside the table and a missing terminator', () => {
    const t = encodeCertTable([{ guid: CERT_TABLE_GUID.vcek, data: Buffer.from('x') }], 0);
    t.writeUInt32LE(1000, 20);
    expect(() => decodeCertTable(t)).toThrow(/outside/);
    expect(() => decodeCertTable(Buffer.alloc(10, 1))).toThrow(/terminator/);
  });
});
