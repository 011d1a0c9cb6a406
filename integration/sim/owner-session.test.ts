// Issue 14 item 3: the owner's keys reach the simulated platform the way a launch session carries
// them to a real one. `sevsup owner session` writes a SIMULATED session from the owner's TIK/TEK;
// the simulator launched with it measures under the owner's TIK (libvirt's validator agrees with the
// owner's key files, and the simulator made no keys of its own), and accepts a secret sealed with
// the owner's TEK; a session whose dh-cert does not bind it fails LAUNCH_START.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { HAVE_VALIDATOR, runValidator } from '../../test/support/validator.js';
import { argvFor, CMDLINE, KERNEL, missingPrerequisite, spec, TEST_FIRMWARE, useSimFixture } from './harness.js';

const missing = missingPrerequisite();
const run = promisify(execFile);
const BIN = new URL('../../bin/sevsup', import.meta.url).pathname;

describe.skipIf(missing !== null)(
  `owner keys through a simulated launch session${missing === null ? '' : ` (skipped: ${missing})`}`,
  () => {
    const f = useSimFixture();

    async function ownerSession(): Promise<{ tik: string; tek: string; dhCert: string; session: string }> {
      const tik = join(f.dir, 'owner.tik');
      const tek = join(f.dir, 'owner.tek');
      writeFileSync(tik, randomBytes(16));
      writeFileSync(tek, randomBytes(16));
      const out = join(f.dir, 'session');
      await run(BIN, ['owner', 'session', '--tik', tik, '--tek', tek, '--out', out]);
      return { tik, tek, dhCert: join(out, 'dh-cert'), session: join(out, 'session') };
    }

    it("measures under the owner's TIK and accepts a secret sealed with the owner's keys", async () => {
      const s = await ownerSession();
      f.launch(argvFor(spec({ launch: { dhCert: s.dhCert, session: s.session } }), f.p));
      const qmp = await f.connect();
      const { data } = (await qmp.ret('query-sev-launch-measure')) as { data: string };
      const { policy } = (await qmp.ret('query-sev')) as { policy: number };
      expect(existsSync(join(f.dir, 'sim-tik.bin'))).toBe(false);
      if (HAVE_VALIDATOR) {
        const args = {
          measurement: data,
          apiMajor: 1,
          apiMinor: 55,
          buildId: 21,
          policy,
          firmware: TEST_FIRMWARE,
          kernel: KERNEL,
          cmdline: CMDLINE,
          tik: s.tik,
          tek: s.tek,
        };
        expect(await runValidator(args)).toMatchObject({ exitCode: 0 });
      }
      const header = join(f.dir, 'h.b64');
      const payload = join(f.dir, 'p.b64');
      writeFileSync(join(f.dir, 'luks'), 'owner secret');
      await run(BIN, [
        'secret',
        'build',
        '--tik',
        s.tik,
        '--tek',
        s.tek,
        '--measurement',
        data,
        '--secret',
        `luks-key:${join(f.dir, 'luks')}`,
        '--header-out',
        header,
        '--payload-out',
        payload,
      ]);
      expect(
        await qmp.cmd('sev-inject-launch-secret', { 'packet-header': readFileSync(header, 'utf8'), secret: readFileSync(payload, 'utf8') }),
      ).toEqual({ return: {} });
    });

    it('fails LAUNCH_START when the dh-cert does not bind the session', async () => {
      const a = await ownerSession();
      const other = join(f.dir, 'other-dh-cert');
      writeFileSync(other, readFileSync(a.dhCert, 'utf8').replace(/session-sha256: .*/, `session-sha256: ${'0'.repeat(64)}`));
      const sim = f.launch(argvFor(spec({ launch: { dhCert: other, session: a.session } }), f.p));
      expect(await sim.exited).toEqual({ code: 1, signal: null });
      expect(sim.stderr).toContain("qemu-system-x86_64: sev_launch_start: LAUNCH_START ret=-5 fw_error=22 'Invalid param'\n");
      expect(sim.stderr).not.toMatch(/[0-9a-f]{32}/);
    });
  },
);
