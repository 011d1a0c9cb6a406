// `sevsup owner serve` as a real process over real TLS on loopback, with a CA, server and client
// certificates made here by the openssl CLI, and a raw https client speaking the relay protocol
// (docs/relay-protocol.md): approve (the same measurement validates with libvirt's
// virt-qemu-sev-validate given the same inputs and keys), inject (the packet checked and opened
// with an independent HMAC/AES implementation), reject (a changed kernel), replay → 409 (also after a
// restart; made-up evidence is not remembered), oversized body, bad JSON, unknown host → 403, and no, expired or foreign client
// certificates refused at the handshake; bearer tokens; /metrics; SIGTERM → exit 0.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createCipheriv, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeExpectedDigest } from '../../src/attestation/inputs.js';
import { cpuModelSignature } from '../../src/sev/cpu-models.js';
import { buildSnpRecord } from '../../src/vm/snp-record.js';
import { snpMeasured } from '../../test/support/snp-measured.js';
import { SEVSUP as BIN } from '../../test/support/it-env.js';
import { DEBIAN_OVMF, HAVE_VALIDATOR, measurementFor, patchFirmware, realKernel, runValidator, writeRecord } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'sevsup-owner-service-'));
const f = (name: string): string => join(dir, name);
const SECRET = Buffer.from('the owner-only disk passphrase');
const HOSTV = { apiMajor: 1, apiMinor: 55, buildId: 21 };
const EPYC = cpuModelSignature('EPYC-v4') ?? { family: 0, model: 0, stepping: 0 };

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

/** `openssl req` with a fresh P-256 key in <name>.key for the subject `cn`; `out` says what it writes (a CSR, or `-x509` a certificate). */
function newKey(name: string, cn: string, out: readonly string[]): void {
  openssl(
    'req',
    ...out,
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    f(`${name}.key`),
    '-subj',
    `/CN=${cn}`,
  );
}

/** A key and a certificate for `cn` signed by `ca` (`days` < 0: already expired). */
function issue(name: string, cn: string, ca: string, o: { days?: number; server?: boolean } = {}): void {
  newKey(name, cn, ['-out', f(`${name}.csr`)]);
  const ext = f(`${name}.ext`);
  writeFileSync(
    ext,
    o.server === true ? 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n',
  );
  openssl(
    'x509',
    '-req',
    '-in',
    f(`${name}.csr`),
    '-CA',
    f(`${ca}.pem`),
    '-CAkey',
    f(`${ca}.key`),
    '-out',
    f(`${name}.pem`),
    '-days',
    String(o.days ?? 2),
    '-extfile',
    ext,
  );
}

function makeCa(name: string): void {
  newKey(name, name, ['-x509', '-out', f(`${name}.pem`), '-days', '2']);
}

interface Service {
  readonly child: ChildProcess;
  readonly port: number;
  readonly lines: string[];
  readonly exited: Promise<number | null>;
}

async function startService(config: string): Promise<Service> {
  const child = spawn(BIN, ['owner', 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      lines.push(line);
      const m = /"address":"127\.0\.0\.1:(\d+)"/.exec(line);
      if (m !== null) resolve(Number(m[1]));
    });
    void exited.then((code) => reject(new Error(`owner serve exited ${code}: ${stderr}`)));
  });
  return { child, port, lines, exited };
}

async function stopService(s: Service): Promise<number | null> {
  s.child.kill('SIGTERM');
  return s.exited;
}

/** A raw TLS connection to the service (trusting the test CA), with a client certificate when named. */
function tlsTo(port: number, o: { cert?: string; maxVersion?: 'TLSv1.2'; from?: string } = {}): ReturnType<typeof tlsConnect> {
  return tlsConnect({
    host: '127.0.0.1',
    port,
    ...(o.from === undefined ? {} : { localAddress: o.from }),
    servername: 'localhost',
    ca: readFileSync(f('ca.pem')),
    ...(o.maxVersion === undefined ? {} : { maxVersion: o.maxVersion }),
    ...(o.cert === undefined ? {} : { cert: readFileSync(f(`${o.cert}.pem`)), key: readFileSync(f(`${o.cert}.key`)) }),
  });
}

interface Reply {
  readonly status: number;
  readonly body: string;
}

