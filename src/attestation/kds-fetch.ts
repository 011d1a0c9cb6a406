// Fetching SEV-SNP certificates from AMD's Key Distribution Service as a good citizen: the cache is
// read first and every fetched certificate is checked before it is cached; requests go one at a
// time; HTTP 429 waits exactly what Retry-After says (capped: a longer wait is an error that says
// when to come back, never a silent hour-long sleep); 5xx and network errors back off
// exponentially with p-retry for a few tries; 404 and other 4xx are final. `offline` never touches
// the network. Owns: the request discipline and the "is this the certificate we asked for" checks.
// Must not: decide trust in a report (verify-snp.ts), or cache anything that failed its checks.
import pRetry, { AbortError } from 'p-retry';
import { setTimeout as sleep } from 'node:timers/promises';
import { isSupervisorError, SupervisorError } from '../errors.js';
import {
  amdExtensions,
  certTcbRaw,
  issuedBy,
  kdsChainUrl,
  kdsCrlUrl,
  kdsHwid,
  kdsVcekUrl,
  KDS_BASE,
  loadCert,
  shapeProblems,
  splitPem,
  type AmdExtensions,
  type KdsKeyKind,
  type LoadedCert,
} from '../sev/snp-certs.js';
import { readOnly } from '../sev/snp-der.js';
import { tcbLayoutOf, type SnpProduct } from '../sev/snp-report.js';
import { chainPath, crlPath, readCached, readChain, vcekPath, writeCached, type VcekKey } from './kds-cache.js';

export interface KdsOptions {
  readonly cacheDir: string;
  /** Never touch the network: a cache miss is SUP_ERR_CERTS_OFFLINE. */
  readonly offline?: boolean;
  /** Fetch even when cached (the cached file is replaced only by a checked one). */
  readonly refresh?: boolean;
  /** @default https://kdsintf.amd.com */
  readonly baseUrl?: string;
  /** Retries after the first try. @default 3 */
  readonly retries?: number;
  /** First backoff for 5xx / network errors / 429 without Retry-After. @default 2000 */
  readonly backoffMs?: number;
  /** The longest Retry-After we wait; longer is SUP_ERR_KDS_RATE_LIMITED. @default 120000 */
  readonly maxRetryAfterMs?: number;
  /** Per-request timeout. @default 15000 */
  readonly timeoutMs?: number;
  /** The largest answer accepted. @default 1 MiB */
  readonly maxBytes?: number;
  /** Told before each wait (for a CLI's progress line). */
  readonly onWait?: (info: { url: string; ms: number; reason: string }) => void;
}

export interface Fetched {
  readonly data: Buffer;
  readonly path: string;
  readonly source: 'cache' | 'network';
}

class RateLimited extends Error {
  constructor(readonly waitMs: number | null) {
    super('HTTP 429');
  }
}

// One request at a time per process: several guests' refreshes never burst at the key server.
let queue: Promise<unknown> = Promise.resolve();
function serial<T>(fn: () => Promise<T>): Promise<T> {
  const next = queue.then(fn, fn);
  queue = next.catch(() => undefined);
  return next;
}

/** Certificates are a few KiB and CRLs tens: anything past this is not an answer to keep. */
const MAX_ANSWER_BYTES = 1024 * 1024;

