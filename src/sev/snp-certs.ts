// AMD SEV-SNP endorsement certificates on bytes: the AMD extensions of a VCEK/VLEK (OIDs
// 1.3.6.1.4.1.3704.1.*), the shape AMD gives ARK, AS(V)K and V(C|L)EK (RSASSA-PSS SHA-384 salt 48,
// RSA-4096 CA keys, a P-384 leaf), one "issued by" step of the chain, the key server's URL formats,
// and the GHCB extended-guest-request certificate table. Facts: shared/docs/snp-facts.md §2.4.
// Owns: those formats. Pure: no I/O (Node's X509Certificate parses, crypto verifies).
// Must not: choose a trust anchor or decide a report's validity (attestation/verify-snp.ts does).
import { X509Certificate, type KeyObject } from 'node:crypto';
import { children, decodeOid, decodeSmallUint, DerError, readOnly, TAG, type Tlv } from './snp-der.js';
import { decodeTcb, encodeTcb, type SnpProduct, type TcbLayout, type TcbParts } from './snp-report.js';

export const AMD_OID = {
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSpl: '1.3.6.1.4.1.3704.1.3.1',
  teeSpl: '1.3.6.1.4.1.3704.1.3.2',
  snpSpl: '1.3.6.1.4.1.3704.1.3.3',
  ucodeSpl: '1.3.6.1.4.1.3704.1.3.8',
  fmcSpl: '1.3.6.1.4.1.3704.1.3.9',
  hwId: '1.3.6.1.4.1.3704.1.4',
  cspId: '1.3.6.1.4.1.3704.1.5',
} as const;

export const OID_RSASSA_PSS = '1.2.840.113549.1.1.10';
const OID_SHA384 = '2.16.840.1.101.3.4.2.2';
const OID_MGF1 = '1.2.840.113549.1.1.8';
export const PSS_SALT = 48;

/** The parts of a certificate Node's X509Certificate does not expose. */
export interface CertParts {
  readonly tbs: Buffer;
  /** The outer signatureAlgorithm (AlgorithmIdentifier) and the one inside the TBS. */
  readonly signatureAlgorithm: Tlv;
  readonly tbsSignatureAlgorithm: Tlv;
  readonly version: number;
  /** extnID → extnValue (the OCTET STRING's contents). */
  readonly extensions: ReadonlyMap<string, Buffer>;
}

/** @throws DerError for a certificate that is not the DER X.509 v1–v3 layout. */
export function certParts(der: Buffer): CertParts {
  const outer = children(readOnly(der).value);
  const [tbsTlv, sigAlg] = outer;
  if (outer.length !== 3 || tbsTlv === undefined || sigAlg === undefined) throw new DerError('a certificate has three parts');
  const tbs = children(tbsTlv.value);
  let i = 0;
  let version = 1;
  if (tbs[0]?.tag === 0xa0) {
    version = decodeSmallUint(readOnly(tbs[0].value).value) + 1;
    i = 1;
  }
  const tbsSigAlg = tbs[i + 1];
  if (tbsSigAlg === undefined) throw new DerError('truncated TBSCertificate');
  const extensions = new Map<string, Buffer>();
  const extWrap = tbs.find((t) => t.tag === 0xa3);
  if (extWrap !== undefined) {
    for (const ext of children(readOnly(extWrap.value).value)) {
      const parts = children(ext.value);
      const id = parts[0];
      const value = parts[parts.length - 1];
      if (id?.tag !== TAG.OID || value?.tag !== TAG.OCTET_STRING) throw new DerError('malformed extension');
      const name = decodeOid(id.value);
      if (extensions.has(name)) throw new DerError(`duplicate extension ${name}`);
      extensions.set(name, value.value);
    }
  }
  return { tbs: tbsTlv.raw, signatureAlgorithm: sigAlg, tbsSignatureAlgorithm: tbsSigAlg, version, extensions };
}