function post(
  port: number,
  body: string | Buffer,
  o: { cert?: string; token?: string; type?: string; method?: string; path?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        method: o.method ?? 'POST',
        path: o.path ?? '/attest',
        ca: readFileSync(f('ca.pem')),
        ...(o.cert === undefined ? {} : { cert: readFileSync(f(`${o.cert}.pem`)), key: readFileSync(f(`${o.cert}.key`)) }),
        headers: {
          'content-type': o.type ?? 'application/json',
          ...(o.token === undefined ? {} : { authorization: `Bearer ${o.token}` }),
        },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function attestRequest(
  vm: string,
  record: unknown,
  host = 'node-7',
  o: { launchId?: string; attempt?: number } = {},
): { body: string; launchId: string } {
  const launchId = o.launchId ?? randomUUID();
  const attempt = o.attempt ?? 1;
  return {
    launchId,
    body: JSON.stringify({ schema: 'sevsup.attest-request/v1', host, vm, launchId, attempt, sentAt: new Date().toISOString(), record }),
  };
}

const keys = { tik: randomBytes(16), tek: randomBytes(16) };
const SNP_DIGEST = randomBytes(48);

/** An SNP launch record as the daemon writes it (vm/snp-record.ts), of the owner's expected launch. */
function snpRecord(): Record<string, unknown> {
  const r = buildSnpRecord({
    vm: 'snp1',
    capturedAt: new Date(),
    platform: 'simulated',
    reported: { snpPolicy: 0x30000n, ...HOSTV, state: 'launch-update' },
    measured: snpMeasured(SNP_DIGEST, { firmwareDigest: randomBytes(48) }),
    kernel: null,
    initrd: null,
    cmdline: null,
    kernelHashes: false,
    cpuModel: 'EPYC-Milan',
    qemuVersion: '10.0.13',
    hostData: null,
    idBlock: null,
  });
  return JSON.parse(JSON.stringify(r)) as Record<string, unknown>;
}

const answeredEntries = (file: string): number =>
  Object.keys((JSON.parse(readFileSync(f(file), 'utf8')) as { answered: object }).answered).length;
let firmware = '';
let kernel: string | null = null;
let sevDigest = '';
let esDigest = '';
let service: Service;

beforeAll(async () => {
  makeCa('ca');
  makeCa('other-ca');
  issue('server', 'localhost', 'ca', { server: true });
  issue('node7', 'node-7', 'ca');
  issue('node9', 'node-9', 'ca');
  issue('prom', 'prometheus', 'ca');
  issue('expired', 'node-7', 'ca', { days: -1 });
  issue('foreign', 'node-7', 'other-ca');
  // Keys, secrets and tokens readable by others are refused (owner-load.ts), as ssh refuses such keys.
  const secretFile = { mode: 0o600 };
  writeFileSync(f('tik'), keys.tik, secretFile);
  writeFileSync(f('tek'), keys.tek, secretFile);
  writeFileSync(f('luks'), SECRET, secretFile);
  writeFileSync(f('token-node-7'), 'tok-node-7-0123456789abcdef\n', secretFile);
  writeFileSync(f('token-scrape'), 'scrape-0123456789abcdef-metrics\n', secretFile);
  chmodSync(f('server.key'), 0o600);
  firmware = patchFirmware(DEBIAN_OVMF, f('ovmf.fd'));
  kernel = realKernel();
  const kernelLines = kernel === null ? [] : [`kernel: ${kernel}`, 'cmdline: console=ttyS0'];
  sevDigest = (await computeExpectedDigest({ firmware, ...(kernel === null ? {} : { kernel, cmdline: 'console=ttyS0' }) })).digest.toString(
    'hex',
  );
  esDigest = (
    await computeExpectedDigest({ firmware: DEBIAN_OVMF, sevEs: { vcpus: 2, cpu: EPYC, vmsaInit: 'legacy', sevFeatures: 0n } })
  ).digest.toString('hex');
  const guests = [
    '[guest node-7/web1]',
    'type: sev',
    `firmware: ${firmware}`,
    ...kernelLines,
    'policy: 0x1',
    'min-api: 1.50',
    'tik: tik',
    'tek: tek',
    `secret: luks-key:${f('luks')}`,
    // node-9/web2: another host's guest with the same inputs and keys (a replay across hosts says nothing of the other).
    ...['node-7', 'node-9'].flatMap((host) => [
      `[guest ${host}/web2]`,
      'type: sev-es',
      `firmware: ${DEBIAN_OVMF}`,
      'vcpus: 2',
      'cpu: EPYC-v4',
      'policy: 0x5',
      'tik: tik',
    ]),
    '[guest node-7/snp1]',
    'type: snp',
    `snp-digest: ${SNP_DIGEST.toString('hex')}`,
    'snp-policy: 0x30000',
  ];
  writeFileSync(
    f('owner.conf'),
    [
      'listen: 127.0.0.1:0',
      'tls-cert: server.pem',
      'tls-key: server.key',
      'client-ca: ca.pem',
      'state-file: answered.json',
      'max-connections: 16',
      'max-connections-per-peer: 16',
      'metrics-client: prometheus',
      ...guests,
      '',
    ].join('\n'),
  );
  writeFileSync(
    f('owner-token.conf'),
    [
      'listen: 127.0.0.1:0',
      'tls-cert: server.pem',
      'tls-key: server.key',
      'token: node-7:token-node-7',
      'state-file: answered-token.json',
      'metrics-token: token-scrape',
      ...guests,
      '',
    ].join('\n'),
  );
  // Small limits: a host's share of the connections, and the answered launches one guest may have.
  writeFileSync(
    f('owner-limits.conf'),
    [
      'listen: 127.0.0.1:0',
      'tls-cert: server.pem',
      'tls-key: server.key',
      'client-ca: ca.pem',
      'state-file: answered-limits.json',
      'max-connections: 16',
      'max-connections-per-peer: 3',
      'max-answered: 1',
      ...guests,
      '',
    ].join('\n'),
  );
  service = await startService(f('owner.conf'));
}, 120_000);

afterAll(async () => {
  if (service !== undefined && service.child.exitCode === null) await stopService(service);
  rmSync(dir, { recursive: true, force: true });
});

function sevRecord(
  digestHex: string,
  o: { policy?: number; vm?: string; es?: boolean } = {},
): { record: Record<string, unknown>; measurement: string } {
  const policy = o.policy ?? (o.es === true ? 0x5 : 0x1);
  const host = { ...HOSTV, policy };
  const measurement = measurementFor(keys.tik, host, digestHex);
  const record = writeRecord(f(`rec-${randomUUID()}.json`), {
    host,
    measurement,
    ...(o.es === true ? { launch: { firmware: { path: DEBIAN_OVMF, sha256: '00' }, vcpus: 2 }, cpuSignature: EPYC } : {}),
  });
  return { record: { ...record, vm: o.vm ?? (o.es === true ? 'web2' : 'web1') }, measurement };
}

/** libvirt's validator on web1's launch (policy 0x1, the owner's firmware and kernel, the TIK and TEK). */
function validateWeb1(measurement: string): ReturnType<typeof runValidator> {
  return runValidator({
    measurement,
    ...HOSTV,
    policy: 0x1,
    firmware,
    ...(kernel === null ? {} : { kernel, cmdline: 'console=ttyS0' }),
    tik: f('tik'),
    tek: f('tek'),
  });
}

describe('sevsup owner serve over mutual TLS', () => {
  it('approves a measurement of the owner inputs, and libvirt validates the same one', async () => {
    const { record, measurement } = sevRecord(esDigest, { es: true });
    const req = attestRequest('web2', record);
    const reply = await post(service.port, req.body, { cert: 'node7' });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body)).toEqual({ schema: 'sevsup.attest-answer/v1', launchId: req.launchId, decision: 'approve' });
    if (HAVE_VALIDATOR) {
      const v = await runValidator({
        measurement,
        ...HOSTV,
        policy: 0x5,
        firmware: DEBIAN_OVMF,
        tik: f('tik'),
        tek: f('tek'),
        numCpus: 2,
        sku: [EPYC.family, EPYC.model, EPYC.stepping],
      });
      expect(v).toMatchObject({ exitCode: 0 });
    }
  });

  it('injects a packet bound to this measurement (checked and opened independently); libvirt validates the measurement', async () => {
    const { record, measurement } = sevRecord(sevDigest);
    const req = attestRequest('web1', record);
    const reply = await post(service.port, req.body, { cert: 'node7' });
    expect(reply.status).toBe(200);
    const answer = JSON.parse(reply.body) as { decision: string; launchId: string; secret: { header: string; payload: string } };
    expect(answer).toMatchObject({ decision: 'inject', launchId: req.launchId });
    const header = Buffer.from(answer.secret.header, 'base64');
    const payload = Buffer.from(answer.secret.payload, 'base64');
    expect(header.length).toBe(52);
    // SEV API LAUNCH_SECRET: MAC = HMAC-SHA256(TIK, 0x01 ‖ flags ‖ IV ‖ guest len ‖ trans len ‖ data ‖ measurement MAC).
    const flags = header.subarray(0, 4);
    const iv = header.subarray(4, 20);
    const lens = Buffer.alloc(8);
    lens.writeUInt32LE(payload.length, 0);
    lens.writeUInt32LE(payload.length, 4);
    const mac = createHmac('sha256', keys.tik)
      .update(Buffer.from([0x01]))
      .update(flags)
      .update(iv)
      .update(lens)
      .update(payload)
      .update(Buffer.from(measurement, 'base64').subarray(0, 32))
      .digest();
    expect(header.subarray(20).equals(mac)).toBe(true);
    const decipher = createCipheriv('aes-128-ctr', keys.tek, iv);
    const table = Buffer.concat([decipher.update(payload), decipher.final()]);
    expect(table.indexOf(SECRET)).toBeGreaterThan(0);
    expect(table.subarray(0, 4).toString('hex')).toBe('42f5741e'); // secret-table GUID 1e74f542-… (little-endian)
    if (HAVE_VALIDATOR) {
      const v = await validateWeb1(measurement);
      expect(v).toMatchObject({ exitCode: 0 });
    }
  });

  it('rejects a changed kernel (another digest) with the reason, and the same again when asked again', async () => {
    const { record, measurement } = sevRecord(randomBytes(32).toString('hex'));
    const req = attestRequest('web1', record);
    const reply = await post(service.port, req.body, { cert: 'node7' });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body)).toMatchObject({
      decision: 'reject',
      launchId: req.launchId,
      reason: expect.stringContaining('the measurement does not match'),
    });
    if (HAVE_VALIDATOR) {
      const v = await validateWeb1(measurement);
      expect(v.exitCode).toBe(1);
    }
    // Evidence whose MAC does not verify is not remembered (anyone can make it up): asked again, the
    // same reject, and the state file does not grow with it.
    const again = attestRequest('web1', record);
    const repeat = await post(service.port, again.body, { cert: 'node7' });
    expect(repeat.status).toBe(200);
    expect(JSON.parse(repeat.body)).toMatchObject({ decision: 'reject', launchId: again.launchId });
  });

  it('does not remember made-up evidence: the state file stays bounded and another host cannot burn a measurement', async () => {
    const entries = (): number =>
      Object.keys((JSON.parse(readFileSync(f('answered.json'), 'utf8')) as { answered: object }).answered).length;
    const before = entries();
    for (let i = 0; i < 20; i += 1) {
      const forged = { ...sevRecord(sevDigest).record, measurement: randomBytes(48).toString('base64') };
      const reply = await post(service.port, attestRequest('web1', forged).body, { cert: 'node7' });
      expect(JSON.parse(reply.body)).toMatchObject({ decision: 'reject' });
    }
    expect(entries()).toBe(before);
    // A genuine measurement first sent under the wrong guest (its MAC fails there) is still decided
    // for its own guest.
    const { record } = sevRecord(esDigest, { es: true });
    const wrong = await post(service.port, attestRequest('web1', { ...record, vm: 'web1' }).body, { cert: 'node7' });
    expect(JSON.parse(wrong.body)).toMatchObject({ decision: 'reject' });
    const right = await post(service.port, attestRequest('web2', record).body, { cert: 'node7' });
    expect(JSON.parse(right.body)).toMatchObject({ decision: 'approve' });
  });

  it('remembers a reject of evidence the TIK authenticates (an API older than min-api) and refuses its replay with 409', async () => {
    const host = { apiMajor: 1, apiMinor: 40, buildId: 21, policy: 0x1 };
    const measurement = measurementFor(keys.tik, host, sevDigest);
    const record = { ...writeRecord(f(`rec-${randomUUID()}.json`), { host, measurement }), vm: 'web1' };
    const first = await post(service.port, attestRequest('web1', record).body, { cert: 'node7' });
    expect(JSON.parse(first.body)).toMatchObject({ decision: 'reject', reason: expect.stringContaining('older than 1.50') });
    const replay = await post(service.port, attestRequest('web1', record).body, { cert: 'node7' });
    expect(replay.status).toBe(409);
    expect(JSON.parse(replay.body).error).toMatch(/^replay: this measurement was already answered \(reject\)/);
  });

  it("a replay from another host is refused without telling it the first host's launch id or time", async () => {
    const { record } = sevRecord(esDigest, { es: true });
    const first = attestRequest('web2', record);
    expect(JSON.parse((await post(service.port, first.body, { cert: 'node7' })).body).decision).toBe('approve');
    const theirs = await post(service.port, attestRequest('web2', record, 'node-9').body, { cert: 'node9' });
    expect(theirs.status).toBe(409);
    expect(theirs.body).not.toContain(first.launchId);
    expect(JSON.parse(theirs.body).error).toBe('replay: this measurement was already answered');
  });

  it('refuses bad requests: oversized, bad JSON, wrong type, unknown guest or host, another host in the body', async () => {
    const ok = sevRecord(sevDigest);
    const big = await post(service.port, Buffer.alloc(70 * 1024, 0x20), { cert: 'node7' });
    expect(big.status).toBe(413);
    const dup = await post(service.port, '{"schema":"a","schema":"b"}', { cert: 'node7' });
    expect(dup.status).toBe(400);
    expect(JSON.parse(dup.body).error).toBe('the body is not strict JSON (duplicate-key)');
    expect((await post(service.port, attestRequest('web1', ok.record).body, { cert: 'node7', type: 'text/plain' })).status).toBe(415);
    expect((await post(service.port, attestRequest('web9', ok.record).body, { cert: 'node7' })).status).toBe(403);
    expect((await post(service.port, attestRequest('web1', ok.record, 'node-9').body, { cert: 'node9' })).status).toBe(403);
    expect((await post(service.port, attestRequest('web1', ok.record, 'node-9').body, { cert: 'node7' })).status).toBe(403);
    expect((await post(service.port, '{}', { cert: 'node7', path: '/other' })).status).toBe(404);
    // None of these was a decision: the same evidence is still decided once.
    const first = await post(service.port, attestRequest('web1', ok.record).body, { cert: 'node7' });
    expect(JSON.parse(first.body).decision).toBe('inject');
  });

  it('refuses the TLS handshake without a client certificate, with an expired one, or one of another CA', async () => {
    const body = attestRequest('web1', sevRecord(sevDigest).record).body;
    for (const cert of [undefined, 'expired', 'foreign']) {
      await expect(post(service.port, body, cert === undefined ? {} : { cert })).rejects.toThrow();
    }
  });

  it('serves Prometheus metrics to the named scraper only (never to a host), and logs decisions without secrets', async () => {
    const host = await post(service.port, '', { cert: 'node7', method: 'GET', path: '/metrics' });
    expect(host.status).toBe(403);
    expect(host.body).not.toContain('sevsup_owner');
    const m = await post(service.port, '', { cert: 'prom', method: 'GET', path: '/metrics' });
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/sevsup_owner_requests_total\{outcome="inject"\} [1-9]/);
    expect(m.body).toMatch(/sevsup_owner_requests_total\{outcome="replay"\} 2/);
    const log = service.lines.join('\n');
    expect(log).toContain('"verdict":"reject"');
    for (const b of [keys.tik, keys.tek, SECRET]) for (const enc of ['hex', 'base64'] as const) expect(log).not.toContain(b.toString(enc));
    expect(log).not.toContain(SECRET.toString());
  });

  it('SNP records are answered, not remembered: new launch ids do not grow the state (nothing in an SNP record is fresh)', async () => {
    const before = answeredEntries('answered.json');
    const record = snpRecord();
    for (let i = 0; i < 10; i += 1) {
      const req = attestRequest('snp1', record);
      const reply = await post(service.port, req.body, { cert: 'node7' });
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body)).toEqual({ schema: 'sevsup.attest-answer/v1', launchId: req.launchId, decision: 'approve' });
    }
    const wrong = await post(service.port, attestRequest('snp1', { ...record, expectedLaunchDigest: '00'.repeat(48) }).body, {
      cert: 'node7',
    });
    expect(JSON.parse(wrong.body)).toMatchObject({ decision: 'reject', reason: expect.stringContaining('launch digest') });
    expect(answeredEntries('answered.json')).toBe(before);
  });

  it('the same launch asking again (a daemon restarted mid-hold) is answered again, across an owner restart; another launch id is a replay', async () => {
    const { record, measurement } = sevRecord(sevDigest);
    const launchId = randomUUID();
    const first = await post(service.port, attestRequest('web1', record, 'node-7', { launchId }).body, { cert: 'node7' });
    expect(JSON.parse(first.body)).toMatchObject({ decision: 'inject', launchId });
    expect(await stopService(service)).toBe(0);
    service = await startService(f('owner.conf'));
    const retry = await post(service.port, attestRequest('web1', record, 'node-7', { launchId, attempt: 3 }).body, { cert: 'node7' });
    expect(retry.status).toBe(200);
    const again = JSON.parse(retry.body) as { decision: string; launchId: string; secret: { header: string } };
    expect(again).toMatchObject({ decision: 'inject', launchId });
    // Bound to this launch's measurement like the first packet (a fresh IV, the same binding).
    expect(Buffer.from(again.secret.header, 'base64').length).toBe(52);
    expect(measurement).toBe(record['measurement']);
    const other = await post(service.port, attestRequest('web1', record).body, { cert: 'node7' });
    expect(other.status).toBe(409);
    // The same launch id from another host is not that launch.
    const theirs = await post(service.port, attestRequest('web1', record, 'node-9', { launchId }).body, { cert: 'node9' });
    expect(theirs.status).toBe(403);
  });

  it('exits 0 on SIGTERM and remembers answered measurements across a restart', async () => {
    const { record } = sevRecord(esDigest, { es: true });
    expect(JSON.parse((await post(service.port, attestRequest('web2', record).body, { cert: 'node7' })).body).decision).toBe('approve');
    expect(await stopService(service)).toBe(0);
    service = await startService(f('owner.conf'));
    const replay = await post(service.port, attestRequest('web2', record).body, { cert: 'node7' });
    expect(replay.status).toBe(409);
  });
});

