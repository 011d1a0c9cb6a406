// `sevsup showcmd` through runCli: printed shapes (a POSIX shell reads back exactly the argv),
// --json, and the exit codes and messages of refusals. No QEMU is started.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatCommandLine } from '../../../../src/cli/actions/showcmd.js';
import { runCli } from '../../../../src/cli/main.js';
import { parseVmConfig } from '../../../../src/config/vm-config.js';
import { SIMULATED_HOST_CAPS } from '../../../../src/host/simulated.js';
import { buildQemuArgv } from '../../../../src/qemu/argv.js';
import { AMDSEV_LIKE_IMAGE, buildSnpImage, DEBIAN_LIKE_IMAGE } from '../../../support/ovmf-images.js';

const GENOA_CAPS = new URL('../../../fixtures/host-caps/proxmox-epyc-genoa.json', import.meta.url).pathname;

let dir: string;
const file = (name: string): string => join(dir, name);

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await runCli(['node', 'sevsup', ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

const CMDLINE = `console=ttyS0,115200 root="/dev/vda1" it's $HOME \`x\` a\\b`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-showcmd-'));
  await writeFile(file('amdsev.fd'), AMDSEV_LIKE_IMAGE);
  await writeFile(file('debian.fd'), DEBIAN_LIKE_IMAGE);
  await writeFile(file('vmlinuz'), 'kernel');
  await writeFile(
    file('web.conf'),
    [
      'amd_sev: type=es,nodbg=1,kernel-hashes=1',
      `firmware: ${file('amdsev.fd')}`,
      `kernel: ${file('vmlinuz')}`,
      `cmdline: ${CMDLINE}`,
      '',
    ].join('\n'),
  );
  await writeFile(
    file('hashes-debian.conf'),
    ['amd_sev: type=std,kernel-hashes=1', `firmware: ${file('debian.fd')}`, `kernel: ${file('vmlinuz')}`, ''].join('\n'),
  );
  await writeFile(file('plain.conf'), ['cpu: qemu64', ''].join('\n'));
  await writeFile(
    file('no-sev-caps.json'),
    JSON.stringify({ 'amd-sev': { cbitpos: 47, 'reduced-phys-bits': 1, 'sev-support': false, 'sev-support-es': false } }),
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('sevsup showcmd', () => {
  it('prints one option per line, and a shell reads back exactly the argv', async () => {
    const { code, stdout, stderr } = await cli('showcmd', file('web.conf'), '--platform', 'sim', '--run-dir', '/run/sv');
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const lines = stdout.split('\n');
    expect(lines[0]).toBe('qemu-system-x86_64 \\');
    expect(lines[1]).toBe('  -name guest=web,debug-threads=on \\');
    expect(lines.at(-2)).toBe('  -pidfile /run/sv/web/qemu.pid');
    expect(lines.at(-1)).toBe('');

    const spec = parseVmConfig(
      [
        'amd_sev: type=es,nodbg=1,kernel-hashes=1',
        `firmware: ${file('amdsev.fd')}`,
        `kernel: ${file('vmlinuz')}`,
        `cmdline: ${CMDLINE}`,
      ].join('\n'),
      file('web.conf'),
    );
    const argv = buildQemuArgv({
      spec,
      caps: SIMULATED_HOST_CAPS,
      paths: { monitorSocket: '/run/sv/web/private/monitor.sock', pidFile: '/run/sv/web/qemu.pid', serialLog: '/run/sv/web/serial.log' },
    });
    // Replace the binary with printf and let /bin/sh parse the rest.
    const script = `printf '%s\\0' ${stdout.slice(stdout.indexOf('\n') + 1)}`;
    const { stdout: words } = await execa('sh', ['-c', script], { stripFinalNewline: false });
    expect(words.split('\0').slice(0, -1)).toEqual(argv);
  });

  it('--json prints the argv as a JSON array, binary first', async () => {
    const { code, stdout } = await cli('showcmd', file('web.conf'), '--platform', 'sim', '--json', '--qemu', '/opt/q/qemu');
    expect(code).toBe(0);
    const printed = JSON.parse(stdout) as string[];
    expect(printed[0]).toBe('/opt/q/qemu');
    expect(printed).toContain(CMDLINE);
    expect(printed).toContain('{"qom-type":"sev-guest","id":"sev0","cbitpos":47,"reduced-phys-bits":1,"policy":13,"kernel-hashes":true}');
  });

  it('adds the sandbox and runas options when asked', async () => {
    const { stdout } = await cli('showcmd', file('plain.conf'), '--platform', 'sim', '--sandbox', '--runas', 'qemu-user');
    expect(stdout).toContain(
      '  -sandbox on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny \\\n  -runas qemu-user\n',
    );
  });

  it('refuses an SEV guest on a host whose capabilities say no SEV (exit 4)', async () => {
    const { code, stdout, stderr } = await cli('showcmd', file('web.conf'), '--host-caps', file('no-sev-caps.json'));
    expect({ code, stdout }).toEqual({ code: 4, stdout: '' });
    expect(stderr).toBe('sevsup: Your CPU does not support AMD SEV! [SUP_ERR_SEV_UNSUPPORTED]\n');
  });

  it('refuses kernel-hashes with a firmware whose hashes area QEMU rejects (exit 3)', async () => {
    const { code, stdout, stderr } = await cli('showcmd', file('hashes-debian.conf'), '--platform', 'sim');
    expect({ code, stdout }).toEqual({ code: 3, stdout: '' });
    expect(stderr).toBe(
      `sevsup: ${file('hashes-debian.conf')}: amd_sev: kernel-hashes=1, but QEMU would refuse the firmware ${file('debian.fd')}: ` +
        '"SEV: guest firmware hashes table area is invalid (base=0x0 size=0x0)"; use an OVMF AmdSev build ' +
        '(OvmfPkg/AmdSev/AmdSevX64.dsc; Debian ships none) and point the firmware key at it [SUP_ERR_FIRMWARE_NO_HASHES_AREA]\n',
    );
  });

  it("prints an SNP guest's sev-snp-guest object, with the files its line names read, when qemu: names QEMU >= 9.1", async () => {
    // A QEMU that only answers -version, as 10.0 does: showcmd asks nothing else (it starts nothing).
    const qemu = file('qemu-10');
    await writeFile(qemu, '#!/bin/sh\necho "QEMU emulator version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)"\n', { mode: 0o755 });
    await writeFile(
      file('snp.fd'),
      buildSnpImage({
        sections: [
          [0x800000, 0x1000, 1],
          [0x801000, 0x1000, 2],
          [0x802000, 0x1000, 3],
        ],
      }),
    );
    await writeFile(file('snp.idblock'), Buffer.alloc(96, 7).toString('base64'));
    await writeFile(file('snp.idauth'), Buffer.alloc(4096, 9));
    await writeFile(
      file('snp.conf'),
      [`qemu: ${qemu}`, `firmware: ${file('snp.fd')}`, 'amd-sev: type=snp,no-debug=1,id-block=snp.idblock,id-auth=snp.idauth', ''].join(
        '\n',
      ),
    );
    const { code, stdout, stderr } = await cli('showcmd', file('snp.conf'), '--json', '--host-caps', GENOA_CAPS, '--run-dir', '/run/sv');
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const argv = JSON.parse(stdout) as string[];
    expect(argv[0]).toBe(qemu);
    expect(argv[argv.indexOf('-machine') + 1]).toBe('q35,dump-guest-core=off,confidential-guest-support=sev0,smm=off');
    expect(JSON.parse(argv[argv.indexOf('-object') + 1] ?? '')).toEqual({
      'qom-type': 'sev-snp-guest',
      id: 'sev0',
      cbitpos: 51,
      'reduced-phys-bits': 1,
      policy: 0x30000,
      'id-block': Buffer.alloc(96, 7).toString('base64'),
      'id-auth': Buffer.alloc(4096, 9).toString('base64'),
    });
    expect(argv[argv.indexOf('-bios') + 1]).toBe(file('snp.fd'));

    // The same VM on Debian 12's QEMU 7.2 (no qemu: key): refused before anything else.
    await writeFile(file('snp72.conf'), [`firmware: ${file('snp.fd')}`, 'amd-sev: type=snp', ''].join('\n'));
    const old = await cli('showcmd', file('snp72.conf'), '--host-caps', GENOA_CAPS, '--qemu', file('qemu-7.2'));
    await writeFile(file('qemu-7.2'), '#!/bin/sh\necho "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"\n', {
      mode: 0o755,
    });
    const refused = await cli('showcmd', file('snp72.conf'), '--host-caps', GENOA_CAPS, '--qemu', file('qemu-7.2'));
    expect(old.stderr).toBe(`sevsup: QEMU ${file('qemu-7.2')} was not found; SEV-SNP needs QEMU >= 9.1 [SUP_ERR_SEV_SNP_QEMU]\n`);
    expect({ code: refused.code, stdout: refused.stdout }).toEqual({ code: old.code, stdout: '' });
    expect(refused.stderr).toBe(
      `sevsup: SEV-SNP needs QEMU >= 9.1 (the sev-snp-guest object), but ${file('qemu-7.2')} is QEMU 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3); ` +
        "install QEMU 9.1 or newer (Debian 13 trixie's qemu-system-x86 has 10.0) and name it with the VM config's 'qemu:' key " +
        "or the daemon's 'qemu:' key [SUP_ERR_SEV_SNP_QEMU]\n",
    );
  });

  it('says when there is no such VM (exit 9)', async () => {
    const { code, stderr } = await cli('showcmd', 'ghost', '--vm-dir', dir, '--platform', 'sim');
    expect(code).toBe(9);
    expect(stderr).toBe(`sevsup: no VM named 'ghost' (${file('ghost.conf')} does not exist) [SUP_ERR_VM_NOT_FOUND]\n`);
  });

  it('refuses an unknown platform as a usage error (exit 2)', async () => {
    const { code, stderr } = await cli('showcmd', 'web', '--platform', 'tcg');
    expect(code).toBe(2);
    expect(stderr).toContain("error: option '--platform <platform>' argument 'tcg' is invalid. Allowed choices are hardware, sim.");
  });
});

describe('formatCommandLine', () => {
  it('quotes what a shell would split or expand', () => {
    expect(formatCommandLine('qemu', [['-append', 'a b'], ['-S']])).toBe("qemu \\\n  -append 'a b' \\\n  -S\n");
  });
});
