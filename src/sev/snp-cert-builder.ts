// Build AMD-shaped SEV-SNP certificate chains: ARK (self-signed) → ASK → VCEK, or ARK → ASVK → VLEK,
// RSASSA-PSS SHA-384 salt 48 with the AMD extensions on the leaf. The simulated platform uses it
// with every subject labelled SIMULATED; tests use it with AMD's own names on fake keys (so the
// verifier is shown to pin keys, not names). Owns: TBSCertificate assembly. Pure: no I/O.
// Must not: be used to make anything a verifier trusts by default (the ARKs it makes are never
// the pinned AMD roots), or export private keys anywhere but to its caller.
import { constants, createHash, createPublicKey, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { AMD_OID, OID_RSASSA_PSS, PSS_SALT, type CertRole } from './snp-certs.js';
import { bitString, children, explicit, ia5, integer, octets, oid, readOnly, seq, time, tlv, utf8, TAG } from './snp-der.js';
import type { SnpProduct, TcbParts } from './snp-report.js';

const OID_SHA384 = '2.16.840.1.101.3.4.2.2';
const OID_MGF1 = '1.2.840.113549.1.1.8';

/** AlgorithmIdentifier for RSASSA-PSS as AMD writes it (trailerField explicit). */
export function amdPssAlgorithm(): Buffer {
  const sha384 = seq(oid(OID_SHA384), tlv(TAG.NULL));
  return seq(
    oid(OID_RSASSA_PSS),
    seq(explicit(0, sha384), explicit(1, seq(oid(OID_MGF1), sha384)), explicit(2, integer(PSS_SALT)), explicit(3, integer(1))),
  );
}

/** A distinguished name in AMD's attribute order: OU, C, L, ST, O, CN. */
export interface AmdName {
  readonly ou: string;
  readonly c: string;
  readonly l: string;
  readonly st: string;
  readonly o: string;
  readonly cn: string;
}

function encodeName(n: AmdName): Buffer {
  const rdn = (id: string, value: Buffer): Buffer => tlv(TAG.SET, seq(oid(id), value));
  return seq(
    rdn('2.5.4.11', utf8(n.ou)),
    rdn('2.5.4.6', tlv(TAG.PRINTABLE, Buffer.from(n.c))),
    rdn('2.5.4.7', utf8(n.l)),
    rdn('2.5.4.8', utf8(n.st)),
    rdn('2.5.4.10', utf8(n.o)),
    rdn('2.5.4.3', utf8(n.cn)),
  );
}

export interface CertSpec {
  readonly serial: bigint | number;
  readonly issuer: AmdName;
  readonly subject: AmdName;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKey: KeyObject;
  /** The issuer's RSA private key. */
  readonly signingKey: KeyObject;
  /** CA certificates get basicConstraints and keyUsage (certSign; plus cRLSign on a root). */
  readonly ca?: { readonly pathLen?: number; readonly crlSign: boolean };
  /** The issuer's public key, for the authority key identifier of a non-root CA (as AMD's ASK has). */
  readonly issuerPublicKey?: KeyObject;
  /** Extra extensions: [OID, DER value] (put in the OCTET STRING as given). */
  readonly extensions?: readonly (readonly [string, Buffer])[];
}

/** DER of one certificate. */
export function buildCertificate(s: CertSpec): Buffer {
  const alg = amdPssAlgorithm();
  const spki = (k: KeyObject): Buffer => (k.type === 'public' ? k : createPublicKey(k)).export({ type: 'spki', format: 'der' });
  const exts: Buffer[] = [];
  if (s.ca !== undefined) {
    exts.push(seq(oid('2.5.29.14'), octets(octets(keyId(spki(s.publicKey))))));
    if (s.issuerPublicKey !== undefined) exts.push(seq(oid('2.5.29.35'), octets(seq(tlv(0x80, keyId(spki(s.issuerPublicKey)))))));
    const bc =
      s.ca.pathLen === undefined ? seq(tlv(0x01, Buffer.from([0xff]))) : seq(tlv(0x01, Buffer.from([0xff])), integer(s.ca.pathLen));
    exts.push(seq(oid('2.5.29.15'), tlv(0x01, Buffer.from([0xff])), octets(keyUsage(s.ca.crlSign))));
    exts.push(seq(oid('2.5.29.19'), tlv(0x01, Buffer.from([0xff])), octets(bc)));
  }
  for (const [id, value] of s.extensions ?? []) exts.push(seq(oid(id), octets(value)));
  const tbs = seq(
    explicit(0, integer(2)),
    integer(s.serial),
    alg,
    encodeName(s.issuer),
    seq(time(s.notBefore), time(s.notAfter)),
    encodeName(s.subject),
    spki(s.publicKey),
    ...(exts.length > 0 ? [explicit(3, seq(...exts))] : []),
  );
  const signature = cryptoSign('sha384', tbs, { key: s.signingKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT });
  return seq(tbs, alg, bitString(signature));
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
function keyId(spkiDer: Buffer): Buffer {
  const bits = children(readOnly(spkiDer).value)[1]?.value ?? Buffer.alloc(1);
  return createHash('sha1').update(bits.subarray(1)).digest();
}

/** keyUsage: keyCertSign (bit 5), plus cRLSign (bit 6) on a root; one unused bit, as AMD's. */
function keyUsage(crlSign: boolean): Buffer {
  return tlv(TAG.BIT_STRING, Buffer.from([0x01, crlSign ? 0x06 : 0x04]));
}

/** The AMD extensions of a VCEK/VLEK for a TCB (Turin: with fmcSPL) and hwID or CSP id. */
export function amdLeafExtensions(o: { productName: string; tcb: TcbParts; hwId?: Buffer; cspId?: string }): [string, Buffer][] {
  const out: [string, Buffer][] = [
    [AMD_OID.structVersion, integer(1)],
    [AMD_OID.productName, ia5(o.productName)],
    [AMD_OID.blSpl, integer(o.tcb.bootloader)],
    [AMD_OID.teeSpl, integer(o.tcb.tee)],
    [AMD_OID.snpSpl, integer(o.tcb.snp)],
    [`${AMD_OID.blSpl.slice(0, -1)}4`, integer(0)],
    [`${AMD_OID.blSpl.slice(0, -1)}5`, integer(0)],
    [`${AMD_OID.blSpl.slice(0, -1)}6`, integer(0)],
    [`${AMD_OID.blSpl.slice(0, -1)}7`, integer(0)],
    [AMD_OID.ucodeSpl, integer(o.tcb.microcode)],
  ];
  if (o.tcb.fmc !== undefined) out.push([AMD_OID.fmcSpl, integer(o.tcb.fmc)]);
  if (o.hwId !== undefined) out.push([AMD_OID.hwId, Buffer.from(o.hwId)]); // raw bytes, no tag (AMD's way)
  if (o.cspId !== undefined) out.push([AMD_OID.cspId, ia5(o.cspId)]);
  return out;
}

// Section: whole chains ---------------------------------------------------------------------------

export interface ChainKeys {
  /** RSA-4096 private keys of the root and the intermediate. */
  readonly ark: KeyObject;
  readonly intermediate: KeyObject;
  /** P-384 private key of the leaf (VCEK or VLEK). */
  readonly leaf: KeyObject;
}

export interface BuiltChain {
  readonly product: SnpProduct;
  readonly kind: 'vcek' | 'vlek';
  /** DER of each certificate. */
  readonly ark: Buffer;
  readonly intermediate: Buffer;
  readonly leaf: Buffer;
  readonly leafKey: KeyObject;
  /** The file names snpguest uses: ark.pem, ask.pem or asvk.pem, vcek.pem or vlek.pem. */
  readonly roles: { readonly intermediate: CertRole; readonly leaf: CertRole };
}

export interface ChainSpec {
  readonly product: SnpProduct;
  readonly kind: 'vcek' | 'vlek';
  readonly keys: ChainKeys;
  readonly tcb: TcbParts;
  /** CHIP_ID (VCEK only): 64 bytes; Turin VCEKs carry its first 8. */
  readonly chipId?: Buffer;
  /** Prefix put before every CN and O, e.g. "SIMULATED"; empty gives AMD's own names. */
  readonly label?: string;
  readonly productName?: string;
  readonly cspId?: string;
  readonly now?: Date;
}

function amdName(cn: string, label: string): AmdName {
  const pre = label === '' ? '' : `${label} `;
  return { ou: 'Engineering', c: 'US', l: 'Santa Clara', st: 'CA', o: `${pre}Advanced Micro Devices`, cn: `${pre}${cn}` };
}

/** An ARK → AS(V)K → V(C|L)EK chain with AMD's serial numbers, names (labelled) and extensions. */
export function buildChain(c: ChainSpec): BuiltChain {
  const label = c.label ?? '';
  const now = c.now ?? new Date();
  const years = (n: number): Date => new Date(now.getTime() + n * 365 * 86_400_000);
  const from = new Date(now.getTime() - 86_400_000);
  const gen = { Milan: 1, Genoa: 2, Turin: 3 }[c.product];
  const arkName = amdName(`ARK-${c.product}`, label);
  const midName = amdName(c.kind === 'vcek' ? `SEV-${c.product}` : `SEV-VLEK-${c.product}`, label);
  const leafName = amdName(c.kind === 'vcek' ? 'SEV-VCEK' : 'SEV-VLEK', label);
  const pub = (k: KeyObject): KeyObject => createPublicKey(k);
  const ark = buildCertificate({
    serial: gen * 0x10000,
    issuer: arkName,
    subject: arkName,
    notBefore: from,
    notAfter: years(25),
    publicKey: pub(c.keys.ark),
    signingKey: c.keys.ark,
    ca: { crlSign: true },
  });
  const intermediate = buildCertificate({
    serial: gen * 0x10000 + (c.kind === 'vcek' ? 1 : 0x101),
    issuer: arkName,
    subject: midName,
    notBefore: from,
    notAfter: years(25),
    publicKey: pub(c.keys.intermediate),
    signingKey: c.keys.ark,
    issuerPublicKey: pub(c.keys.ark),
    ca: { pathLen: 0, crlSign: false },
  });
  const productName = c.productName ?? (c.kind === 'vcek' ? `${c.product}-B0` : c.product);
  const hwId = c.kind === 'vcek' && c.chipId !== undefined ? (c.product === 'Turin' ? c.chipId.subarray(0, 8) : c.chipId) : undefined;
  const leaf = buildCertificate({
    serial: 0,
    issuer: midName,
    subject: leafName,
    notBefore: from,
    notAfter: years(7),
    publicKey: pub(c.keys.leaf),
    signingKey: c.keys.intermediate,
    extensions: amdLeafExtensions({
      productName,
      tcb: c.tcb,
      ...(hwId === undefined ? {} : { hwId }),
      ...(c.kind === 'vlek' ? { cspId: c.cspId ?? `${label === '' ? '' : `${label} `}csp` } : {}),
    }),
  });
  return {
    product: c.product,
    kind: c.kind,
    ark,
    intermediate,
    leaf,
    leafKey: c.keys.leaf,
    roles: { intermediate: c.kind === 'vcek' ? 'ask' : 'asvk', leaf: c.kind },
  };
}

/** Fresh keys: two RSA-4096 (seconds each on a busy machine) and one P-384. */
export function generateChainKeys(): ChainKeys {
  const rsa = (): KeyObject => generateKeyPairSync('rsa', { modulusLength: 4096 }).privateKey;
  return { ark: rsa(), intermediate: rsa(), leaf: generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey };
}

/**
 * The simulated platform's chain (made once, at install time): fresh keys, every subject's CN and
 * O prefixed with SIMULATED, so no one can mistake it for AMD's; AMD's pinned ARKs never verify it.
 */
export function buildSimulatedChain(o: { product: SnpProduct; tcb: TcbParts; chipId: Buffer; keys?: ChainKeys; now?: Date }): BuiltChain {
  return buildChain({
    product: o.product,
    kind: 'vcek',
    keys: o.keys ?? generateChainKeys(),
    tcb: o.tcb,
    chipId: o.chipId,
    label: 'SIMULATED',
    ...(o.now === undefined ? {} : { now: o.now }),
  });
}

export function derToPem(der: Buffer): string {
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}
