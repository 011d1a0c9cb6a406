// The host's own SEV-SNP certificates, kept current for its guests: read the platform's identity
// (chip, REPORTED_TCB) from a PlatformTcbSource, find its VCEK and the product's chain in the cache —
// or, online, fetch them once through kds-fetch.ts (which waits out 429 Retry-After) — and keep every
// SNP guest's GHCB certificate table (cert-table.ts) equal to what the platform now signs with.
// Never hammering: the key server is asked only when the identity changed or the cache lacks it, and
// after a failed attempt not again before a backoff (doubling, capped) unless the operator asks
// (refresh 'reload'). While the cache has nothing for the current TCB, guests get the empty table,
// never a previous TCB's VCEK.
// Owns: the refresh decision, the tables' contents and their atomic rewrites, the status it reports.
// Must not: schedule itself (the daemon's timer and SIGHUP call refresh), log (it reports events),
// or throw from refresh (an outcome says what happened).
import { X509Certificate } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { isSupervisorError, SupervisorError } from '../errors.js';
import { sameIdentity, type PlatformTcbSource, type SnpPlatformIdentity } from '../host/snp-platform.js';
import { kdsHwid } from '../sev/snp-certs.js';
import { decodeTcb, formatTcb, tcbLayoutOf } from '../sev/snp-report.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { isRecord } from '../util/is-record.js';
import { describeIoError, errnoOf } from '../util/io-error.js';
import { certTableFromCache, emptyCertTable } from './cert-table.js';
import { chainPath } from './kds-cache.js';
import { fetchChain, fetchVcek, type KdsOptions } from './kds-fetch.js';
import type { PinnedArk } from './verify-snp.js';

export type RefreshTrigger = 'start' | 'interval' | 'reload';

/** What one refresh did. */
export type RefreshOutcome =
  | 'unchanged' // the identity is the same and its certificates were already in place
  | 'cache' // the certificates came from the cache (tables rewritten)
  | 'network' // fetched from the key server (tables rewritten)
  | 'offline-miss' // offline, and the cache has nothing for this identity (empty tables)
  | 'deferred' // a previous attempt failed and its backoff has not passed
  | 'failed' // the fetch failed (empty tables until a later attempt succeeds)
  | 'unknown'; // the platform's identity is unknown (tables left as they are)

export type KeeperEvent =
  | { readonly kind: 'refreshed'; readonly trigger: RefreshTrigger; readonly outcome: RefreshOutcome }
  | { readonly kind: 'tcb-changed'; readonly from: string; readonly to: string }
  | { readonly kind: 'error'; readonly code: string; readonly message: string }
  | { readonly kind: 'table-write-failed'; readonly path: string; readonly message: string };

export interface HostCertKeeperOptions {
  readonly cacheDir: string;
  /** Never touch the network: only the cache (`sevsup certs fetch|import` fill it). */
  readonly offline: boolean;
  readonly source: PlatformTcbSource;
  /** The table files to keep current: every SNP guest's (read at each rewrite). */
  readonly tables: () => Iterable<string>;
  /** The roots a chain must have to be handed to guests: AMD's ARKs, or the operator's (`snp-ark`). */
  readonly pinned: readonly PinnedArk[];
  /** Key server request discipline (base URL, 429 wait cap, retries). */
  readonly kds?: Omit<KdsOptions, 'cacheDir' | 'offline' | 'refresh' | 'onWait'>;
  /** First wait after a failed fetch before the next automatic one. @default 60000 */
  readonly failureBackoffMs?: number;
  /** The longest such wait. @default 3600000 */
  readonly maxFailureBackoffMs?: number;
  readonly now?: () => number;
  readonly onEvent?: (event: KeeperEvent) => void;
}

