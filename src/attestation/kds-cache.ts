// The host's and the owner's cache of AMD SEV-SNP certificates, keyed by product, chip and TCB, so
// that verification runs offline and AMD's key server is asked once per chip and TCB:
//
//   <dir>/<Product>/cert_chain.pem                    ASK then ARK (KDS vcek cert_chain, as served)
//   <dir>/<Product>/vlek_cert_chain.pem               ASVK then ARK
//   <dir>/<Product>/crl.der                           the product's CRL (KDS vcek crl)
//   <dir>/<Product>/vcek/<hwid-hex>/<tcb-hex16>.der   one VCEK per chip and REPORTED_TCB
//   <dir>/<Product>/vlek/<tcb-hex16>.pem              VLEKs imported for that product and TCB
//
// hwid is KDS's (the whole CHIP_ID; its first 8 bytes on Turin); tcb is REPORTED_TCB as 16 hex
// digits. Files are written atomically. Owns: that layout and its reads/writes.
// Must not: fetch (kds-fetch.ts), decide trust (a cached certificate is evidence like any other:
// verify-snp.ts still chains it to a pinned ARK), or delete anything it did not write.
import type { Dirent } from 'node:fs';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SupervisorError } from '../errors.js';
import { kdsHwid, splitPem, type KdsKeyKind } from '../sev/snp-certs.js';
import { SNP_PRODUCTS, type SnpProduct } from '../sev/snp-report.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { describeIoError, errnoOf } from '../util/io-error.js';

export interface VcekKey {
  readonly product: SnpProduct;
  readonly chipId: Buffer;
  readonly reportedTcb: bigint;
}

const tcbHex = (tcb: bigint): string => tcb.toString(16).padStart(16, '0');

export function chainPath(dir: string, product: SnpProduct, kind: KdsKeyKind = 'vcek'): string {
  return join(dir, product, kind === 'vcek' ? 'cert_chain.pem' : 'vlek_cert_chain.pem');
}
export function crlPath(dir: string, product: SnpProduct): string {
  return join(dir, product, 'crl.der');
}
export function vcekPath(dir: string, k: VcekKey): string {
  return join(dir, k.product, 'vcek', kdsHwid(k.product, k.chipId), `${tcbHex(k.reportedTcb)}.der`);
}
export function vlekPath(dir: string, product: SnpProduct, reportedTcb: bigint): string {
  return join(dir, product, 'vlek', `${tcbHex(reportedTcb)}.pem`);
}

/** A file's bytes, or null when it does not exist. @throws SUP_ERR_CERTS_CACHE on other errors. */
export async function readCached(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (error: unknown) {
    if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR') return null;
    throw new SupervisorError('SUP_ERR_CERTS_CACHE', `cannot read ${path}: ${describeIoError(error)}`, { cause: error });
  }
}

/** Write one cache file atomically (creating its directories). */
export async function writeCached(path: string, data: Buffer | string): Promise<void> {
  try {
    await mkdir(join(path, '..'), { recursive: true, mode: 0o755 });
    await writeFileAtomic(path, data, { overwrite: true, mode: 0o644 });
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_CERTS_CACHE', `cannot write ${path}: ${describeIoError(error)}`, { cause: error });
  }
}

export interface CachedChain {
  readonly ark: Buffer;
  readonly intermediate: Buffer;
}

/** The product's cert_chain (intermediate then ARK), or null. */
export async function readChain(dir: string, product: SnpProduct, kind: KdsKeyKind = 'vcek'): Promise<CachedChain | null> {
  const text = await readCached(chainPath(dir, product, kind));
  if (text === null) return null;
  const [intermediate, ark] = splitPem(text.toString('utf8'));
  if (intermediate === undefined || ark === undefined) {
    throw new SupervisorError(
      'SUP_ERR_CERTS_CACHE',
      `${chainPath(dir, product, kind)} does not hold two certificates (intermediate, then ARK)`,
    );
  }
  return { intermediate: Buffer.from(intermediate), ark: Buffer.from(ark) };
}

export interface CacheHit {
  readonly product: SnpProduct;
  readonly ark: Buffer;
  readonly intermediate: Buffer;
  readonly leaf: Buffer;
  readonly paths: readonly string[];
}

/**
 * Everything needed to verify a report from the cache: the leaf for (product, chip, TCB) and its
 * product's chain. `product` null tries each product (a v2 report does not name its line).
 */
export async function lookupReportCerts(
  dir: string,
  q: { product: SnpProduct | null; chipId: Buffer; reportedTcb: bigint; kind: KdsKeyKind },
): Promise<CacheHit | null> {
  for (const product of q.product === null ? SNP_PRODUCTS : [q.product]) {
    const leafPath =
      q.kind === 'vcek' ? vcekPath(dir, { product, chipId: q.chipId, reportedTcb: q.reportedTcb }) : vlekPath(dir, product, q.reportedTcb);
    const leaf = await readCached(leafPath);
    if (leaf === null) continue;
    const chain = await readChain(dir, product, q.kind);
    if (chain === null) continue;
    return { product, ...chain, leaf, paths: [leafPath, chainPath(dir, product, q.kind)] };
  }
  return null;
}

/** Every file in the cache (for `certs show --cache`), relative paths, sorted. */
export async function listCache(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (sub: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(join(dir, sub), { withFileTypes: true });
    } catch (error: unknown) {
      if (errnoOf(error) === 'ENOENT') return;
      throw new SupervisorError('SUP_ERR_CERTS_CACHE', `cannot list ${join(dir, sub)}: ${describeIoError(error)}`, { cause: error });
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      if (e.isDirectory()) await walk(join(sub, e.name));
      else out.push(join(sub, e.name));
    }
  };
  await walk('');
  return out.sort();
}