describe('sevsup owner serve: slow peers and its config check', () => {
  it('closes a connection whose headers never finish (slowloris)', async () => {
    const socket = tlsTo(service.port, { cert: 'node7' });
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    socket.write('POST /attest HTTP/1.1\r\nHost: localhost\r\n');
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (d: Buffer) => {
        text += d.toString();
      });
      socket.once('close', () => resolve(text));
    });
    expect(answer === '' || answer.startsWith('HTTP/1.1 408')).toBe(true);
  }, 30_000);

  it('refuses TLS 1.2 renegotiation (a peer cannot swap its certificate or burn CPU mid-connection)', async () => {
    const socket = tlsTo(service.port, { cert: 'node7', maxVersion: 'TLSv1.2' });
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    expect(socket.getProtocol()).toBe('TLSv1.2');
    const outcome = await new Promise<string>((resolve) => {
      socket.once('close', () => resolve('closed'));
      const started = socket.renegotiate({ rejectUnauthorized: true }, (err) => resolve(err === null ? 'renegotiated' : 'refused'));
      if (!started) resolve('refused');
    });
    socket.destroy();
    expect(outcome).not.toBe('renegotiated');
  });

  it('drops connections beyond max-connections (16 here) and serves again once they go', async () => {
    const open = (): Promise<{ socket: ReturnType<typeof tlsConnect>; ok: boolean }> =>
      new Promise((resolve) => {
        const socket = tlsTo(service.port, { cert: 'node7' });
        socket.once('secureConnect', () => resolve({ socket, ok: true }));
        socket.once('error', () => resolve({ socket, ok: false }));
        socket.once('close', () => resolve({ socket, ok: false }));
      });
    const held = [];
    for (let i = 0; i < 16; i += 1) held.push(await open());
    expect(held.every((h) => h.ok)).toBe(true);
    const extra = await open();
    expect(extra.ok).toBe(false);
    for (const h of [...held, extra]) h.socket.destroy();
    const { record } = sevRecord(esDigest, { es: true });
    let reply: Reply | null = null;
    // The server learns of the closes asynchronously: try until a slot is free.
    for (let i = 0; i < 50 && reply === null; i += 1) {
      reply = await post(service.port, attestRequest('web2', record).body, { cert: 'node7' }).catch(() => null);
    }
    expect(reply?.status).toBe(200);
  });

  it('owner check prints the expected digests; a bad config names file:line:key and exits 3', async () => {
    const ok = spawnSync(BIN, ['owner', 'check', '--config', f('owner.conf'), '--json'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    const report = JSON.parse(ok.stdout) as { guests: { vm: string; expectedDigest: string }[] };
    expect(report.guests.map((g) => [g.vm, g.expectedDigest])).toEqual([
      ['web1', sevDigest],
      ['web2', esDigest],
      ['web2', esDigest],
      ['snp1', SNP_DIGEST.toString('hex')],
    ]);
    writeFileSync(f('bad.conf'), readFileSync(f('owner.conf'), 'utf8').replace('policy: 0x5', 'policy: 0x1'));
    const bad = spawnSync(BIN, ['owner', 'check', '--config', f('bad.conf')], { encoding: 'utf8' });
    expect(bad.status).toBe(3);
    expect(bad.stderr).toContain(`${f('bad.conf')}:`);
    expect(bad.stderr).toContain("policy: policy 0x1 lacks the ES bit (0x4) but the guest's type is sev-es");
    expect(bad.stderr).not.toContain('    at ');
  });

  it('refuses to start with a TIK, TEK, secret, TLS key or token file that other users can read', async () => {
    for (const name of ['tik', 'tek', 'luks', 'server.key', 'token-node-7']) {
      chmodSync(f(name), 0o644);
      try {
        const config = name === 'token-node-7' ? 'owner-token.conf' : 'owner.conf';
        const run = spawnSync(BIN, ['owner', 'serve', '--config', f(config)], { encoding: 'utf8', timeout: 30_000 });
        expect(run.status).toBe(3);
        expect(run.stderr).toContain(`${f(name)} is open to other users (mode 0644)`);
        expect(run.stderr).toContain(`chmod o-rwx ${f(name)}`);
        expect(run.stderr).not.toContain('    at ');
      } finally {
        chmodSync(f(name), 0o600);
      }
    }
    // Group access is a fair deployment (root:sevsup-owner 0640).
    chmodSync(f('tik'), 0o640);
    const ok = spawnSync(BIN, ['owner', 'check', '--config', f('owner.conf')], { encoding: 'utf8' });
    chmodSync(f('tik'), 0o600);
    expect(ok.status).toBe(0);
  });
});

