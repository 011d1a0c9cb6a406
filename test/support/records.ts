// Reading a guest's latest measurement record in tests (the product lists and reads records by
// path: vm/record-store.ts has no "latest" reader of its own).
import { join } from 'node:path';
import type { LaunchRecord } from '../../src/vm/record.js';
import { LATEST_RECORD, readRecordFile, recordsDir } from '../../src/vm/record-store.js';

/** `<state>/<vm>/measurements/latest.json`, or null when no record was written. */
export function readLatestRecord(stateDir: string, vm: string): Promise<LaunchRecord | null> {
  return readRecordFile(join(recordsDir(stateDir, vm), LATEST_RECORD));
}
