// Narrowing the fields of a launch record read back (from disk, the API or an owner's request):
// the one set of field readers the SEV record (vm/record.ts) and the SEV-SNP record
// (vm/snp-record.ts) parsers share. Each reader answers null when the field is missing or of the
// wrong type or form. Pure. Must not: judge what a value means (the owner's verifier does).
import { isRecord } from '../util/is-record.js';
import type { FileDigest, RecordPlatform } from './record.js';

export type Obj = Readonly<Record<string, unknown>>;

/** Lower-case hex of exactly `bytes` bytes. */
export const HEX = (bytes: number): RegExp => new RegExp(`^[0-9a-f]{${bytes * 2}}$`);
export const SHA256 = HEX(32);
export const SHA384 = HEX(48);

export const str = (o: Obj, k: string): string | null => (typeof o[k] === 'string' ? (o[k] as string) : null);
export const int = (o: Obj, k: string): number | null => (typeof o[k] === 'number' && Number.isSafeInteger(o[k]) ? (o[k] as number) : null);
/** A string of the form `re`. */
export const matching = (o: Obj, k: string, re: RegExp): string | null => {
  const v = str(o, k);
  return v !== null && re.test(v) ? v : null;
};
/** null: the field is null; undefined: malformed. */
export const nullableMatching = (o: Obj, k: string, re: RegExp): string | null | undefined =>
  o[k] === null ? null : (matching(o, k, re) ?? undefined);

/**
 * A file and the SHA-256 of its bytes, its form checked against `form` (null: any string).
 * undefined: malformed; null: absent.
 */
export function fileDigest(value: unknown, form: RegExp | null = SHA256): FileDigest | null | undefined {
  if (value === null) return null;
  if (!isRecord(value)) return undefined;
  const path = str(value, 'path');
  const digest = form === null ? str(value, 'sha256') : matching(value, 'sha256', form);
  return path === null || digest === null ? undefined : { path, sha256: digest };
}

/** The fields every launch record has, whatever its kind. */
export interface RecordHead {
  readonly vm: string;
  readonly capturedAt: string;
  readonly platform: RecordPlatform;
  readonly state: string;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
}

/** The fields every launch record has; null when one is missing or malformed. */
export function recordHead(o: Obj): RecordHead | null {
  const platform = o['platform'];
  const vm = str(o, 'vm');
  const capturedAt = str(o, 'capturedAt');
  const state = str(o, 'state');
  const apiMajor = int(o, 'apiMajor');
  const apiMinor = int(o, 'apiMinor');
  const buildId = int(o, 'buildId');
  if (platform !== 'hardware' && platform !== 'simulated') return null;
  if (vm === null || capturedAt === null || state === null || apiMajor === null || apiMinor === null || buildId === null) return null;
  return { vm, capturedAt, platform, state, apiMajor, apiMinor, buildId };
}