/**
 * True for RSASSA-PSS with SHA-384, MGF1-SHA-384, salt 48 and trailer 1 (explicit as AMD writes
 * it, or omitted as its DEFAULT). Anything else, e.g. salt 32 or SHA-256, is not AMD's shape.
 */
export function isAmdPss(alg: Tlv): boolean {
  try {
    const [id, params] = children(alg.value);
    if (id === undefined || decodeOid(id.value) !== OID_RSASSA_PSS || params?.tag !== TAG.SEQUENCE) return false;
    let hash = '';
    let mgf = '';
    let mgfHash = '';
    let salt = 20;
    let trailer = 1;
    for (const p of children(params.value)) {
      const inner = readOnly(p.value);
      if (p.tag === 0xa0) hash = decodeOid(children(inner.value)[0]?.value ?? Buffer.alloc(0));
      else if (p.tag === 0xa1) {
        const [m, h] = children(inner.value);
        mgf = decodeOid(m?.value ?? Buffer.alloc(0));
        mgfHash = decodeOid(children(h?.value ?? Buffer.alloc(0))[0]?.value ?? Buffer.alloc(0));
      } else if (p.tag === 0xa2) salt = decodeSmallUint(inner.value);
      else if (p.tag === 0xa3) trailer = decodeSmallUint(inner.value);
      else return false;
    }
    return hash === OID_SHA384 && mgf === OID_MGF1 && mgfHash === OID_SHA384 && salt === PSS_SALT && trailer === 1;
  } catch (error: unknown) {
    if (error instanceof DerError) return false;
    throw error;
  }
}

// Section: AMD extensions -------------------------------------------------------------------------

export interface AmdExtensions {
  readonly structVersion: number | null;
  readonly productName: string | null;
  readonly blSpl: number | null;
  readonly teeSpl: number | null;
  readonly snpSpl: number | null;
  readonly ucodeSpl: number | null;
  /** Turin only. */
  readonly fmcSpl: number | null;
  /** Raw bytes, no OCTET STRING tag (64 bytes; 8 on Turin). VCEK only. */
  readonly hwId: Buffer | null;
  /** VLEK only. */
  readonly cspId: string | null;
}

/**
 * Decode the AMD extensions; absent ones are null. An extension that is present but malformed
 * (an SPL that is not a DER INTEGER, a product name that is not an IA5String) throws DerError.
 */
export function amdExtensions(parts: Pick<CertParts, 'extensions'>): AmdExtensions {
  const get = (oid: string): Buffer | null => parts.extensions.get(oid) ?? null;
  const int = (oid: string): number | null => {
    const v = get(oid);
    if (v === null) return null;
    const t = readOnly(v);
    if (t.tag !== TAG.INTEGER) throw new DerError(`extension ${oid} is not an INTEGER`);
    return decodeSmallUint(t.value);
  };
  const str = (oid: string): string | null => {
    const v = get(oid);
    if (v === null) return null;
    const t = readOnly(v);
    if (t.tag !== TAG.IA5 && t.tag !== TAG.UTF8) throw new DerError(`extension ${oid} is not an IA5String`);
    return t.value.toString('latin1');
  };
  const hw = get(AMD_OID.hwId);
  return {
    structVersion: int(AMD_OID.structVersion),
    productName: str(AMD_OID.productName),
    blSpl: int(AMD_OID.blSpl),
    teeSpl: int(AMD_OID.teeSpl),
    snpSpl: int(AMD_OID.snpSpl),
    ucodeSpl: int(AMD_OID.ucodeSpl),
    fmcSpl: int(AMD_OID.fmcSpl),
    hwId: hw === null ? null : Buffer.from(hw),
    cspId: str(AMD_OID.cspId),
  };
}

/** The TCB the certificate endorses, in `layout`; null when an SPL the layout needs is missing. */
export function certTcb(e: AmdExtensions, layout: TcbLayout): TcbParts | null {
  if (e.blSpl === null || e.teeSpl === null || e.snpSpl === null || e.ucodeSpl === null) return null;
  const base = { bootloader: e.blSpl, tee: e.teeSpl, snp: e.snpSpl, microcode: e.ucodeSpl };
  if (layout !== 'turin') return base;
  return e.fmcSpl === null ? null : { ...base, fmc: e.fmcSpl };
}

