// Two projects: `unit` (pure modules and fakes on real sockets; no QEMU) and
// `integration` (real QEMU, the simulated platform, the daemon as a process).
// integration/sev/ is inside `integration` and skips itself visibly without /dev/sev.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
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
          // QEMU processes are heavy on a 2-core machine: run files one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
