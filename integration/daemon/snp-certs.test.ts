// The daemon keeps the host's SEV-SNP certificates, as a real process against a loopback fake of
// AMD's key server: the cache filled at start (a 429 waited out as Retry-After says), each SNP guest's
// GHCB certificate table written into its run directory before its QEMU starts, a change of the
// platform's REPORTED_TCB (the operator's facts file rewritten, as after a firmware update) fetched
// once and every table rewritten; offline mode never touching the network, even on SIGHUP.
// The simulated platform's caps do not offer SNP to the daemon yet, so the guest's launch is refused
// after the table is written: the hook is what is tested here, not an SNP launch.
import { spawnSync } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { derToPem } from '../../src/sev/snp-cert-builder.js';
import { CERT_TABLE_GUID, decodeCertTable } from '../../src/sev/snp-certs.js';
import { encodeTcb, type TcbParts } from '../../src/sev/snp-report.js';
import { startFakeKds, type FakeKds } from '../../test/support/fake-kds.js';
import { chainFor, CHIP_ID, TCB } from '../../test/support/snp-fixtures.js';
import { ensureSimState } from '../sim/snp-harness.js';
import { daemonScope, SEVSUP, writeVm } from './harness.js';

const scope = daemonScope();
const OLD: TcbParts = TCB.Milan;
const NEW: TcbParts = { ...TCB.Milan, snp: 9, microcode: 116 };
const query = (t: TcbParts): string => `blSPL=${t.bootloader}&teeSPL=${t.tee}&snpSPL=${t.snp}&ucodeSPL=${t.microcode}`;
const chainOld = chainFor({ product: 'Milan', kind: 'vcek' });
const chainNew = chainFor({ product: 'Milan', kind: 'vcek' }, { tcb: NEW });
const vcekAt = `/vcek/v1/Milan/${CHIP_ID.toString('hex')}`;
const facts = (t: TcbParts): string =>
  `product: Milan\nchip-id: ${CHIP_ID.toString('hex')}\nreported-tcb: 0x${encodeTcb(t, 'milan-genoa').toString(16)}\n`;

let kds: FakeKds;
beforeAll(async () => {
  kds = await startFakeKds();
  kds.serve('/vcek/v1/Milan/cert_chain', Buffer.from(derToPem(chainOld.intermediate) + derToPem(chainOld.ark)));
  kds.serve(vcekAt, chainOld.leaf, query(OLD));
});
afterAll(async () => {
  await kds.close();
});

interface Status {
  readonly tables: string;
  readonly platform: { reportedTcb: string } | null;
  readonly lastOutcome: string | null;
  readonly lastError: { code: string } | null;
  readonly networkFetches: number;
  readonly tcbChanges: number;
}

async function waitStatus(file: string, ok: (s: Status) => boolean, timeoutMs = 30_000): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await readFile(file, 'utf8').then(
      (t) => JSON.parse(t) as Status,
      () => null,
    );
    if (s !== null && ok(s)) return s;
    if (Date.now() > deadline) throw new Error(`status never matched: ${JSON.stringify(s)}`);
    await delay(100);
  }
}

const leafOf = async (file: string): Promise<Buffer | undefined> =>
  decodeCertTable(await readFile(file)).find((e) => e.guid === CERT_TABLE_GUID.vcek)?.data;