/** The body, refusing (and cancelling) one larger than `max` bytes: a peer is never trusted with our memory. */
async function readCapped(res: Response, url: string, max: number): Promise<Buffer> {
  const tooBig = (): AbortError =>
    new AbortError(new SupervisorError('SUP_ERR_KDS_BAD_CERT', `${url}: the answer is larger than ${max} bytes`));
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (declared > max) {
    await res.body?.cancel();
    throw tooBig();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  if (res.body === null) return Buffer.alloc(0);
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > max) throw tooBig(); // leaving the loop cancels the stream
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | null {
  if (header === null) return null;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** GET `url` under the request discipline. @throws SUP_ERR_KDS_* */
export async function kdsGet(url: string, o: Omit<KdsOptions, 'cacheDir'> = {}): Promise<Buffer> {
  const maxWait = o.maxRetryAfterMs ?? 120_000;
  const attempt = async (): Promise<Buffer> => {
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(o.timeoutMs ?? 15_000), redirect: 'error' });
    } catch (error: unknown) {
      throw new Error(`cannot reach ${url}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    if (res.status === 200) return readCapped(res, url, o.maxBytes ?? MAX_ANSWER_BYTES);
    await res.body?.cancel();
    if (res.status === 429) {
      const wait = retryAfterMs(res.headers.get('retry-after'));
      if (wait !== null && wait > maxWait) {
        throw new AbortError(
          new SupervisorError(
            'SUP_ERR_KDS_RATE_LIMITED',
            `${url}: the key server asks to wait ${Math.ceil(wait / 1000)} s (Retry-After), more than the ${Math.ceil(maxWait / 1000)} s allowed: try again later`,
          ),
        );
      }
      throw new RateLimited(wait);
    }
    if (res.status === 404)
      throw new AbortError(new SupervisorError('SUP_ERR_KDS_NOT_FOUND', `${url}: 404 (no such chip, TCB or product at the key server)`));
    if (res.status >= 500) throw new Error(`${url}: HTTP ${res.status}`);
    throw new AbortError(new SupervisorError('SUP_ERR_KDS_FETCH', `${url}: HTTP ${res.status}`));
  };
  try {
    return await serial(() =>
      pRetry(attempt, {
        retries: o.retries ?? 3,
        minTimeout: o.backoffMs ?? 2000,
        factor: 2,
        randomize: true,
        onFailedAttempt: async ({ error, retriesLeft }) => {
          if (retriesLeft === 0) return;
          if (error instanceof RateLimited && error.waitMs !== null) {
            o.onWait?.({ url, ms: error.waitMs, reason: 'HTTP 429 Retry-After' });
            await sleep(error.waitMs); // p-retry's own backoff follows: never sooner than asked
          } else {
            o.onWait?.({ url, ms: o.backoffMs ?? 2000, reason: error.message });
          }
        },
      }),
    );
  } catch (error: unknown) {
    if (isSupervisorError(error)) throw error;
    if (error instanceof RateLimited) {
      throw new SupervisorError(
        'SUP_ERR_KDS_RATE_LIMITED',
        `${url}: still rate limited (HTTP 429) after ${(o.retries ?? 3) + 1} tries: try again later`,
      );
    }
    throw new SupervisorError('SUP_ERR_KDS_FETCH', error instanceof Error ? error.message : String(error), { cause: error });
  }
}

// Section: what was asked for is what came back ------------------------------------------------------

function bad(what: string, why: string): SupervisorError {
  return new SupervisorError('SUP_ERR_KDS_BAD_CERT', `${what}: ${why}`);
}

function parse(role: LoadedCert['role'], data: Buffer, what: string): LoadedCert {
  try {
    return loadCert(role, data);
  } catch (error: unknown) {
    throw bad(what, `not a certificate (${error instanceof Error ? error.message : String(error)})`);
  }
}

/** A cert_chain: two AMD-shaped certificates, the intermediate signed by the self-signed ARK. */
export function checkChain(text: string, what: string, kind: KdsKeyKind = 'vcek'): { ark: LoadedCert; intermediate: LoadedCert } {
  const pems = splitPem(text);
  if (pems.length !== 2) throw bad(what, `expected 2 certificates (${kind === 'vcek' ? 'ASK' : 'ASVK'}, ARK), found ${pems.length}`);
  const intermediate = parse(kind === 'vcek' ? 'ask' : 'asvk', Buffer.from(pems[0] ?? ''), what);
  const ark = parse('ark', Buffer.from(pems[1] ?? ''), what);
  const problems = [...shapeProblems(ark), ...shapeProblems(intermediate)];
  if (!issuedBy(ark, ark)) problems.push('the ARK is not self-signed');
  if (!issuedBy(intermediate, ark)) problems.push('the intermediate is not signed by the ARK');
  if (problems.length > 0) throw bad(what, problems.join('; '));
  return { ark, intermediate };
}

/** A VCEK for exactly this chip and TCB (its hwID and SPL extensions say so). */
export function checkVcek(der: Buffer, k: VcekKey, what: string): LoadedCert {
  const c = parse('vcek', der, what);
  const problems = shapeProblems(c);
  let ext: AmdExtensions;
  try {
    ext = amdExtensions(c.parts);
  } catch (error: unknown) {
    throw bad(what, `malformed AMD extensions (${error instanceof Error ? error.message : String(error)})`);
  }
  const hw = Buffer.from(kdsHwid(k.product, k.chipId), 'hex');
  if (ext.hwId === null || !ext.hwId.equals(hw)) problems.push('its hwID is not the chip asked for');
  if (certTcbRaw(ext, tcbLayoutOf(k.product)) !== k.reportedTcb) problems.push('its TCB is not the one asked for');
  if (problems.length > 0) throw bad(what, problems.join('; '));
  return c;
}

// Section: cache-first fetches ----------------------------------------------------------------------

function offlineMiss(path: string, what: string): SupervisorError {
  return new SupervisorError(
    'SUP_ERR_CERTS_OFFLINE',
    `${what} is not in the cache (${path}) and --offline forbids fetching it: run \`sevsup certs fetch\` where AMD's key server is reachable, or \`sevsup certs import\``,
  );
}

async function cacheFirst(path: string, what: string, o: KdsOptions, fetchAndCheck: () => Promise<Buffer>): Promise<Fetched> {
  if (o.refresh !== true) {
    const hit = await readCached(path);
    if (hit !== null) return { data: hit, path, source: 'cache' };
  }
  if (o.offline === true) throw offlineMiss(path, what);
  const data = await fetchAndCheck();
  await writeCached(path, data);
  return { data, path, source: 'network' };
}

export function fetchChain(product: SnpProduct, kind: KdsKeyKind, o: KdsOptions): Promise<Fetched> {
  const url = kdsChainUrl(product, kind, o.baseUrl ?? KDS_BASE);
  return cacheFirst(chainPath(o.cacheDir, product, kind), `the ${product} ${kind} cert_chain`, o, async () => {
    const data = await kdsGet(url, o);
    checkChain(data.toString('utf8'), url, kind);
    return data;
  });
}

export function fetchCrl(product: SnpProduct, o: KdsOptions): Promise<Fetched> {
  const url = kdsCrlUrl(product, 'vcek', o.baseUrl ?? KDS_BASE);
  return cacheFirst(crlPath(o.cacheDir, product), `the ${product} CRL`, o, async () => {
    const data = await kdsGet(url, o);
    try {
      readOnly(data);
    } catch {
      throw bad(url, 'not a DER CRL');
    }
    return data;
  });
}

/** The VCEK for (product, chip, TCB); checked against the cached chain when there is one. */
export function fetchVcek(k: VcekKey, o: KdsOptions): Promise<Fetched> {
  const url = kdsVcekUrl(k.product, k.chipId, k.reportedTcb, o.baseUrl ?? KDS_BASE);
  return cacheFirst(
    vcekPath(o.cacheDir, k),
    `the VCEK for chip ${kdsHwid(k.product, k.chipId).slice(0, 16)}… at TCB 0x${k.reportedTcb.toString(16)}`,
    o,
    async () => {
      const data = await kdsGet(url, o);
      const vcek = checkVcek(data, k, url);
      const chain = await readChain(o.cacheDir, k.product, 'vcek');
      if (chain !== null && !issuedBy(vcek, loadCert('ask', chain.intermediate))) throw bad(url, 'it is not signed by the cached ASK');
      return data;
    },
  );
}