export interface HostCertStatus {
  /** Where the identity comes from: `file:<path>`, `simulated`, `hardware`. */
  readonly source: string;
  readonly platform: {
    readonly product: string;
    readonly chipId: string;
    readonly reportedTcb: string;
    readonly tcb: string;
  } | null;
  /** Why the identity is unknown (or the facts file's error), when it is. */
  readonly platformProblem: string | null;
  /** ready: the tables hold the current TCB's certificates; empty: they hold none; unknown: no identity yet. */
  readonly tables: 'ready' | 'empty' | 'unknown';
  readonly offline: boolean;
  readonly cacheDir: string;
  /** The VCEK in use: its cache file and when it was written there. */
  readonly vcek: { readonly path: string; readonly cachedAt: string; readonly ageSeconds: number } | null;
  readonly lastRefreshAt: string | null;
  readonly lastOutcome: RefreshOutcome | null;
  readonly lastError: { readonly code: string; readonly message: string; readonly at: string } | null;
  /** No automatic fetch before this (after a failure). */
  readonly nextFetchNotBefore: string | null;
  readonly tcbChanges: number;
  readonly networkFetches: number;
}

export class HostCertKeeper {
  readonly #o: HostCertKeeperOptions;
  readonly #now: () => number;
  #queue: Promise<unknown> = Promise.resolve();
  #identity: SnpPlatformIdentity | null = null;
  #problem: string | null = null;
  /** What every guest table holds now; null until an identity was known once. */
  #content: Buffer | null = null;
  #ready = false;
  #vcek: { path: string; mtimeMs: number } | null = null;
  #lastRefreshAt: number | null = null;
  #lastOutcome: RefreshOutcome | null = null;
  #lastError: { code: string; message: string; at: number } | null = null;
  #notBefore = 0;
  #backoff: number;
  #tcbChanges = 0;
  #fetches = 0;
  /** Tables written at a launch that `tables()` may not list yet (the guest's lifecycle is being made). */
  readonly #launched = new Set<string>();

  constructor(options: HostCertKeeperOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#backoff = options.failureBackoffMs ?? 60_000;
  }

