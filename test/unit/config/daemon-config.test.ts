// The daemon config: file and flags, defaults, precedence (flags win), every key's value rules with
// exact messages, and the missing-file rule (the default may be absent, an explicit one may not).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DAEMON_DEFAULTS,
  DAEMON_KEYS,
  loadDaemonConfig,
  parseDaemonConfig,
  resolveDaemonConfig,
} from '../../../src/config/daemon-config.js';
import { DAEMON_KEY_DOCS } from '../../../src/config/daemon-keys.js';
import { catchSupervisorError as errorOf, catchSupervisorErrorAsync as asyncErrorOf } from '../../support/catch-error.js';

const FILE = '/etc/sevsup/sevsup.conf';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sdc-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('parseDaemonConfig', () => {
  it('reads every key', () => {
    const text = [
      '# sevsup daemon',
      'vm-dir: /srv/vms',
      'run-dir: /run/x',
      'state-dir: /var/lib/x',
      'socket: /run/x/api.sock',
      'socket-group: sevsup',
      'qemu: qemu-system-x86_64',
      'qemu-sandbox: yes',
      'qemu-user: sevsup-qemu',
      'platform: sim',
      'host-caps: /run/qemu-server/hw-params.json',
      'log-level: debug',
      'log-format: pretty',
      'default-firmware: /usr/share/ovmf/OVMF.amdsev.fd',
      'hold-timeout: 120',
      'snp-first-run-window: 500',
      'on-shutdown: shutdown',
      'powerdown-timeout: 0',
      'refuse-debug-policy: 1',
      'metrics-listen: 127.0.0.1:9464',
      'snp-certs: on',
      'snp-platform: snp-platform',
      'snp-cert-cache: /srv/snp-certs',
      'snp-certs-offline: yes',
      'snp-ark: /etc/sevsup/ark.pem',
      'kds-url: http://127.0.0.1:8080/',
      'snp-certs-refresh: 60',
      'host-id: node-7.rack2',
    ].join('\n');
    const settings = parseDaemonConfig(text, FILE);
    expect(Object.keys(settings).sort()).toEqual([...DAEMON_KEYS].sort());
    expect(resolveDaemonConfig(settings, { where: FILE, baseDir: '/etc/sevsup' }, {})).toEqual({
      vmDir: '/srv/vms',
      runDir: '/run/x',
      stateDir: '/var/lib/x',
      socket: '/run/x/api.sock',
      socketGroup: 'sevsup',
      qemu: 'qemu-system-x86_64',
      qemuSandbox: true,
      qemuUser: 'sevsup-qemu',
      platform: 'sim',
      hostCaps: '/run/qemu-server/hw-params.json',
      logLevel: 'debug',
      logFormat: 'pretty',
      defaultFirmware: '/usr/share/ovmf/OVMF.amdsev.fd',
      holdTimeout: 120,
      snpFirstRunWindowMs: 500,
      onShutdown: 'shutdown',
      powerdownTimeout: 0,
      refuseDebugPolicy: true,
      metricsListen: '127.0.0.1:9464',
      snpCerts: 'on',
      snpPlatform: '/etc/sevsup/snp-platform',
      snpCertCache: '/srv/snp-certs',
      snpCertsOffline: true,
      snpArk: '/etc/sevsup/ark.pem',
      kdsUrl: 'http://127.0.0.1:8080',
      snpCertsRefresh: 60,
      hostId: 'node-7.rack2',
    });
  });

  it.each([
    [
      'a host-id with a space',
      'host-id: node 7',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: host-id: 'node 7' is not a host id (1 to 253 letters, digits, '.', '_', '-')`,
    ],
    [
      'a qemu-sandbox that is not a boolean',
      'qemu-sandbox: maybe',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: qemu-sandbox: 'maybe' must be a boolean (1, 0, yes, no, on, off, true, false)`,
    ],
    [
      'an unknown key, with a suggestion',
      'vmdir: /x',
      'SUP_ERR_CONFIG_UNKNOWN_KEY',
      `${FILE}:1: unknown key 'vmdir' (did you mean 'vm-dir'?)`,
    ],
    [
      'a duplicate key',
      'platform: sim\nplatform: hardware',
      'SUP_ERR_CONFIG_DUPLICATE_KEY',
      `${FILE}:2: duplicate key 'platform' (first set at line 1); keep one of them`,
    ],
    ['a bad platform', 'platform: kvm', 'SUP_ERR_CONFIG_BAD_VALUE', `${FILE}:1: platform: 'kvm' must be one of hardware, sim`],
    ['a bad on-shutdown', 'on-shutdown: stop', 'SUP_ERR_CONFIG_BAD_VALUE', `${FILE}:1: on-shutdown: 'stop' must be one of keep, shutdown`],
    ['a bad log format', 'log-format: text', 'SUP_ERR_CONFIG_BAD_VALUE', `${FILE}:1: log-format: 'text' must be one of json, pretty`],
    [
      'hold-timeout zero',
      'hold-timeout: 0',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: hold-timeout: '0' must be whole seconds from 1 to 86400`,
    ],
    [
      'hold-timeout in ms',
      'hold-timeout: 600000',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: hold-timeout: '600000' must be whole seconds from 1 to 86400`,
    ],
    [
      'powerdown-timeout in ms',
      'powerdown-timeout: 30000',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: powerdown-timeout: '30000' must be whole seconds from 0 to 3600`,
    ],
    [
      'an SNP first-run window of zero (no check at all)',
      'snp-first-run-window: 0',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: snp-first-run-window: '0' must be whole milliseconds from 100 to 60000`,
    ],
    [
      'an SNP first-run window in seconds',
      'snp-first-run-window: 3s',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: snp-first-run-window: '3s' must be whole milliseconds from 100 to 60000`,
    ],
    [
      'an SNP first-run window above a minute',
      'snp-first-run-window: 3000000',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: snp-first-run-window: '3000000' must be whole milliseconds from 100 to 60000`,
    ],
    [
      'metrics on all interfaces',
      'metrics-listen: 0.0.0.0:9464',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: metrics-listen: '0.0.0.0:9464' must be 127.0.0.1:PORT (metrics are served on loopback only; put a proxy in front for remote scrapes)`,
    ],
    [
      'a metrics port above 65535',
      'metrics-listen: 127.0.0.1:70000',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: metrics-listen: '127.0.0.1:70000' must be 127.0.0.1:PORT (metrics are served on loopback only; put a proxy in front for remote scrapes)`,
    ],
    ['a bad snp-certs mode', 'snp-certs: yes', 'SUP_ERR_CONFIG_BAD_VALUE', `${FILE}:1: snp-certs: 'yes' must be one of on, off, auto`],
    [
      'a key server URL that is not http(s)',
      'kds-url: ftp://kds.example',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: kds-url: 'ftp://kds.example' must be an http:// or https:// URL`,
    ],
    [
      'a key server URL with credentials',
      'kds-url: https://u:p@kds.example',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: kds-url: 'https://u:p@kds.example' must not carry credentials`,
    ],
    [
      'a key server URL that is no URL',
      'kds-url: kdsintf',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: kds-url: 'kdsintf' is not a URL (e.g. https://kdsintf.amd.com)`,
    ],
    [
      'a refresh of zero seconds',
      'snp-certs-refresh: 0',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: snp-certs-refresh: '0' must be whole seconds from 1 to 86400`,
    ],
    [
      'snp-certs-offline that is not a boolean',
      'snp-certs-offline: sometimes',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: snp-certs-offline: 'sometimes' must be a boolean (1, 0, yes, no, on, off, true, false)`,
    ],
    [
      'a group with a slash',
      'socket-group: a/b',
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: socket-group: 'a/b' is not a group name or numeric gid`,
    ],
  ])('refuses %s', (_name, text, code, message) => {
    expect(errorOf(() => parseDaemonConfig(text, FILE))).toMatchObject({ code, message });
  });

  it('resolves relative paths against the config file directory', () => {
    const settings = parseDaemonConfig('vm-dir: vms\nqemu: ./bin/qemu', FILE);
    const config = resolveDaemonConfig(settings, { where: FILE, baseDir: '/etc/sevsup' }, {});
    expect(config).toMatchObject({ vmDir: '/etc/sevsup/vms', qemu: '/etc/sevsup/bin/qemu' });
  });
});

describe('resolveDaemonConfig', () => {
  it('defaults when nothing is given', () => {
    expect(resolveDaemonConfig({}, null, {})).toEqual(DAEMON_DEFAULTS);
    expect(DAEMON_DEFAULTS).toMatchObject({
      socket: '/run/sevsup/sevsup.sock',
      onShutdown: 'keep',
      platform: 'hardware',
      holdTimeout: 600,
      snpFirstRunWindowMs: 3000,
    });
  });

  it('lets flags win over the file, naming the flag in errors', () => {
    const config = resolveDaemonConfig(
      { platform: 'hardware', 'log-level': 'warn' },
      { where: FILE, baseDir: '/etc' },
      { platform: 'sim' },
      '/home/op',
    );
    expect(config).toMatchObject({ platform: 'sim', logLevel: 'warn' });
    expect(errorOf(() => resolveDaemonConfig({}, null, { 'hold-timeout': 'soon' }))).toMatchObject({
      code: 'SUP_ERR_CONFIG_BAD_VALUE',
      message: "--hold-timeout: 'soon' must be whole seconds from 1 to 86400",
    });
    expect(resolveDaemonConfig({}, null, { 'run-dir': 'run' }, '/home/op').runDir).toBe('/home/op/run');
    expect(resolveDaemonConfig({ 'snp-first-run-window': '5000' }, null, { 'snp-first-run-window': '100' }).snpFirstRunWindowMs).toBe(100);
  });
});

describe('loadDaemonConfig', () => {
  it('is fine without the default file', async () => {
    const config = await loadDaemonConfig({ defaultFile: join(dir, 'absent.conf'), flags: { platform: 'sim' } });
    expect(config).toEqual({ ...DAEMON_DEFAULTS, platform: 'sim' });
  });

  it('refuses a missing explicit file', async () => {
    const file = join(dir, 'missing.conf');
    expect(await asyncErrorOf(() => loadDaemonConfig({ file }))).toMatchObject({
      code: 'SUP_ERR_CONFIG_READ',
      message: `cannot read config file ${file}: no such file`,
    });
  });

  it('reads the file and applies the flags over it', async () => {
    const file = join(dir, 'sevsup.conf');
    await writeFile(file, 'platform: sim\non-shutdown: shutdown\nvm-dir: vms\n');
    const config = await loadDaemonConfig({ file, flags: { 'on-shutdown': 'keep' } });
    expect(config).toMatchObject({ platform: 'sim', onShutdown: 'keep', vmDir: join(dir, 'vms') });
  });

  it('refuses a file that is not UTF-8', async () => {
    const file = join(dir, 'latin1.conf');
    await writeFile(file, Buffer.from([0x76, 0x6d, 0x2d, 0x64, 0x69, 0x72, 0x3a, 0x20, 0xe9, 0x0a]));
    expect(await asyncErrorOf(() => loadDaemonConfig({ file }))).toMatchObject({
      code: 'SUP_ERR_CONFIG_READ',
      message: `cannot read config file ${file}: it is not valid UTF-8 text`,
    });
  });
});

describe('daemon keys', () => {
  it('documents every key as a flag', () => {
    expect(DAEMON_KEY_DOCS.map((d) => d.key)).toEqual([...DAEMON_KEYS]);
    for (const doc of DAEMON_KEY_DOCS) expect(doc.help).not.toBe('');
  });
});
