// The order vitest hands test files to its workers. Vitest's own order (BaseSequencer) runs the
// files that took longest last time first, from its results cache; a fresh clone has no cache, so
// the files named in SLOWEST_FIRST go first there too: the Docker image suite (a cold image build,
// mostly downloads, ~2.5 min) and the demo (two whole demos) would otherwise start late and be
// the last worker still running while the others sit idle.
// Owns: that order. Must not: choose which files run.
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Path prefixes (from the checkout's root) of the files known to take longest, in order. */
const SLOWEST_FIRST = ['integration/docker/', 'integration/demo/'];

export default class SlowestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (spec: TestSpecification): number => {
      const path = spec.moduleId.slice(spec.project.config.root.length + 1);
      const index = SLOWEST_FIRST.findIndex((prefix) => path.startsWith(prefix));
      return index === -1 ? SLOWEST_FIRST.length : index;
    };
    // Array.prototype.sort is stable: within a rank, vitest's own order stays.
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}