  /** Re-read the identity and bring the certificates and tables in line. Serialised; never throws. */
  refresh(trigger: RefreshTrigger): Promise<RefreshOutcome> {
    return this.#serial(async () => {
      const outcome = await this.#refresh(trigger).catch((error: unknown) => {
        this.#fail(error);
        return 'failed' as const;
      });
      this.#lastRefreshAt = this.#now();
      this.#lastOutcome = outcome;
      this.#o.onEvent?.({ kind: 'refreshed', trigger, outcome });
      return outcome;
    });
  }

  /**
   * Write the current table to one guest's file (at its launch, before QEMU starts), at once — not
   * behind a refresh that may be waiting out a 429 — and keep it current from then on. Resolves
   * false when there is nothing to write yet (no identity was ever known): the file is then removed,
   * so no earlier run's table outlives its TCB.
   * @throws SUP_ERR_CERTS_CACHE when the file cannot be written.
   */
  async writeTable(path: string): Promise<boolean> {
    this.#launched.add(path);
    for (;;) {
      const content = this.#content;
      if (content === null) {
        await rm(path, { force: true });
        if (this.#content === null) return false;
        continue;
      }
      await writeTableFile(path, content);
      // A refresh that changed the content meanwhile may have written before this rename: again.
      if (this.#content === content) return true;
    }
  }

  /** Rewrite every listed table with the current content (guests re-attached after a restart). */
  syncTables(): Promise<void> {
    return this.#serial(async () => {
      if (this.#content !== null) await this.#setTables(this.#content, this.#ready);
    });
  }

  status(): HostCertStatus {
    const id = this.#identity;
    const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
    return {
      source: this.#o.source.name,
      platform:
        id === null
          ? null
          : {
              product: id.product,
              chipId: id.chipId.toString('hex'),
              reportedTcb: `0x${id.reportedTcb.toString(16).padStart(16, '0')}`,
              tcb: formatTcb(decodeTcb(id.reportedTcb, tcbLayoutOf(id.product))),
            },
      platformProblem: this.#problem,
      tables: this.#content === null ? 'unknown' : this.#ready ? 'ready' : 'empty',
      offline: this.#o.offline,
      cacheDir: this.#o.cacheDir,
      vcek:
        this.#vcek === null
          ? null
          : {
              path: this.#vcek.path,
              cachedAt: new Date(this.#vcek.mtimeMs).toISOString(),
              ageSeconds: Math.max(0, Math.round((this.#now() - this.#vcek.mtimeMs) / 1000)),
            },
      lastRefreshAt: iso(this.#lastRefreshAt),
      lastOutcome: this.#lastOutcome,
      lastError: this.#lastError === null ? null : { ...this.#lastError, at: new Date(this.#lastError.at).toISOString() },
      nextFetchNotBefore: this.#notBefore > this.#now() ? new Date(this.#notBefore).toISOString() : null,
      tcbChanges: this.#tcbChanges,
      networkFetches: this.#fetches,
    };
  }

  async #refresh(trigger: RefreshTrigger): Promise<RefreshOutcome> {
    const reading = await this.#o.source.read();
    if (!reading.known) {
      // A broken or missing facts file does not unsay what was known: the tables stay as they are.
      if (reading.reason !== this.#problem) this.#o.onEvent?.({ kind: 'error', code: 'SUP_ERR_SNP_PLATFORM', message: reading.reason });
      this.#problem = reading.reason;
      return 'unknown';
    }
    this.#problem = null;
    const identity = reading.identity;
    const changed = !sameIdentity(this.#identity, identity);
    if (changed) {
      if (this.#identity !== null) {
        this.#tcbChanges += 1;
        this.#o.onEvent?.({ kind: 'tcb-changed', from: describe(this.#identity), to: describe(identity) });
      }
      this.#identity = identity;
      this.#ready = false;
      this.#vcek = null;
      this.#notBefore = 0;
      this.#backoff = this.#o.failureBackoffMs ?? 60_000;
    }
    if (this.#ready) return 'unchanged';
    const fromCache = await this.#fromCache(identity).catch(async (error: unknown) => {
      // An unreadable cache must not leave a previous TCB's VCEK in the tables.
      if (changed) await this.#setTables(emptyCertTable(), false);
      throw error;
    });
    if (fromCache === 'hit') return 'cache';
    if (fromCache === 'unpinned') return 'failed';
    if (changed || this.#content === null) await this.#setTables(emptyCertTable(), false);
    if (this.#o.offline) {
      const message = `offline: the cache ${this.#o.cacheDir} has no VCEK and cert_chain for ${describe(identity)}: run \`sevsup certs fetch --product ${identity.product} --chip-id … --tcb 0x${identity.reportedTcb.toString(16)}\` where AMD's key server is reachable, or \`sevsup certs import\``;
      if (this.#lastError?.message !== message) this.#o.onEvent?.({ kind: 'error', code: 'SUP_ERR_CERTS_OFFLINE', message });
      this.#lastError = { code: 'SUP_ERR_CERTS_OFFLINE', message, at: this.#now() };
      return 'offline-miss';
    }
    if (trigger !== 'reload' && this.#now() < this.#notBefore) return 'deferred';
    try {
      const o: KdsOptions = { ...this.#o.kds, cacheDir: this.#o.cacheDir };
      // The chain first: the VCEK is then checked against the cached ASK before it is cached.
      await fetchChain(identity.product, 'vcek', o);
      await fetchVcek(identity, o);
    } catch (error: unknown) {
      this.#fail(error);
      this.#notBefore = this.#now() + this.#backoff;
      this.#backoff = Math.min(this.#backoff * 2, this.#o.maxFailureBackoffMs ?? 3_600_000);
      return 'failed';
    }
    this.#fetches += 1;
    const fetched = await this.#fromCache(identity);
    if (fetched === 'unpinned') return 'failed';
    if (fetched === 'miss') {
      throw new SupervisorError('SUP_ERR_CERTS_CACHE', `the certificates just fetched are not in the cache ${this.#o.cacheDir}`);
    }
    return 'network';
  }

  /**
   * Use the cache's certificates for `identity` if it has them and their ARK is pinned. A chain with
   * another root is never handed to guests (the tables go empty) and is left for the operator to
   * replace: the cache is read first, so fetching again would only find it again.
   */
  async #fromCache(identity: SnpPlatformIdentity): Promise<'hit' | 'miss' | 'unpinned'> {
    const built = await certTableFromCache(this.#o.cacheDir, identity);
    if (built === null) return 'miss';
    const ark = new X509Certificate(built.hit.ark).raw;
    if (!this.#o.pinned.some((p) => p.der.equals(ark))) {
      const path = chainPath(this.#o.cacheDir, built.hit.product);
      this.#fail(
        new SupervisorError(
          'SUP_ERR_KDS_BAD_CERT',
          `the ARK of ${path} is not AMD's${this.#o.pinned.some((p) => p.source === 'owner') ? ' nor the snp-ark given' : ''}: it is not handed to guests; replace the file (\`sevsup certs fetch --refresh\` or \`certs import\`), or pin its root with snp-ark`,
        ),
      );
      await this.#setTables(emptyCertTable(), false);
      this.#vcek = null;
      return 'unpinned';
    }
    const leafPath = built.hit.paths[0] ?? '';
    let mtimeMs = this.#now();
    try {
      mtimeMs = (await stat(leafPath)).mtimeMs;
    } catch {
      // the age is a nicety; the table is what matters
    }
    this.#vcek = { path: leafPath, mtimeMs };
    this.#lastError = null;
    await this.#setTables(built.table, true);
    return 'hit';
  }

  async #setTables(content: Buffer, ready: boolean): Promise<void> {
    this.#content = content;
    this.#ready = ready;
    const listed = new Set(this.#o.tables());
    for (const path of new Set([...listed, ...this.#launched])) {
      if (listed.has(path)) this.#launched.delete(path);
      try {
        await writeTableFile(path, content);
      } catch (error: unknown) {
        this.#o.onEvent?.({ kind: 'table-write-failed', path, message: error instanceof Error ? error.message : String(error) });
      }
    }
  }

  #fail(error: unknown): void {
    const code = isSupervisorError(error) ? error.code : 'SUP_ERR_INTERNAL';
    const message = error instanceof Error ? error.message : String(error);
    this.#lastError = { code, message, at: this.#now() };
    this.#o.onEvent?.({ kind: 'error', code, message });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }
}

/** `Milan chip 1a2b3c4d… TCB 0x… (bl 4 tee 0 snp 23 ucode 213)` for logs and events. */
export function describe(id: SnpPlatformIdentity): string {
  const tcb = formatTcb(decodeTcb(id.reportedTcb, tcbLayoutOf(id.product)));
  return `${id.product} chip ${kdsHwid(id.product, id.chipId).slice(0, 16)}… TCB 0x${id.reportedTcb.toString(16).padStart(16, '0')} (${tcb})`;
}

/** One table file, replaced atomically (a VMM reading it sees the old table or the new, whole). */
async function writeTableFile(path: string, content: Buffer): Promise<void> {
  try {
    await writeFileAtomic(path, content, { overwrite: true, mode: 0o644 });
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_CERTS_CACHE', `cannot write the certificate table ${path}: ${describeIoError(error)}`, {
      cause: error,
    });
  }
}

/** The status as a file (`<run-dir>/snp-certs.json`) for `sevsup host` and operators. */
export const HOST_CERTS_STATUS_SCHEMA = 'sevsup.snp-certs-status/v1';
/** Its name in the daemon's run directory. */
export const HOST_CERTS_STATUS_FILE = 'snp-certs.json';

export async function writeStatusFile(path: string, status: HostCertStatus): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify({ schema: HOST_CERTS_STATUS_SCHEMA, ...status }, null, 2)}\n`, {
    overwrite: true,
    mode: 0o644,
  });
}

/** The daemon's status file, or null when there is none (no daemon keeps SNP certificates here). */
export async function readStatusFile(path: string): Promise<HostCertStatus | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error: unknown) {
    if (errnoOf(error) === 'ENOENT') return null;
    throw new SupervisorError('SUP_ERR_CERTS_CACHE', `cannot read ${path}: ${describeIoError(error)}`, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  if (!isRecord(parsed) || parsed.schema !== HOST_CERTS_STATUS_SCHEMA) {
    throw new SupervisorError('SUP_ERR_CERTS_CACHE', `${path} is not a ${HOST_CERTS_STATUS_SCHEMA} status file`);
  }
  return parsed as unknown as HostCertStatus;
}
