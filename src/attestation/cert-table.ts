// The GHCB extended-guest-request certificate table of one chip and TCB, built from the certificate
// cache: what `sevsup certs table` writes and what the daemon keeps in each SNP guest's run
// directory for a VMM to hand the guest (docs/snp-attestation.md "The GHCB certificate table").
// Owns: which cached certificates go into the table, in which order (ARK, ASK, VCEK), and the empty
// table written when the cache has none for the platform's current TCB. Must not: fetch (kds-fetch.ts)
// or choose where tables live (process/run-dir.ts names the per-guest file).
import { X509Certificate } from 'node:crypto';
import { CERT_TABLE_GUID, encodeCertTable } from '../sev/snp-certs.js';
import type { SnpProduct } from '../sev/snp-report.js';
import { lookupReportCerts, type CacheHit } from './kds-cache.js';

export interface CertTable {
  readonly table: Buffer;
  readonly hit: CacheHit;
}

/** The table from the cache's ARK, ASK and VCEK for this chip and TCB; null on a cache miss. */
export async function certTableFromCache(
  cacheDir: string,
  q: { product: SnpProduct | null; chipId: Buffer; reportedTcb: bigint },
): Promise<CertTable | null> {
  const hit = await lookupReportCerts(cacheDir, { ...q, kind: 'vcek' });
  if (hit === null) return null;
  const der = (data: Buffer): Buffer => new X509Certificate(data).raw;
  const table = encodeCertTable([
    { guid: CERT_TABLE_GUID.ark, data: der(hit.ark) },
    { guid: CERT_TABLE_GUID.ask, data: der(hit.intermediate) },
    { guid: CERT_TABLE_GUID.vcek, data: der(hit.leaf) },
  ]);
  return { table, hit };
}

/**
 * A table with no certificates (the terminator entry alone, one page): served while the cache has
 * nothing for the platform's current TCB, so a guest gets its report without certificates (and
 * fetches them itself) instead of a previous TCB's VCEK, which would not match its report.
 */
export function emptyCertTable(): Buffer {
  return encodeCertTable([]);
}
