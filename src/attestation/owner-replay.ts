// The owner service's memory of what it has answered (replay refusal): one entry per answered
// launch, keyed by relay-protocol.ts replayKey (the measurement's digest, which embeds the
// platform's fresh MNONCE: never a value the host picks freely; SNP records carry nothing fresh and
// are not remembered), kept in a small JSON state file rewritten atomically so a restart does not
// forget. Owns: that file's format, claims for requests in flight, telling a retry of the same
// launch (same host, VM and launch id) from a replay, the per-guest bound on entries, and
// coalescing concurrent writes into one rename. Must not: hold evidence or secrets (keys are
// digests; entries say who, when and what was decided).
// An answer is sent only after its entry is durable: a crash between the two makes the daemon see a
// failed attempt, and its retry (same launch id, docs/relay-protocol.md) is answered again.
import { readFile } from 'node:fs/promises';
import { SupervisorError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { describeIoError } from '../util/io-error.js';
import { isRecord } from '../util/is-record.js';

export const OWNER_STATE_SCHEMA = 'sevsup.owner-answered/v1';

export interface AnsweredEntry {
  readonly at: string;
  readonly host: string;
  readonly vm: string;
  readonly launchId: string;
  readonly decision: 'approve' | 'inject' | 'reject';
}

/** Who asks: a retry of the same launch is told from a replay by all three. */
export interface LaunchRef {
  readonly host: string;
  readonly vm: string;
  readonly launchId: string;
}

/**
 * What a claim found. `claimed`: new evidence, decide it; `retry`: this launch's own evidence again
 * (decide again, answer the same way); `replay`: another launch's; `in-flight`: being decided now
 * (`sameLaunch`: by this launch's earlier attempt); `full`: the guest has `maxPerGuest` entries.
 */
export type Claim =
  | { readonly kind: 'claimed' }
  | { readonly kind: 'retry'; readonly entry: AnsweredEntry }
  | { readonly kind: 'replay'; readonly entry: AnsweredEntry }
  | { readonly kind: 'in-flight'; readonly sameLaunch: boolean }
  | { readonly kind: 'full'; readonly limit: number };

/** Answered launches remembered per guest by default (`max-answered`). */
export const DEFAULT_MAX_ANSWERED_PER_GUEST = 1000;

const guestOf = (l: { readonly host: string; readonly vm: string }): string => `${l.host}/${l.vm}`;
const sameLaunch = (a: LaunchRef, b: LaunchRef): boolean => a.host === b.host && a.vm === b.vm && a.launchId === b.launchId;

export class AnsweredStore {
  private readonly inFlight = new Map<string, LaunchRef>();
  /** Entries per guest (host/VM), kept with `entries`: the bound is checked without a scan. */
  private readonly perGuest = new Map<string, number>();
  private writing: Promise<void> | null = null;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  private constructor(
    readonly file: string,
    private readonly entries: Map<string, AnsweredEntry>,
    /** Entries one guest may have; past it new evidence for that guest is refused (`full`). */
    readonly maxPerGuest: number,
  ) {
    for (const e of entries.values()) this.count(e, 1);
  }

  /**
   * Open (or start) the state file. A missing file is an empty memory; anything unreadable or not
   * ours refuses to start (forgetting would re-open every replay).
   * @throws SUP_ERR_OWNER_STATE
   */
  static async open(file: string, o: { maxPerGuest?: number } = {}): Promise<AnsweredStore> {
    let text: string | null = null;
    try {
      text = await readFile(file, 'utf8');
    } catch (error: unknown) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new SupervisorError('SUP_ERR_OWNER_STATE', `cannot read the state file ${file}: ${describeIoError(error)}`, {
          details: { file },
        });
      }
    }
    const entries = new Map<string, AnsweredEntry>();
    if (text !== null) {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        value = null;
      }
      const answered = isRecord(value) && value['schema'] === OWNER_STATE_SCHEMA ? value['answered'] : null;
      if (!isRecord(answered)) {
        throw new SupervisorError(
          'SUP_ERR_OWNER_STATE',
          `${file} is not an owner state file (${OWNER_STATE_SCHEMA}); move it away only if you accept that every launch it remembers could be replayed`,
          { details: { file } },
        );
      }
      for (const [k, v] of Object.entries(answered)) {
        // Skipping an entry would silently re-open its replay: refuse, as for an unreadable file.
        if (!isEntry(v)) {
          throw new SupervisorError(
            'SUP_ERR_OWNER_STATE',
            `${file}: the entry ${JSON.stringify(k.slice(0, 100))} is not an answered launch; restore the file from a backup, or remove only that entry if you accept that its launch could be replayed`,
            { details: { file } },
          );
        }
        entries.set(k, v);
      }
    }
    return new AnsweredStore(file, entries, o.maxPerGuest ?? DEFAULT_MAX_ANSWERED_PER_GUEST);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Claim `key` for `launch`'s request. Synchronous: two requests cannot both claim it. Every kind
   * but `replay` and `full` holds a claim to `release` or `commit` (`in-flight` holds none).
   */
  claim(key: string, launch: LaunchRef): Claim {
    const holder = this.inFlight.get(key);
    if (holder !== undefined) return { kind: 'in-flight', sameLaunch: sameLaunch(holder, launch) };
    const entry = this.entries.get(key);
    if (entry !== undefined && !sameLaunch(entry, launch)) return { kind: 'replay', entry };
    if (entry === undefined && this.held(launch) >= this.maxPerGuest) return { kind: 'full', limit: this.maxPerGuest };
    this.inFlight.set(key, launch);
    return entry === undefined ? { kind: 'claimed' } : { kind: 'retry', entry };
  }

  /** Give a claim back without an answer (the request failed before deciding, or nothing changed). */
  release(key: string): void {
    this.inFlight.delete(key);
  }

  /**
   * Remember `key` durably. On failure the claim is released and nothing is remembered.
   * @throws SUP_ERR_OWNER_STATE
   */
  async commit(key: string, entry: AnsweredEntry): Promise<void> {
    const before = this.entries.get(key);
    this.put(key, entry);
    try {
      await new Promise<void>((resolve, reject) => {
        this.waiters.push({ resolve, reject });
        this.kick();
      });
    } catch (error: unknown) {
      this.put(key, before);
      throw new SupervisorError('SUP_ERR_OWNER_STATE', `cannot write the state file ${this.file}: ${describeIoError(error)}`, {
        details: { file: this.file },
        cause: error,
      });
    } finally {
      this.inFlight.delete(key);
    }
  }

  /** Entries and claims of `launch`'s guest. */
  private held(launch: LaunchRef): number {
    let claims = 0;
    for (const l of this.inFlight.values()) if (guestOf(l) === guestOf(launch)) claims += 1;
    return (this.perGuest.get(guestOf(launch)) ?? 0) + claims;
  }

  private put(key: string, entry: AnsweredEntry | undefined): void {
    const old = this.entries.get(key);
    if (old !== undefined) this.count(old, -1);
    if (entry === undefined) this.entries.delete(key);
    else {
      this.entries.set(key, entry);
      this.count(entry, 1);
    }
  }

  private count(e: AnsweredEntry, by: number): void {
    const n = (this.perGuest.get(guestOf(e)) ?? 0) + by;
    if (n === 0) this.perGuest.delete(guestOf(e));
    else this.perGuest.set(guestOf(e), n);
  }

  /** Wait for writes in progress (shutdown). */
  async settle(): Promise<void> {
    while (this.writing !== null) await this.writing.catch(() => undefined);
  }

  // One write at a time; everything committed meanwhile goes into the next one.
  private kick(): void {
    if (this.writing !== null || this.waiters.length === 0) return;
    const batch = this.waiters.splice(0);
    const text = `${JSON.stringify({ schema: OWNER_STATE_SCHEMA, answered: Object.fromEntries(this.entries) })}\n`;
    this.writing = writeFileAtomic(this.file, text, { mode: 0o600, overwrite: true })
      .then(
        () => {
          for (const w of batch) w.resolve();
        },
        (error: unknown) => {
          for (const w of batch) w.reject(error);
        },
      )
      .finally(() => {
        this.writing = null;
        this.kick();
      });
  }
}

function isEntry(v: unknown): v is AnsweredEntry {
  return (
    isRecord(v) &&
    typeof v['at'] === 'string' &&
    typeof v['host'] === 'string' &&
    typeof v['vm'] === 'string' &&
    typeof v['launchId'] === 'string' &&
    (v['decision'] === 'approve' || v['decision'] === 'inject' || v['decision'] === 'reject')
  );
}
