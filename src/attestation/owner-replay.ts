// The owner service's memory of what it has answered (replay refusal): one entry per answered
// launch, keyed by relay-protocol.ts replayKey (the measurement's digest, which embeds the fresh
// MNONCE; the launch id for SNP), kept in a small JSON state file rewritten atomically so a restart
// does not forget. Owns: that file's format, reservations for requests in flight, and coalescing
// concurrent writes into one rename. Must not: hold evidence or secrets (keys are digests; entries
// say who, when and what was decided).
// An answer is sent only after its entry is durable: a crash between the two makes the daemon see a
// failed attempt and its retry a 409, which fails closed.
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

export class AnsweredStore {
  private readonly inFlight = new Set<string>();
  private writing: Promise<void> | null = null;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  private constructor(
    readonly file: string,
    private readonly entries: Map<string, AnsweredEntry>,
  ) {}

  /**
   * Open (or start) the state file. A missing file is an empty memory; anything unreadable or not
   * ours refuses to start (forgetting would re-open every replay).
   * @throws SUP_ERR_OWNER_STATE
   */
  static async open(file: string): Promise<AnsweredStore> {
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
    return new AnsweredStore(file, entries);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The earlier answer for `key`, or 'in-flight' while another request for it is being decided. */
  seen(key: string): AnsweredEntry | 'in-flight' | undefined {
    return this.entries.get(key) ?? (this.inFlight.has(key) ? 'in-flight' : undefined);
  }

  /** Claim `key` for one request; false when answered or claimed already. Synchronous: no race. */
  reserve(key: string): boolean {
    if (this.seen(key) !== undefined) return false;
    this.inFlight.add(key);
    return true;
  }

  /** Give a claim back without an answer (the request failed before deciding). */
  release(key: string): void {
    this.inFlight.delete(key);
  }

  /**
   * Remember `key` durably. On failure the claim is released and nothing is remembered.
   * @throws SUP_ERR_OWNER_STATE
   */
  async commit(key: string, entry: AnsweredEntry): Promise<void> {
    this.entries.set(key, entry);
    try {
      await new Promise<void>((resolve, reject) => {
        this.waiters.push({ resolve, reject });
        this.kick();
      });
    } catch (error: unknown) {
      this.entries.delete(key);
      throw new SupervisorError('SUP_ERR_OWNER_STATE', `cannot write the state file ${this.file}: ${describeIoError(error)}`, {
        details: { file: this.file },
        cause: error,
      });
    } finally {
      this.inFlight.delete(key);
    }
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
