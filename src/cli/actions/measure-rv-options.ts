// The reference-values options of `sevsup measure` (--mode snp --reference-values), listed once for
// both refusals: outside --mode snp (actions/measure.ts) and without --reference-values
// (actions/measure-snp.ts). Must not: import anything but types (SEV measure stays lean).
import type { MeasureCliOptions } from '../commands/measure.js';

/** The reference-values options of `measure`, as [flag, value] for the refusal of misuse. */
export function referenceValueOptions(o: MeasureCliOptions): [string, unknown][] {
  return (
    [
      ['--policy', o.policy],
      ['--host-data', o.hostData],
      ['--id-key-digest', o.idKeyDigest],
      ['--author-key-digest', o.authorKeyDigest],
      ['--min-tcb', o.minTcb],
      ['--min-guest-svn', o.minGuestSvn],
      ['--vmpl', o.vmpl],
    ] as [string, unknown][]
  ).filter(([, v]) => v !== undefined);
}
