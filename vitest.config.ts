// Two projects: `unit` (pure modules and fakes on real sockets; no QEMU) and
// `integration` (real QEMU, the simulated platform, the daemon as a process).
// integration/sev/ is inside `integration` and skips itself visibly without /dev/sev.
// Three files at a time, integration included: most of an integration file's time is waiting
// (QEMU starting, a daemon's deadlines, a Docker build's downloads), so on a 2-core machine three
// workers finish it in about two thirds of the time of one (measured without the Docker suite:
// 477 s → 305 s), and every file keeps its own directories, sockets and processes. The slowest
// files start first (test/setup/sequencer.ts).
import { defineConfig } from 'vitest/config';
import SlowestFirstSequencer from './test/setup/sequencer.js';

export default defineConfig({
  test: {
    maxWorkers: 3,
    sequence: { sequencer: SlowestFirstSequencer },
    setupFiles: ['test/setup/fail-on-warning.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['integration/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
