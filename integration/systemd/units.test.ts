// The shipped unit files pass `systemd-analyze verify` (with ExecStart pointed at this checkout's
// bin/sevsup, since verify wants the binary to exist) without a single warning, keep the settings
// the daemon's design depends on, and score "OK" in `systemd-analyze security --offline`.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const ANALYZE = '/usr/bin/systemd-analyze';
const UNITS = ['sevsup.service', 'sevsup-host-caps.service'] as const;
const INSTALLED_BIN = '/usr/local/bin/sevsup';

function unitText(name: string): string {
  return readFileSync(join(REPO, 'systemd', name), 'utf8');
}

/** `Key=value` lines of a unit (comments dropped), in order. */
function directives(name: string): string[] {
  return unitText(name)
    .split('\n')
    .filter((l) => /^[A-Za-z]+=/.test(l));
}

function analyze(args: readonly string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(ANALYZE, [...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, output: `${stdout}${stderr}` });
    });
  });
}

describe.skipIf(!existsSync(ANALYZE))('systemd units', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /** Copies of the units in a temp dir, ExecStart pointing at the checkout; `edit` may change them. */
  async function copies(edit: (name: string, text: string) => string = (_n, t) => t): Promise<string[]> {
    dir = await mkdtemp(join(tmpdir(), 'su-'));
    const paths: string[] = [];
    for (const name of UNITS) {
      const text = unitText(name);
      expect(text).toContain(`ExecStart=${INSTALLED_BIN} `);
      const path = join(dir, name);
      await writeFile(path, edit(name, text.replaceAll(INSTALLED_BIN, join(REPO, 'bin', 'sevsup'))));
      paths.push(path);
    }
    return paths;
  }

  it('systemd-analyze verify passes on both units with no warning', async () => {
    const result = await analyze(['verify', '--man=no', ...(await copies())]);
    expect(result).toEqual({ code: 0, output: '' });
  });

  it('verify would catch a broken unit (the check above can fail)', async () => {
    const paths = await copies((name, text) =>
      name === 'sevsup.service' ? text.replace('KillMode=process', 'KillMode=process\nLimitMEMLOCK=lots') : text,
    );
    const result = await analyze(['verify', '--man=no', ...paths]);
    expect(result.output).toContain('Failed to parse resource value, ignoring: lots');
  });

  it('sevsup.service keeps what the daemon depends on', () => {
    const d = directives('sevsup.service');
    expect(d).toEqual(
      expect.arrayContaining([
        'Type=notify',
        'NotifyAccess=main',
        `ExecStart=${INSTALLED_BIN} daemon`,
        'ExecReload=/bin/kill -HUP $MAINPID',
        'KillMode=process',
        'Restart=on-failure',
        'OOMPolicy=continue',
        'LimitMEMLOCK=infinity',
        'RuntimeDirectory=sevsup',
        'RuntimeDirectoryPreserve=yes',
        'StateDirectory=sevsup',
        'ProtectSystem=strict',
        'ReadWritePaths=/var/lib/sevsup /run/sevsup /var/cache/sevsup',
        'DevicePolicy=closed',
        'DeviceAllow=/dev/kvm rw',
        'DeviceAllow=/dev/sev rw',
        'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
        'NoNewPrivileges=yes',
        'ProtectHome=yes',
        'PrivateTmp=yes',
      ]),
    );
    expect(d.some((l) => l.startsWith('WatchdogSec='))).toBe(true);
    // These would break guests: hidden /dev/kvm, no JIT, guest RAM capped, guests killed on restart.
    for (const key of ['PrivateDevices=', 'MemoryDenyWriteExecute=', 'MemoryMax=', 'PrivateNetwork=']) {
      expect(d.filter((l) => l.startsWith(key))).toEqual([]);
    }
  });

  it("sevsup-host-caps.service is a oneshot before sevsup.service writing sevsup's own path", () => {
    const d = directives('sevsup-host-caps.service');
    expect(d).toEqual(
      expect.arrayContaining([
        'Type=oneshot',
        'RemainAfterExit=yes',
        'Before=sevsup.service',
        `ExecStart=${INSTALLED_BIN} host --write /run/sevsup/host-caps.json`,
        'DeviceAllow=/dev/kvm rw',
        'DeviceAllow=/dev/sev rw',
      ]),
    );
    expect(directives('sevsup.service')).toContain('Wants=sevsup-host-caps.service');
  });

  it.each(UNITS)('systemd-analyze security rates %s OK or better', async (name) => {
    const result = await analyze(['security', '--offline=true', '--no-pager', join(REPO, 'systemd', name)]);
    const m = /Overall exposure level for \S+: (\d+\.\d) (\w+)/.exec(result.output);
    expect(m, result.output.slice(-500)).not.toBeNull();
    expect(Number(m?.[1])).toBeLessThan(5);
  });
});