/** The raw TCB_VERSION the certificate endorses (for comparing with REPORTED_TCB). */
export function certTcbRaw(e: AmdExtensions, layout: TcbLayout): bigint | null {
  const t = certTcb(e, layout);
  return t === null ? null : encodeTcb(t, layout);
}

/** "Milan-B0" → Milan; VLEKs carry the bare line name. Null for an unknown line. */
export function productOfName(name: string | null): SnpProduct | null {
  const line = name?.split('-')[0];
  return line === 'Milan' || line === 'Genoa' || line === 'Turin' ? line : null;
}

// Section: certificate shapes and one chain step -----------------------------------------------

export type CertRole = 'ark' | 'ask' | 'asvk' | 'vcek' | 'vlek';

export interface LoadedCert {
  readonly role: CertRole;
  readonly x509: X509Certificate;
  readonly parts: CertParts;
}

/**
 * Parse a PEM or DER certificate.
 * @throws DerError / Error (Node's) for anything that is not one certificate.
 */
export function loadCert(role: CertRole, data: Buffer): LoadedCert {
  const x509 = new X509Certificate(data);
  return { role, x509, parts: certParts(x509.raw) };
}

/** What differs from AMD's shape for the role, one line each (empty: AMD-shaped). */
export function shapeProblems(c: LoadedCert): string[] {
  const out: string[] = [];
  const name = c.role.toUpperCase();
  if (c.parts.version !== 3) out.push(`${name} is an X.509 v${c.parts.version} certificate, not v3`);
  if (!isAmdPss(c.parts.signatureAlgorithm) || !c.parts.signatureAlgorithm.raw.equals(c.parts.tbsSignatureAlgorithm.raw)) {
    out.push(`${name} is not signed with RSASSA-PSS SHA-384, MGF1 SHA-384, salt 48`);
  }
  const key = c.x509.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  if (c.role === 'vcek' || c.role === 'vlek') {
    if (key.asymmetricKeyType !== 'ec' || details.namedCurve !== 'secp384r1') out.push(`${name} key is not ECDSA P-384`);
  } else {
    if (key.asymmetricKeyType !== 'rsa' || details.modulusLength !== 4096) out.push(`${name} key is not RSA-4096`);
    if (!c.x509.ca) out.push(`${name} is not a CA certificate`);
  }
  return out;
}

/** True when `issuer` issued and signed `child` (names chain and the signature verifies). */
export function issuedBy(child: LoadedCert, issuer: LoadedCert): boolean {
  if (!child.x509.checkIssued(issuer.x509)) return false;
  try {
    return child.x509.verify(issuer.x509.publicKey);
  } catch {
    return false;
  }
}

/** The certificate's validity window contains `at`. */
export function validAt(c: LoadedCert, at: Date): boolean {
  return new Date(c.x509.validFrom) <= at && at <= new Date(c.x509.validTo);
}

export function publicKeyOf(c: LoadedCert): KeyObject {
  return c.x509.publicKey;
}

// Section: AMD Key Distribution Service URLs ------------------------------------------------------

export const KDS_BASE = 'https://kdsintf.amd.com';

export type KdsKeyKind = 'vcek' | 'vlek';

/** `…/vcek/v1/{product}/cert_chain`: PEM, ASK then ARK (ASVK then ARK for vlek). */
export function kdsChainUrl(product: SnpProduct, kind: KdsKeyKind = 'vcek', base = KDS_BASE): string {
  return `${base}/${kind}/v1/${product}/cert_chain`;
}

export function kdsCrlUrl(product: SnpProduct, kind: KdsKeyKind = 'vcek', base = KDS_BASE): string {
  return `${base}/${kind}/v1/${product}/crl`;
}

