// Test support: AMD-shaped SEV-SNP chains on fake keys (test/fixtures/snp-keys: RSA-4096 made once
// with OpenSSL, test-only, never trusted by anything but these tests) and reports the tests build
// and sign themselves. Owns: sensible defaults for every report field and the OpenSSL cross-checks.
import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PinnedArk } from '../../src/attestation/verify-snp.js';
import { buildChain, derToPem, type BuiltChain } from '../../src/sev/snp-cert-builder.js';
import {
  buildSignedReport,
  encodeTcb,
  signingKeyCode,
  tcbLayoutOf,
  type SnpProduct,
  type SnpReportFields,
  type TcbParts,
} from '../../src/sev/snp-report.js';

const KEY_DIR = new URL('../fixtures/snp-keys/', import.meta.url);
const keyCache = new Map<string, KeyObject>();
export function fixtureKey(name: 'ark' | 'ask' | 'asvk' | 'other-ark'): KeyObject {
  let k = keyCache.get(name);
  if (k === undefined) {
    k = createPrivateKey(readFileSync(new URL(`${name}.key`, KEY_DIR)));
    keyCache.set(name, k);
  }
  return k;
}

export const p384 = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;

export const CPUID: Readonly<Record<SnpProduct, { family: number; model: number; stepping: number }>> = {
  Milan: { family: 0x19, model: 0x01, stepping: 0x01 },
  Genoa: { family: 0x19, model: 0x11, stepping: 0x01 },
  Turin: { family: 0x1a, model: 0x02, stepping: 0x01 },
};

export const TCB: Readonly<Record<SnpProduct, TcbParts>> = {
  Milan: { bootloader: 3, tee: 0, snp: 8, microcode: 115 },
  Genoa: { bootloader: 7, tee: 0, snp: 14, microcode: 72 },
  Turin: { fmc: 1, bootloader: 1, tee: 1, snp: 1, microcode: 0x4c },
};

export const CHIP_ID = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 7 + 3) & 0xff));

export interface Case {
  readonly product: SnpProduct;
  readonly kind: 'vcek' | 'vlek';
  readonly version: 2 | 3 | 5;
}

/** A chain on the fixture keys with AMD's names; `over` changes any part of the spec. */
export function chainFor(c: Pick<Case, 'product' | 'kind'>, over: Partial<Parameters<typeof buildChain>[0]> = {}): BuiltChain {
  return buildChain({
    product: c.product,
    kind: c.kind,
    keys: { ark: fixtureKey('ark'), intermediate: fixtureKey(c.kind === 'vcek' ? 'ask' : 'asvk'), leaf: p384() },
    tcb: TCB[c.product],
    chipId: CHIP_ID,
    ...over,
  });
}

export function pinnedFor(chain: BuiltChain): PinnedArk[] {
  return [{ der: chain.ark, product: chain.product, source: 'owner' }];
}

/** Report fields for a case: a plausible guest (policy 0x30000, SMT allowed, no debug). */
export function fieldsFor(c: Case, over: Partial<SnpReportFields> = {}): SnpReportFields {
  const tcb = encodeTcb(TCB[c.product], tcbLayoutOf(c.product));
  return {
    version: c.version,
    guestSvn: 2,
    policy: 0x30000n,
    familyId: Buffer.alloc(16, 0x11),
    imageId: Buffer.alloc(16, 0x22),
    vmpl: 0,
    signatureAlgo: 1,
    currentTcb: tcb,
    platformInfo: 0x25n,
    authorKeyEn: false,
    maskChipKey: false,
    signingKeyCode: signingKeyCode(c.kind),
    reportData: Buffer.alloc(64, 0x5a),
    measurement: Buffer.alloc(48, 0x4d),
    hostData: Buffer.alloc(32, 0x48),
    idKeyDigest: Buffer.alloc(48, 0x49),
    authorKeyDigest: Buffer.alloc(48, 0),
    reportId: Buffer.alloc(32, 0x52),
    reportIdMa: Buffer.alloc(32, 0xff),
    reportedTcb: tcb,
    cpuid: c.version >= 3 ? CPUID[c.product] : null,
    chipId: c.kind === 'vcek' ? CHIP_ID : Buffer.alloc(64),
    committedTcb: tcb,
    currentVersion: { major: 1, minor: 55, build: 21 },
    committedVersion: { major: 1, minor: 55, build: 21 },
    launchTcb: tcb,
    launchMitVector: c.version >= 5 ? 0x3n : null,
    currentMitVector: c.version >= 5 ? 0x3n : null,
    ...over,
  };
}

export function signedReport(fields: SnpReportFields, chain: BuiltChain): Buffer {
  return buildSignedReport(fields, chain.leafKey);
}

// Section: OpenSSL, the independent check ------------------------------------------------------------