/** Write `text` on a fresh TLS connection (no client certificate) and collect what comes back until the server closes. */
async function raw(port: number, text: string, o: { maxVersion?: 'TLSv1.2' } = {}): Promise<string> {
  const socket = tlsTo(port, o);
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('secureConnect', resolve));
  socket.write(text);
  return new Promise<string>((resolve) => {
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString();
    });
    socket.once('close', () => resolve(got));
  });
}

describe('sevsup owner serve: per-peer and per-guest limits', () => {
  it('one peer holds at most max-connections-per-peer (3) of the 16 connections; over it, dropped unread; others still served', async () => {
    const s = await startService(f('owner-limits.conf'));
    try {
      const open = (o: { cert?: string; from?: string } = {}): Promise<{ socket: ReturnType<typeof tlsConnect>; ok: boolean }> =>
        new Promise((resolve) => {
          const socket = tlsTo(s.port, { cert: o.cert ?? 'node7', ...(o.from === undefined ? {} : { from: o.from }) });
          socket.once('secureConnect', () => {
            // The server's drop may follow the handshake: hold on briefly to see it.
            socket.once('close', () => resolve({ socket, ok: false }));
            socket.write('GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n');
            socket.once('data', () => resolve({ socket, ok: true }));
          });
          socket.once('error', () => resolve({ socket, ok: false }));
          socket.once('close', () => resolve({ socket, ok: false }));
        });
      const held = [];
      for (let i = 0; i < 3; i += 1) held.push(await open());
      expect(held.map((h) => h.ok)).toEqual([true, true, true]);
      const extra = await open();
      expect(extra.ok).toBe(false);
      // The service's log line arrives over its stdout pipe: wait for it.
      for (let i = 0; i < 100 && !s.lines.some((l) => l.includes('this address holds its share')); i += 1) await delay(20);
      expect(s.lines.join('\n')).toContain('this address holds its share');
      // The same host from another address is the same peer (its certificate's CN); another host is not.
      const sameHost = await open({ from: '127.0.0.2' });
      expect(sameHost.ok).toBe(false);
      const otherHost = await open({ cert: 'node9', from: '127.0.0.2' });
      expect(otherHost.ok).toBe(true);
      for (const h of [...held, extra, sameHost, otherHost]) h.socket.destroy();
      let reply: Reply | null = null;
      for (let i = 0; i < 50 && reply === null; i += 1) {
        reply = await post(s.port, attestRequest('web2', sevRecord(esDigest, { es: true }).record).body, { cert: 'node7' }).catch(
          () => null,
        );
      }
      expect(reply?.status).toBe(200);
    } finally {
      expect(await stopService(s)).toBe(0);
    }
  });

  it("a guest's answered launches are bounded (max-answered: 1): the next launch is refused with 507, retries of the first still answered", async () => {
    rmSync(f('answered-limits.json'), { force: true });
    const s = await startService(f('owner-limits.conf'));
    try {
      const { record } = sevRecord(esDigest, { es: true });
      const first = attestRequest('web2', record);
      expect(JSON.parse((await post(s.port, first.body, { cert: 'node7' })).body).decision).toBe('approve');
      const next = await post(s.port, attestRequest('web2', sevRecord(esDigest, { es: true }).record).body, { cert: 'node7' });
      expect(next.status).toBe(507);
      expect(JSON.parse(next.body).error).toContain('max-answered');
      const retry = await post(s.port, attestRequest('web2', record, 'node-7', { launchId: first.launchId, attempt: 2 }).body, {
        cert: 'node7',
      });
      expect(JSON.parse(retry.body).decision).toBe('approve');
      // Another host's guest has its own bound.
      const theirs = await post(s.port, attestRequest('web2', sevRecord(esDigest, { es: true }).record, 'node-9').body, { cert: 'node9' });
      expect(JSON.parse(theirs.body).decision).toBe('approve');
      expect(answeredEntries('answered-limits.json')).toBe(2);
    } finally {
      expect(await stopService(s)).toBe(0);
    }
  });
});