describe('sevsup daemon keeps the host SNP certificates', () => {
  it('fills the cache at start (429 respected), writes an SNP guest table at launch, follows a TCB change', async () => {
    const dir = await scope.dir();
    const platformFile = join(dir, 'snp-platform');
    await writeFile(platformFile, facts(OLD));
    kds.requests.length = 0;
    kds.script(vcekAt, { status: 429, retryAfter: '1' });
    const cache = join(dir, 'certs');
    const ark = join(dir, 'ark.pem');
    await writeFile(ark, derToPem(chainOld.ark));
    const daemon = scope.daemon(dir, [
      '--snp-certs',
      'on',
      '--snp-ark',
      ark,
      '--snp-platform',
      platformFile,
      '--snp-cert-cache',
      cache,
      '--kds-url',
      kds.base,
      '--snp-certs-refresh',
      '1',
    ]);
    await daemon.start();
    const statusFile = join(dir, 'run', 'snp-certs.json');
    await waitStatus(statusFile, (s) => s.tables === 'ready');
    const urls = kds.requests.map((r) => r.url);
    expect(urls).toEqual(['/vcek/v1/Milan/cert_chain', `${vcekAt}?${query(OLD)}`, `${vcekAt}?${query(OLD)}`]);
    const [, refused, again] = kds.requests;
    expect((again?.at ?? 0) - (refused?.at ?? 0)).toBeGreaterThanOrEqual(1000); // Retry-After: 1

    // An SNP guest: its table is in its run directory before its QEMU is spawned.
    await writeVm(dir, 'snp1', ['amd_sev: type=snp,no-debug=1', 'bios: ovmf']);
    daemon.signal('SIGHUP');
    while (!(await daemon.list()).some((v) => v.vm === 'snp1')) await delay(50);
    // Until the simulator models SNP this start is refused ("Your CPU does not support AMD SEV-SNP!"),
    // after the hook; once it does, the guest is held or runs. Either way the table is there.
    await daemon.api('POST', '/v1/vms/snp1/start').catch(() => undefined);
    const table = join(dir, 'run', 'snp1', 'snp-certs.bin');
    expect(decodeCertTable(await readFile(table)).map((e) => e.guid)).toEqual([
      CERT_TABLE_GUID.ark,
      CERT_TABLE_GUID.ask,
      CERT_TABLE_GUID.vcek,
    ]);
    expect(await leafOf(table)).toEqual(chainOld.leaf);
    expect(daemon.output).toContain('SNP certificate table written');

    // A firmware update: the operator's facts now say NEW; the next refresh fetches its VCEK once.
    kds.serve(vcekAt, chainNew.leaf, query(NEW));
    const before = kds.requests.length;
    await writeFile(platformFile, facts(NEW));
    const after = await waitStatus(
      statusFile,
      (s) => s.platform?.reportedTcb === `0x${encodeTcb(NEW, 'milan-genoa').toString(16).padStart(16, '0')}` && s.tables === 'ready',
    );
    expect(after).toMatchObject({ tcbChanges: 1, networkFetches: 2, lastError: null });
    expect(kds.requests.slice(before).map((r) => r.url)).toEqual([`${vcekAt}?${query(NEW)}`]);
    expect(await leafOf(table)).toEqual(chainNew.leaf);
    expect(daemon.output).toContain("the platform's reported TCB changed");

    // The metrics and `sevsup host` say so.
    const metrics = await new Promise<string>((resolve, reject) => {
      const req = request({ socketPath: daemon.socket, path: '/metrics', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
    expect(metrics).toMatch(/^sevsup_snp_certs_ready 1$/m);
    expect(metrics).toMatch(/^sevsup_snp_platform_tcb_changes 1$/m);
    expect(metrics).toMatch(/^sevsup_snp_cert_refreshes_total\{outcome="network"\} 2$/m);
    const host = spawnSync(process.execPath, [SEVSUP, 'host', '--no-probe', '--run-dir', join(dir, 'run')], { encoding: 'utf8' });
    expect(host.stdout).toMatch(/SNP certificates:\s+ready, VCEK cached/);
    expect(host.stdout).toContain(`[file:${platformFile}]`);
  });

  it("offline never touches the network: the simulated platform's own chip, its chain imported, picked up on SIGHUP", async () => {
    const dir = await scope.dir();
    kds.requests.length = 0;
    const cache = join(dir, 'certs');
    const simState = join(dir, 'sim-state');
    const simArk = join(simState, 'snp', 'ark.pem');
    const daemon = scope.daemon(dir, [
      '--snp-certs',
      'on',
      '--snp-certs-offline',
      '1',
      '--kds-url',
      kds.base,
      '--snp-cert-cache',
      cache,
      '--snp-ark',
      join(dir, 'sim-ark.pem'),
    ]);
    // The simulated chain as install time made it (setup-test-assets.sh: `--sim-init-snp-platform`,
    // two RSA-4096 keys, made there if setup did not), copied so that nothing here touches the shared
    // one; then the daemon pins its ARK.
    await cp(ensureSimState(), simState, { recursive: true });
    await writeFile(join(dir, 'sim-ark.pem'), await readFile(simArk));
    const saved = process.env.SEVSUP_SIM_STATE_DIR;
    process.env.SEVSUP_SIM_STATE_DIR = simState; // the daemon reads the sim's state where its sims would
    try {
      await daemon.start();
    } finally {
      if (saved === undefined) delete process.env.SEVSUP_SIM_STATE_DIR;
      else process.env.SEVSUP_SIM_STATE_DIR = saved;
    }
    const statusFile = join(dir, 'run', 'snp-certs.json');
    const missed = await waitStatus(statusFile, (s) => s.lastOutcome !== null);
    expect(missed).toMatchObject({ tables: 'empty', lastOutcome: 'offline-miss', lastError: { code: 'SUP_ERR_CERTS_OFFLINE' } });
    const platform = JSON.parse(await readFile(join(simState, 'snp', 'platform.json'), 'utf8')) as { chipId: string };
    expect(missed.platform).toMatchObject({ chipId: platform.chipId });

    // The sim's chain (ark.pem, ask.pem, vcek.pem as snpguest lays them out), imported air-gapped.
    const imported = spawnSync(process.execPath, [SEVSUP, 'certs', 'import', join(simState, 'snp'), '--ark', simArk, '--cache', cache], {
      encoding: 'utf8',
    });
    expect(imported.status, imported.stderr).toBe(0);
    daemon.signal('SIGHUP');
    const ready = await waitStatus(statusFile, (s) => s.tables === 'ready');
    expect(ready).toMatchObject({ lastOutcome: 'cache', networkFetches: 0 });
    expect(kds.requests).toEqual([]);
  });
});