/** `openssl verify` of leaf ← intermediate ← ark (PSS params come from the certificates). */
export function opensslVerifyChain(chain: BuiltChain): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'sevsup-snp-ossl-'));
  try {
    writeFileSync(join(dir, 'ark.pem'), derToPem(chain.ark));
    writeFileSync(join(dir, 'mid.pem'), derToPem(chain.intermediate));
    writeFileSync(join(dir, 'leaf.pem'), derToPem(chain.leaf));
    execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ark.pem'), '-untrusted', join(dir, 'mid.pem'), join(dir, 'leaf.pem')], {
      stdio: 'pipe',
    });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `openssl dgst -sha384 -verify` of the report's signature. OpenSSL itself builds the DER
 * ECDSA-Sig-Value from R and S (read as big-endian hex from the little-endian fields), so this
 * shares no code with the verifier under test.
 */
export function opensslVerifySignature(report: Buffer, leafDer: Buffer): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'sevsup-snp-ossl-'));
  try {
    const be = (from: number): string =>
      `0x${Buffer.from(report.subarray(from, from + 72))
        .reverse()
        .toString('hex')}`;
    writeFileSync(join(dir, 'sig.cnf'), `asn1=SEQUENCE:sig\n[sig]\nr=INTEGER:${be(0x2a0)}\ns=INTEGER:${be(0x2e8)}\n`);
    execFileSync('openssl', ['asn1parse', '-genconf', join(dir, 'sig.cnf'), '-out', join(dir, 'sig.der'), '-noout'], { stdio: 'pipe' });
    writeFileSync(join(dir, 'body.bin'), report.subarray(0, 0x2a0));
    writeFileSync(join(dir, 'leaf.pem'), derToPem(leafDer));
    const pub = execFileSync('openssl', ['x509', '-in', join(dir, 'leaf.pem'), '-noout', '-pubkey'], { stdio: 'pipe' });
    writeFileSync(join(dir, 'pub.pem'), pub);
    execFileSync(
      'openssl',
      ['dgst', '-sha384', '-verify', join(dir, 'pub.pem'), '-signature', join(dir, 'sig.der'), join(dir, 'body.bin')],
      { stdio: 'pipe' },
    );
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Section: go-sev-guest, the independent full SNP verifier ------------------------------------------

/** The oracle binary (scripts/build-snp-oracle.sh), or null when it was not built here. */
export const SNP_ORACLE: string | null = (() => {
  const path = process.env['SNP_ORACLE'] ?? new URL('../../.cache/snporacle', import.meta.url).pathname;
  return existsSync(path) ? path : null;
})();

/**
 * go-sev-guest 0.15's verify.SnpAttestation + validate.SnpAttestation on the report with this
 * chain as the only trusted root (and, given, the expected measurement, host data, report data):
 * "OK" or its error text.
 */
export function oracleVerify(
  report: Buffer,
  chain: BuiltChain,
  expect?: { measurement: Buffer; hostData: Buffer; reportData: Buffer },
): string {
  if (SNP_ORACLE === null) throw new Error('no oracle');
  const dir = mkdtempSync(join(tmpdir(), 'sevsup-snp-oracle-'));
  try {
    writeFileSync(join(dir, 'report.bin'), report);
    writeFileSync(join(dir, 'ark.pem'), derToPem(chain.ark));
    writeFileSync(join(dir, 'mid.pem'), derToPem(chain.intermediate));
    writeFileSync(join(dir, 'leaf.pem'), derToPem(chain.leaf));
    const args = [join(dir, 'report.bin'), join(dir, 'ark.pem'), join(dir, 'mid.pem'), join(dir, 'leaf.pem')];
    if (expect !== undefined)
      args.push(expect.measurement.toString('hex'), expect.hostData.toString('hex'), expect.reportData.toString('hex'));
    const r = spawnSync(SNP_ORACLE, args, { env: { PRODUCT_LINE: chain.product }, encoding: 'utf8' });
    return r.stdout.trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The chain as snpguest lays it out (ark.pem, ask.pem, vcek.der) in `dir/certs`; returns that path. */
export function writeCertDir(dir: string, chain: BuiltChain): string {
  const certs = join(dir, 'certs');
  mkdirSync(certs, { recursive: true });
  writeFileSync(join(certs, 'ark.pem'), derToPem(chain.ark));
  writeFileSync(join(certs, 'ask.pem'), derToPem(chain.intermediate));
  writeFileSync(join(certs, 'vcek.der'), chain.leaf);
  return certs;
}

/** What the `sevsup verify --report` CLI tests share: a temp dir with a Genoa VCEK chain in it. */
export interface SnpCliFiles {
  readonly dir: string;
  readonly chain: BuiltChain;
  /** The chain as writeCertDir lays it out (--certs). */
  readonly certs: string;
  /** The chain's ARK as PEM (--ark). */
  readonly ark: string;
  /** Write `data` to `name` in the dir; returns its path. */
  file(name: string, data: Buffer | string): string;
  remove(): void;
}

/** A temp dir (`prefix`) with a Genoa VCEK chain, its cert dir and its ARK written for the CLI. */
export function snpCliFiles(prefix: string): SnpCliFiles {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const file = (name: string, data: Buffer | string): string => {
    const path = join(dir, name);
    writeFileSync(path, data);
    return path;
  };
  const chain = chainFor({ product: 'Genoa', kind: 'vcek' });
  return {
    dir,
    chain,
    certs: writeCertDir(dir, chain),
    ark: file('ark.pem', derToPem(chain.ark)),
    file,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
