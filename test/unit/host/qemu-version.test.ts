// QEMU's version, read once per binary, and the SEV-SNP rule (QEMU >= 9.1) with what was found and
// what to install; against the real Debian QEMU where installed and small fake binaries.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hasCode, isSupervisorError } from '../../../src/errors.js';
import { parseQemuVersion, qemuSnpProblem, readQemuVersion, requireQemuForSnp } from '../../../src/host/qemu-version.js';
import { runCliCaptured } from '../../support/run-cli.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qemu-version-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const REAL_QEMU = '/usr/bin/qemu-system-x86_64';

/** A fake QEMU that prints `line` for -version and counts its runs in `<name>.runs`. */
function fakeQemu(name: string, line: string): string {
  const file = path.join(dir, name);
  writeFileSync(
    file,
    `#!/bin/sh\necho run >> '${file}.runs'\necho '${line}'\necho 'Copyright (c) 2003-2025 Fabrice Bellard and the QEMU Project developers'\n`,
  );
  chmodSync(file, 0o755);
  return file;
}

describe('QEMU version', () => {
  it('parses -version lines', () => {
    expect(parseQemuVersion('QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)\nCopyright')).toEqual({
      major: 7,
      minor: 2,
      micro: 19,
      text: '7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)',
    });
    expect(parseQemuVersion('QEMU emulator version 10.0.2')).toMatchObject({ major: 10, minor: 0, micro: 2 });
    expect(parseQemuVersion('QEMU emulator version 9.1')).toMatchObject({ major: 9, minor: 1, micro: 0 });
    expect(parseQemuVersion('something else')).toBeNull();
  });

  it('the SNP rule: 9.1 and later pass; older ones are refused with the version and what to install', () => {
    expect(qemuSnpProblem('/q', parseQemuVersion('QEMU emulator version 9.1.0'))).toBeNull();
    expect(qemuSnpProblem('/q', parseQemuVersion('QEMU emulator version 10.0.2'))).toBeNull();
    expect(qemuSnpProblem('/usr/bin/qemu-system-x86_64', parseQemuVersion('QEMU emulator version 9.0.4'))).toBe(
      'SEV-SNP needs QEMU >= 9.1 (the sev-snp-guest object), but /usr/bin/qemu-system-x86_64 is QEMU 9.0.4; install QEMU 9.1 or newer ' +
        "(Debian 13 trixie's qemu-system-x86 has 10.0) and name it with the VM config's 'qemu:' key or the daemon's 'qemu:' key",
    );
  });

  it('asks a binary once (cached by path and mtime)', async () => {
    const q = fakeQemu('qemu-ten', 'QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)');
    await requireQemuForSnp(q);
    await requireQemuForSnp(q);
    expect((await readQemuVersion(q))?.version?.text).toBe('10.0.2 (Debian 1:10.0.2+ds-2)');
    expect(readFileSync(`${q}.runs`, 'utf8')).toBe('run\n');
  });

  it.runIf(existsSync(REAL_QEMU))("refuses SNP on Debian 12's real QEMU 7.2, saying so", async () => {
    let caught: unknown;
    try {
      await requireQemuForSnp(REAL_QEMU);
    } catch (error) {
      caught = error;
    }
    expect(hasCode(caught, 'SUP_ERR_SEV_SNP_QEMU')).toBe(true);
    expect(isSupervisorError(caught) && caught.message).toMatch(
      /^SEV-SNP needs QEMU >= 9\.1 \(the sev-snp-guest object\), but \/usr\/bin\/qemu-system-x86_64 is QEMU 7\.2\./,
    );
  });

  it('a missing binary is refused too', async () => {
    await expect(requireQemuForSnp(path.join(dir, 'nope'))).rejects.toMatchObject({ code: 'SUP_ERR_SEV_SNP_QEMU' });
  });

  it("sevsup showcmd takes the VM's qemu: key and refuses SNP on an old QEMU before anything else", async () => {
    const old = fakeQemu('qemu-old', 'QEMU emulator version 8.2.2');
    const conf = path.join(dir, 'snp.conf');
    writeFileSync(conf, `amd-sev: type=snp,no-debug=1\nqemu: ${old}\nfirmware: /nonexistent.fd\n`);
    const r = await runCliCaptured('showcmd', conf, '--host-caps', path.join(dir, 'none.json'));
    expect(r.code).toBe(4);
    expect(r.err).toContain(`SEV-SNP needs QEMU >= 9.1 (the sev-snp-guest object), but ${old} is QEMU 8.2.2;`);
    expect(r.err).toContain('[SUP_ERR_SEV_SNP_QEMU]');
  });
});
