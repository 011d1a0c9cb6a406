// The one call site of the SEV-SNP QEMU rule for `sevsup run` and the daemon: superviseGuest puts
// requireQemuForSnp in front of the lifecycle's preflight on the hardware platform only. Real
// lifecycles over Debian's QEMU 7.2 (and a small fake binary claiming 10.0); the launcher and the
// preflight are spies, so "nothing was spawned, no file was read" is asserted, not assumed.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadVmConfig } from '../../../src/config/vm-config.js';
import type { VmSpec } from '../../../src/config/vm-spec.js';
import { preflightSpy, startSupervised } from '../../support/supervised-start.js';
import { isSupervisorError, type SupervisorError } from '../../../src/errors.js';
import { preflightWithQemuCheck } from '../../../src/guest/qemu-check.js';

const REAL_QEMU = '/usr/bin/qemu-system-x86_64';
const dir = mkdtempSync(join(tmpdir(), 'supervised-qemu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The VM as the real config loader makes it from `amd-sev: …` (or none). */
async function spec(sev: string | null): Promise<VmSpec> {
  const sub = join(dir, String(n++));
  mkdirSync(sub);
  const file = join(sub, 'vm1.conf');
  writeFileSync(file, ['memory: 256', 'bios: ovmf', ...(sev === null ? [] : [`amd-sev: ${sev}`])].join('\n') + '\n');
  return loadVmConfig(file);
}
let n = 0;
const SNP = 'type=snp,no-debug=1';

/** A fake QEMU whose -version says `line`. */
function fakeQemu(name: string, line: string): string {
  const file = join(dir, name);
  writeFileSync(file, `#!/bin/sh\necho '${line}'\n`);
  chmodSync(file, 0o755);
  return file;
}

describe.skipIf(!existsSync(REAL_QEMU))('superviseGuest: the SEV-SNP QEMU rule', () => {
  it('hardware + SNP on QEMU 7.2: start fails with SUP_ERR_SEV_SNP_QEMU before preflight or spawn', async () => {
    const spy = preflightSpy();
    const { error, launches, state } = await startSupervised({
      spec: await spec(SNP),
      platform: 'hardware',
      binary: REAL_QEMU,
      dir,
      preflight: spy.preflight,
    });
    expect(isSupervisorError(error) && error.code).toBe('SUP_ERR_SEV_SNP_QEMU');
    const message = (error as SupervisorError).message;
    expect(message).toMatch(/^SEV-SNP needs QEMU >= 9\.1 \(the sev-snp-guest object\), but \/usr\/bin\/qemu-system-x86_64 is QEMU 7\.2\./);
    expect(message).toContain('install QEMU 9.1 or newer');
    expect(spy.calls).toEqual([]);
    expect(launches).toBe(0);
    expect(state).toBe('failed');
  });

  it('hardware + SNP on a QEMU >= 9.1 goes on to preflight', async () => {
    const spy = preflightSpy();
    const check = preflightWithQemuCheck('hardware', fakeQemu('qemu10', 'QEMU emulator version 10.0.2'), spy.preflight);
    await expect(check(await spec(SNP))).rejects.toMatchObject({ code: 'SUP_ERR_KERNEL_READ' });
    expect(spy.calls).toEqual(['vm1']);
  });

  it('the simulated platform is not checked (it stands in for QEMU 10 over Debian 7.2), nor SEV or plain guests', async () => {
    const spy = preflightSpy();
    expect(preflightWithQemuCheck('simulated', REAL_QEMU, spy.preflight)).toBe(spy.preflight);
    const hw = preflightWithQemuCheck('hardware', REAL_QEMU, spy.preflight);
    await expect(hw(await spec('type=std,nodbg=1'))).rejects.toMatchObject({ code: 'SUP_ERR_KERNEL_READ' });
    await expect(hw(await spec(null))).rejects.toMatchObject({ code: 'SUP_ERR_KERNEL_READ' });
    expect(spy.calls).toEqual(['vm1', 'vm1']);
  });
});
