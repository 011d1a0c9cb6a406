// The owner service's config: the service section, [guest HOST/VM] sections, every value rule and
// its file:line:key message, relative paths, and what is refused for SNP guests.
import { describe, expect, it } from 'vitest';
import { parseOwnerConfig, type SevGuestConfig, type SnpGuestConfig } from '../../../src/attestation/owner-config.js';
import { catchSupervisorError } from '../../support/catch-error.js';

const FILE = '/etc/owner/owner.conf';
const SERVICE = ['listen: 127.0.0.1:0', 'tls-cert: server.pem', 'tls-key: /k/server.key', 'client-ca: ca.pem', 'state-file: state.json'];
const SEV = ['[guest node-7/web1]', 'type: sev', 'firmware: OVMF.fd', 'policy: 0x1,0x3', 'tik: web1.tik'];
const conf = (...lines: string[]): string => `${lines.join('\n')}\n`;

describe('parseOwnerConfig', () => {
  it('reads the service section with defaults and resolves paths against the config file', () => {
    const c = parseOwnerConfig(conf(...SERVICE, '', ...SEV), FILE);
    expect(c).toMatchObject({
      listen: { host: '127.0.0.1', port: 0 },
      path: '/attest',
      tlsCert: '/etc/owner/server.pem',
      tlsKey: '/k/server.key',
      clientCa: '/etc/owner/ca.pem',
      tokens: [],
      stateFile: '/etc/owner/state.json',
      maxConnections: 64,
      maxConnectionsPerPeer: 8,
      maxAnsweredPerGuest: 1000,
      requestTimeoutSeconds: 10,
      // Default deny: no scraper named, no metrics (hosts never read them).
      metrics: null,
    });
    const g = c.guests[0] as SevGuestConfig;
    expect(g).toMatchObject({
      host: 'node-7',
      vm: 'web1',
      type: 'sev',
      policies: [1, 3],
      tik: '/etc/owner/web1.tik',
      tek: null,
      secrets: [],
      minApi: null,
      buildIds: null,
      line: 7,
    });
    expect(g.reference).toMatchObject({ kind: 'inputs', firmware: '/etc/owner/OVMF.fd', kernel: null, vcpus: null });
  });

  it('metrics are for a named scraper only: metrics-client CNs and/or metrics-token; metrics: on alone is refused', () => {
    const c = parseOwnerConfig(
      conf(
        ...SERVICE,
        'metrics-client: prometheus',
        'metrics-client: vmagent',
        'metrics-token: scrape.token',
        'max-connections-per-peer: 4',
        'max-answered: 50',
        ...SEV,
      ),
      FILE,
    );
    expect(c).toMatchObject({
      metrics: { clients: ['prometheus', 'vmagent'], tokenFile: '/etc/owner/scrape.token' },
      maxConnectionsPerPeer: 4,
      maxAnsweredPerGuest: 50,
    });
    expect(parseOwnerConfig(conf(...SERVICE, 'metrics: off', 'metrics-client: prometheus', ...SEV), FILE).metrics).toBeNull();
    expect(catchSupervisorError(() => parseOwnerConfig(conf(...SERVICE, 'metrics: on', ...SEV), FILE)).message).toBe(
      `${FILE}:6: metrics: metrics are for a scraper, not for hosts: name it with metrics-client: CN and/or metrics-token: FILE`,
    );
    const noCa = SERVICE.filter((l) => !l.startsWith('client-ca'));
    expect(
      catchSupervisorError(() => parseOwnerConfig(conf(...noCa, 'token: node-7:t7', 'metrics-client: prometheus', ...SEV), FILE)).message,
    ).toContain('metrics-client: needs client-ca');
    expect(
      catchSupervisorError(() => parseOwnerConfig(conf(...SERVICE, 'token: node-7:t7', 'metrics-client: node-7', ...SEV), FILE)).message,
    ).toContain('node-7 is a host (it has a token); a scraper needs an identity of its own');
    expect(catchSupervisorError(() => parseOwnerConfig(conf(...SERVICE, 'max-connections-per-peer: 0', ...SEV), FILE)).message).toContain(
      'max-connections-per-peer: expected an integer from 1 to 65535',
    );
  });

  it('reads an SEV-ES guest with inputs, limits and secrets, and tokens', () => {
    const c = parseOwnerConfig(
      conf(
        'listen: [::1]:8443',
        ...SERVICE.filter((l) => !l.startsWith('client-ca') && !l.startsWith('listen')),
        'token: node-7:tokens/node-7',
        'token: node-8:/t/8',
        '[guest node-7/db]',
        'type: sev-es',
        'firmware: /fw',
        'kernel: /k',
        'initrd: /i',
        'cmdline: console=ttyS0 root=/dev/vda # not a comment',
        'vcpus: 4',
        'cpu: EPYC-Milan',
        'policy: 5',
        'min-api: 0.24',
        'build-ids: 10, 12',
        'tik: /t',
        'tek: /e',
        'secret: luks-key:/s/luks',
        'secret: e6f5a162-d67f-4750-a67c-5d065f2a9910:/s/other',
      ),
      FILE,
    );
    expect(c.listen).toEqual({ host: '::1', port: 8443 });
    expect(c.tokens).toEqual([
      { host: 'node-7', file: '/etc/owner/tokens/node-7', line: 5 },
      { host: 'node-8', file: '/t/8', line: 6 },
    ]);
    const g = c.guests[0] as SevGuestConfig;
    expect(g.reference).toMatchObject({
      kind: 'inputs',
      cmdline: 'console=ttyS0 root=/dev/vda # not a comment',
      vcpus: 4,
      cpu: { family: 25, model: 1, stepping: 1 },
      vmsaInit: 'legacy',
    });
    expect(g.minApi).toEqual({ major: 0, minor: 24 });
    expect(g.buildIds).toEqual([10, 12]);
    expect(g.secrets).toEqual([
      { guid: '736869e5-84f0-4973-92ec-06879ce3da0b', path: '/s/luks' },
      { guid: 'e6f5a162-d67f-4750-a67c-5d065f2a9910', path: '/s/other' },
    ]);
  });

  it('reads an expected digest and an SNP guest', () => {
    const c = parseOwnerConfig(
      conf(
        ...SERVICE,
        ...SEV.filter((l) => !l.startsWith('firmware')),
        `expected-digest: ${'ab'.repeat(32)}`,
        '[guest node-7/snp1]',
        'type: snp',
        `snp-digest: ${'cd'.repeat(48)}`,
        'snp-policy: 0x30000',
        `host-data: ${'01'.repeat(32)}`,
      ),
      FILE,
    );
    expect((c.guests[0] as SevGuestConfig).reference).toEqual({ kind: 'digest', digest: Buffer.alloc(32, 0xab) });
    const snp = c.guests[1] as SnpGuestConfig;
    expect(snp).toMatchObject({ type: 'snp', policy: 0x30000n, hostData: Buffer.alloc(32, 1), idKeyDigest: null });
    expect(snp.digest).toEqual(Buffer.alloc(48, 0xcd));
  });

  const cases: readonly [string, string, string, string][] = [
    [
      'unknown service key',
      conf('lisen: 1.2.3.4:1', ...SERVICE, ...SEV),
      'SUP_ERR_CONFIG_UNKNOWN_KEY',
      `${FILE}:1: unknown key 'lisen' (did you mean 'listen'?) (guest keys go under a [guest HOST/VM] header)`,
    ],
    [
      'unknown guest key',
      conf(...SERVICE, ...SEV, 'kernal: /k'),
      'SUP_ERR_CONFIG_UNKNOWN_KEY',
      `${FILE}:11: unknown key 'kernal' (did you mean 'kernel'?)`,
    ],
    [
      'duplicate key',
      conf(...SERVICE, ...SEV, 'tik: /x'),
      'SUP_ERR_CONFIG_DUPLICATE_KEY',
      `${FILE}:11: duplicate key 'tik' (first set at line 10); keep one of them`,
    ],
    [
      'bad header',
      conf(...SERVICE, '[guest web1]', 'type: sev'),
      'SUP_ERR_CONFIG_SYNTAX',
      `${FILE}:6: '[guest web1]' is not a section header: write [guest HOST/VM] (letters, digits, '.', '_', '-')`,
    ],
    [
      'guest twice',
      conf(...SERVICE, ...SEV, ...SEV),
      'SUP_ERR_CONFIG_DUPLICATE_KEY',
      `${FILE}:11: [guest node-7/web1] is already defined at line 6`,
    ],
    [
      'no auth',
      conf(...SERVICE.filter((l) => !l.startsWith('client-ca')), ...SEV),
      'SUP_ERR_CONFIG_MISSING_KEY',
      `${FILE}:1: client-ca or token is required to identify hosts: mutual TLS (client-ca), bearer tokens (token: HOST:FILE), or both`,
    ],
    ['no guests', conf(...SERVICE), 'SUP_ERR_CONFIG_MISSING_KEY', `${FILE}:1: [guest HOST/VM] is required : at least one guest section`],
    [
      'bad listen',
      conf('listen: localhost', ...SERVICE.slice(1), ...SEV),
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:1: listen: expected HOST:PORT, e.g. 127.0.0.1:8443 or [::1]:8443 (port 0: any free port)`,
    ],
    [
      'bad token',
      conf(...SERVICE, 'token: /no-host', ...SEV),
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:6: token: expected HOST:TOKEN-FILE (the file holds that host's bearer token)`,
    ],
    [
      'policy not ES',
      conf(...SERVICE, ...SEV.map((l) => (l === 'type: sev' ? 'type: sev-es' : l))),
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:9: policy: policy 0x1 lacks the ES bit (0x4) but the guest's type is sev-es`,
    ],
    [
      'bad policy number',
      conf(...SERVICE, ...SEV.map((l) => (l.startsWith('policy') ? 'policy: 1,x' : l))),
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:9: policy: 'x' is not a number from 0 to 4294967295 (0x-hex or decimal; a comma-separated list)`,
    ],
    [
      'no tik',
      conf(...SERVICE, ...SEV.slice(0, 4)),
      'SUP_ERR_CONFIG_MISSING_KEY',
      `${FILE}:6: tik is required in [guest node-7/web1]: the owner's TIK file (16 bytes) of this guest's launch session`,
    ],
    [
      'secret without tek',
      conf(...SERVICE, ...SEV, 'secret: luks-key:/s'),
      'SUP_ERR_CONFIG_MISSING_KEY',
      `${FILE}:6: tek is required in [guest node-7/web1]: secrets are encrypted under the owner's TEK`,
    ],
    [
      'bad secret alias',
      conf(...SERVICE, ...SEV, 'tek: /e', 'secret: luks:/s'),
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:12: secret: "luks" is neither a GUID nor a known alias (luks-key)`,
    ],
    [
      'digest and inputs',
      conf(...SERVICE, ...SEV, `expected-digest: ${'00'.repeat(32)}`),
      'SUP_ERR_CONFIG_CONFLICT',
      `${FILE}:8: firmware: give either expected-digest (line 11) or the launch inputs, not both`,
    ],
    [
      'ES without vcpus',
      conf(...SERVICE, '[guest h/v]', 'type: sev-es', 'firmware: /f', 'policy: 5', 'tik: /t'),
      'SUP_ERR_CONFIG_MISSING_KEY',
      `${FILE}:6: vcpus is required in [guest h/v]: SEV-ES measures one VMSA per vCPU`,
    ],
    [
      'unknown cpu',
      conf(...SERVICE, '[guest h/v]', 'type: sev-es', 'firmware: /f', 'vcpus: 1', 'cpu: EPYC-Nope', 'policy: 5', 'tik: /t'),
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:10: cpu: unknown vCPU type "EPYC-Nope"`,
    ],
    [
      'vcpus on plain SEV',
      conf(...SERVICE, ...SEV, 'vcpus: 2'),
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:11: vcpus: only for type: sev-es (plain SEV measures no VMSAs)`,
    ],
    [
      'cmdline without kernel',
      conf(...SERVICE, ...SEV, 'cmdline: x'),
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:11: cmdline: needs kernel (only measured with a kernel and kernel-hashes)`,
    ],
    [
      'SNP with a secret',
      conf(...SERVICE, '[guest h/s]', 'type: snp', `snp-digest: ${'cd'.repeat(48)}`, 'snp-policy: 0x30000', 'secret: luks-key:/s'),
      'SUP_ERR_CONFIG_CONFLICT',
      `${FILE}:10: secret: not for an SNP guest`,
    ],
    [
      'SNP short digest',
      conf(...SERVICE, '[guest h/s]', 'type: snp', `snp-digest: ${'cd'.repeat(32)}`, 'snp-policy: 0x30000'),
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:8: snp-digest: expected 48 bytes as 96 hex digits`,
    ],
    [
      'SNP key on SEV',
      conf(...SERVICE, ...SEV, `host-data: ${'00'.repeat(32)}`),
      'SUP_ERR_CONFIG_CONFLICT',
      `${FILE}:11: host-data: only for type: snp`,
    ],
    [
      'bad min-api',
      conf(...SERVICE, ...SEV, 'min-api: 1'),
      'SUP_ERR_CONFIG_BAD_VALUE',
      `${FILE}:11: min-api: expected MAJOR.MINOR, e.g. 0.24`,
    ],
    ['bad type', conf(...SERVICE, '[guest h/v]', 'type: tdx'), 'SUP_ERR_CONFIG_BAD_VALUE', `${FILE}:7: type: expected sev, sev-es or snp`],
  ];
  it.each(cases)('refuses %s with file:line:key', (_name, text, code, message) => {
    const e = catchSupervisorError(() => parseOwnerConfig(text, FILE));
    expect(e.code).toBe(code);
    expect(e.message.slice(0, message.length)).toBe(message);
  });
});
