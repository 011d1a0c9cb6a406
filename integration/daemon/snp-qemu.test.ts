// The daemon on the hardware platform refuses an SEV-SNP guest whose QEMU is older than 9.1 (here
// Debian 12's real 7.2) before spawning anything: the start fails with SUP_ERR_SEV_SNP_QEMU naming
// the version found and what to install, and no QEMU process ever mentions the test directory.
// Everything else would let QEMU start: host caps claiming SNP (the Genoa fixture), a firmware with
// SNP metadata and a KERNEL_HASHES section, a kernel. Without the check, 7.2 would be spawned and
// fail on the unknown sev-snp-guest object (SUP_ERR_LAUNCH_FAILED).
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KERNEL, REAL_QEMU, REPO, missingPrerequisite } from '../run/harness.js';
import { DEBIAN_OVMF, daemonScope, nothingLeft, processesMentioning } from './harness.js';

const missing = missingPrerequisite(REAL_QEMU, KERNEL, DEBIAN_OVMF);
const scope = daemonScope();
const GENOA_CAPS = join(REPO, 'test', 'fixtures', 'host-caps', 'proxmox-epyc-genoa.json');

describe.skipIf(missing !== null)(
  `sevsup daemon --platform hardware, SEV-SNP on QEMU 7.2${missing === null ? '' : ` (skipped: ${missing})`}`,
  () => {
    it('refuses the start with SUP_ERR_SEV_SNP_QEMU (version found, what to install); no QEMU is spawned', async () => {
      const dir = await scope.dir();
      const firmware = join(dir, 'snp.fd');
      execFileSync(process.execPath, [join(REPO, 'scripts', 'make-test-firmware.mjs'), DEBIAN_OVMF, firmware, '--snp', 'kernel-hashes'], {
        stdio: 'ignore',
      });
      await mkdir(join(dir, 'vms'), { recursive: true });
      const conf = [
        'memory: 256',
        'cores: 1',
        'cpu: EPYC-v4',
        'bios: ovmf',
        `firmware: ${firmware}`,
        `kernel: ${KERNEL}`,
        'cmdline: console=ttyS0',
        'serial: file',
        'amd-sev: type=snp,no-debug=1,kernel-hashes=1',
        `qemu: ${REAL_QEMU}`,
      ];
      await writeFile(join(dir, 'vms', 'snp1.conf'), `${conf.join('\n')}\n`);
      const daemon = scope.daemon(dir, ['--platform', 'hardware', '--host-caps', GENOA_CAPS, '--qemu', REAL_QEMU]);
      await daemon.start();

      const error = await daemon.api('POST', '/v1/vms/snp1/start').then(
        () => null,
        (e: unknown) => e,
      );
      const status = await daemon.waitState('snp1', ['failed']);
      expect(status.error?.code).toBe('SUP_ERR_SEV_SNP_QEMU');
      expect(status.error?.message).toMatch(
        new RegExp(
          `^SEV-SNP needs QEMU >= 9\\.1 \\(the sev-snp-guest object\\), but ${REAL_QEMU} is QEMU 7\\.2\\.\\d+ .*install QEMU 9\\.1 or newer`,
        ),
      );
      expect(error).toMatchObject({ code: 'SUP_ERR_SEV_SNP_QEMU' });
      expect(status.pid).toBeNull();
      expect(processesMentioning(dir).filter((p) => p.pid !== daemon.pid)).toEqual([]);
      // The daemon's own log says it too, and never that a QEMU was spawned.
      expect(daemon.output).toContain('SUP_ERR_SEV_SNP_QEMU');
      expect(daemon.output).not.toMatch(/"event":"spawned"/);

      daemon.signal('SIGTERM');
      expect(await daemon.exited()).toEqual({ code: 0, signal: null });
      expect(await nothingLeft(dir)).toEqual([]);
    });
  },
);