/** The hwid KDS wants: the whole CHIP_ID, or its first 8 bytes on Turin. */
export function kdsHwid(product: SnpProduct, chipId: Buffer): string {
  return (product === 'Turin' ? chipId.subarray(0, 8) : chipId).toString('hex');
}

/** `…/vcek/v1/{product}/{hwid}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=` (Turin adds fmcSPL first). */
export function kdsVcekUrl(product: SnpProduct, chipId: Buffer, reportedTcb: bigint, base = KDS_BASE): string {
  const t = decodeTcb(reportedTcb, product === 'Turin' ? 'turin' : 'milan-genoa');
  const fmc = product === 'Turin' ? `fmcSPL=${t.fmc ?? 0}&` : '';
  return `${base}/vcek/v1/${product}/${kdsHwid(product, chipId)}?${fmc}blSPL=${t.bootloader}&teeSPL=${t.tee}&snpSPL=${t.snp}&ucodeSPL=${t.microcode}`;
}

/** Split a PEM bundle into its certificates' PEM texts, in order. */
export function splitPem(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((m) => `${m[0]}\n`);
}

// Section: GHCB extended guest request certificate table ------------------------------------------

/**
 * GUIDs of the table's entries (GHCB spec; Linux sev-guest, virtee/sev CertType). An ASVK travels
 * under the ASK GUID: the guest tells them apart by the leaf (VCEK or VLEK) beside it.
 */
export const CERT_TABLE_GUID = {
  ark: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
  ask: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  vcek: '63da758d-e664-4564-adc5-f4b93be8accd',
  vlek: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
  crl: '92f81bc3-5811-4d3d-97ff-d19f88dc67ea',
} as const;

export interface CertTableEntry {
  readonly guid: string;
  readonly data: Buffer;
}

const ENTRY = 24;

/** GUID text ↔ the 16 bytes in RFC 4122 order, as libuuid, go-sev-guest and virtee/sev write them. */
function guidBytes(guid: string): Buffer {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(guid)) throw new RangeError(`not a GUID: ${guid}`);
  return Buffer.from(guid.replaceAll('-', ''), 'hex');
}
function guidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The table a VMM hands the guest with an extended report: entries {GUID[16], u32 offset,
 * u32 length} (offsets from the table's start), an all-zero terminator entry, then the
 * certificates (DER), each in turn. Padded with zeros to `pageAlign` (4096: the guest passes pages).
 */
export function encodeCertTable(entries: readonly CertTableEntry[], pageAlign = 4096): Buffer {
  const header = Buffer.alloc(ENTRY * (entries.length + 1));
  let offset = header.length;
  entries.forEach((e, i) => {
    guidBytes(e.guid).copy(header, i * ENTRY);
    header.writeUInt32LE(offset, i * ENTRY + 16);
    header.writeUInt32LE(e.data.length, i * ENTRY + 20);
    offset += e.data.length;
  });
  const body = Buffer.concat([header, ...entries.map((e) => e.data)]);
  const padded = pageAlign > 0 ? Math.ceil(body.length / pageAlign) * pageAlign : body.length;
  return Buffer.concat([body, Buffer.alloc(padded - body.length)]);
}

/** @throws RangeError for a table whose entries point outside it or that has no terminator. */
export function decodeCertTable(table: Buffer): CertTableEntry[] {
  const out: CertTableEntry[] = [];
  for (let at = 0; ; at += ENTRY) {
    if (at + ENTRY > table.length) throw new RangeError('certificate table has no terminator entry');
    const guid = table.subarray(at, at + 16);
    const offset = table.readUInt32LE(at + 16);
    const length = table.readUInt32LE(at + 20);
    if (guid.every((b) => b === 0) && offset === 0 && length === 0) return out;
    if (offset + length > table.length || offset < at + ENTRY)
      throw new RangeError(`certificate table entry ${out.length} points outside the table`);
    out.push({ guid: guidText(guid), data: Buffer.from(table.subarray(offset, offset + length)) });
  }
}
