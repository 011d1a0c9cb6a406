// `sevsup run`'s option refusals that come before anything is launched: the SNP first-run window
// (range, and only for an SNP guest). No QEMU is started: each refusal precedes platform selection.
import { describe, expect, it } from 'vitest';
import { runCliCaptured } from '../../../support/run-cli.js';

const PLAIN = new URL('../../../../examples/vms/plain.conf', import.meta.url).pathname;
const SEV = new URL('../../../../examples/vms/demo-sev.conf', import.meta.url).pathname;

describe('sevsup run --snp-first-run-window', () => {
  it.each([
    ['0', 'no check at all'],
    ['99', 'below the floor'],
    ['60001', 'above a minute'],
    ['3s', 'not whole milliseconds'],
  ])('refuses %s (%s) with the bounds', async (value) => {
    const r = await runCliCaptured('run', '--platform', 'sim', '--snp-first-run-window', value, PLAIN);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`--snp-first-run-window must be a whole number from 100 to 60000, got '${value}'`);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it.each([
    ['a guest without SEV', PLAIN, 'plain'],
    ['an SEV guest', SEV, 'demo-sev'],
  ])('refuses a window for %s: it applies only to an SNP guest', async (_n, conf, vm) => {
    const r = await runCliCaptured('run', '--platform', 'sim', '--snp-first-run-window', '500', conf);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`VM ${vm} is not an SEV-SNP guest: --snp-first-run-window applies only to an SNP guest's first run`);
  });
});