describe('sevsup owner serve with bearer tokens', () => {
  it('closes the connection after refusing a peer without credentials (no keep-alive, no body read for strangers)', async () => {
    const s = await startService(f('owner-token.conf'));
    try {
      // Two pipelined requests from a stranger, the first with a large declared body: one 401, then the close.
      const big = 'x'.repeat(1024);
      const one = `POST /attest HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n${big}`;
      const answer = await raw(s.port, `${one}${one}`);
      expect(answer.match(/^HTTP\/1\.1 401/gm)?.length).toBe(1);
      expect(answer.toLowerCase()).toContain('connection: close');
    } finally {
      expect(await stopService(s)).toBe(0);
    }
  });

  it('approves with the right token and refuses a wrong or missing one', async () => {
    const s = await startService(f('owner-token.conf'));
    try {
      const { record } = sevRecord(esDigest, { es: true });
      expect((await post(s.port, attestRequest('web2', record).body, { token: 'wrong-token-0123456789' })).status).toBe(401);
      expect((await post(s.port, attestRequest('web2', record).body)).status).toBe(401);
      const ok = await post(s.port, attestRequest('web2', record).body, { token: 'tok-node-7-0123456789abcdef' });
      expect(JSON.parse(ok.body).decision).toBe('approve');
      // Metrics: the scraper's token, not a host's.
      const hostMetrics = await post(s.port, '', { token: 'tok-node-7-0123456789abcdef', method: 'GET', path: '/metrics' });
      expect(hostMetrics.status).toBe(403);
      const scrape = await post(s.port, '', { token: 'scrape-0123456789abcdef-metrics', method: 'GET', path: '/metrics' });
      expect(scrape.status).toBe(200);
      expect(scrape.body).toMatch(/sevsup_owner_requests_total\{outcome="approve"\} 1/);
      expect(s.lines.join('\n')).not.toContain('tok-node-7');
    } finally {
      expect(await stopService(s)).toBe(0);
    }
  });
});
