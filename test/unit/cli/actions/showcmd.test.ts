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
import { AMDSEV_LIKE_IMAGE, DEBIAN_LIKE_IMAGE } from '../../../support/ovmf-images.js';

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
