// Benchmark: `sevsup owner serve` throughput, 50 relay requests at once over mutual TLS on loopback
// (a new TLS connection per request, as the daemon makes one per attempt), each fully decided:
// strict parse, replay check, MAC verification under the owner's TIK, a launch secret sealed and
// self-checked, the answer made durable (atomic state-file write). Baseline in the same run: a bare
// node https server (same certificates, mutual TLS, reads the body, answers a constant), the
// transport floor. Rounds interleave the two so machine noise hits both alike.
// Target: a burst of 50 takes at most 3x the floor's time. Needs the build and the openssl CLI:
// `npm run build && node bench/owner-service.mjs`. Env: BENCH_ROUNDS (7).
import { execFileSync, spawn } from 'node:child_process';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { median } from './bench-lib.mjs';
import { reportTargets, target } from './targets.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const BURST = 50;
const MAX_RATIO = 3;
const BIN = new URL('../bin/sevsup', import.meta.url).pathname;

const dir = mkdtempSync(join(tmpdir(), 'sevsup-bench-owner-service-'));
const f = (n) => join(dir, n);
const openssl = (...a) => execFileSync('openssl', a, { stdio: 'ignore' });

function certs() {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-subj', '/CN=bench-ca', '-days', '2');
  for (const [name, cn, ext] of [
    ['server', 'localhost', 'subjectAltName=DNS:localhost\n'],
    ['client', 'node-7', 'extendedKeyUsage=clientAuth\n'],
  ]) {
    writeFileSync(f(`${name}.ext`), ext);
    openssl('req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
    openssl(
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-out',
      f(`${name}.pem`),
      '-days',
      '2',
      '-extfile',
      f(`${name}.ext`),
    );
  }
}

/** Start a listener process; resolves with its port once it prints one. */
function listen(cmd, args, pattern) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = pattern.exec(line);
      if (m !== null) resolve({ child, port: Number(m[1]) });
    });
    child.once('exit', (code) => reject(new Error(`${cmd} exited ${code}`)));
  });
}

const BASELINE = `
const https = require('node:https'); const fs = require('node:fs');
const s = https.createServer({ cert: fs.readFileSync(process.argv[1] + '/server.pem'), key: fs.readFileSync(process.argv[1] + '/server.key'),
  ca: fs.readFileSync(process.argv[1] + '/ca.pem'), requestCert: true, rejectUnauthorized: true }, (req, res) => {
  const chunks = []; req.on('data', (c) => chunks.push(c)); req.on('end', () => { JSON.parse(Buffer.concat(chunks).toString());
  const body = JSON.stringify({ decision: 'approve' }); res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }); res.end(body); }); });
s.listen(0, '127.0.0.1', () => console.log('port ' + s.address().port)); process.on('SIGTERM', () => process.exit(0));`;

const tik = randomBytes(16);
const digest = randomBytes(32);

function body() {
  const mnonce = randomBytes(16);
  const head = Buffer.from([0x04, 1, 55, 21, 0, 0, 0, 0]);
  head.writeUInt32LE(0x3, 4);
  const mac = createHmac('sha256', tik).update(head).update(digest).update(mnonce).digest();
  const measurement = Buffer.concat([mac, mnonce]).toString('base64');
  const record = {
    schema: 'sevsup.measurement/v1',
    vm: 'web1',
    capturedAt: new Date().toISOString(),
    platform: 'simulated',
    sevType: 'sev',
    policy: 3,
    expectedPolicy: 3,
    apiMajor: 1,
    apiMinor: 55,
    buildId: 21,
    state: 'launch-secret',
    measurement,
    mnonce: mnonce.toString('hex'),
    launch: {
      firmware: null,
      kernel: null,
      initrd: null,
      cmdline: null,
      kernelHashes: false,
      vcpus: 1,
      cpuModel: 'EPYC',
      qemuVersion: '7.2.22',
    },
    expectedLaunchDigest: digest.toString('hex'),
    vmsaInit: null,
    validateArgs: [],
  };
  return JSON.stringify({
    schema: 'sevsup.attest-request/v1',
    host: 'node-7',
    vm: 'web1',
    launchId: randomUUID(),
    attempt: 1,
    sentAt: new Date().toISOString(),
    record,
  });
}

function post(port, text) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        method: 'POST',
        path: '/attest',
        agent: false,
        ca: readFileSync(f('ca.pem')),
        cert: readFileSync(f('client.pem')),
        key: readFileSync(f('client.key')),
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(JSON.parse(Buffer.concat(chunks).toString())) : reject(new Error(`status ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

async function burst(port, expect) {
  const bodies = Array.from({ length: BURST }, body);
  const t0 = process.hrtime.bigint();
  const answers = await Promise.all(bodies.map((b) => post(port, b)));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!answers.every((a) => a.decision === expect)) throw new Error(`expected every answer to be ${expect}`);
  return ms;
}

async function main() {
  certs();
  // The service refuses key and secret files other users can read.
  writeFileSync(f('tik'), tik, { mode: 0o600 });
  writeFileSync(f('tek'), randomBytes(16), { mode: 0o600 });
  writeFileSync(f('luks'), 'bench secret', { mode: 0o600 });
  chmodSync(f('server.key'), 0o600);
  writeFileSync(
    f('owner.conf'),
    [
      'listen: 127.0.0.1:0',
      'tls-cert: server.pem',
      'tls-key: server.key',
      'client-ca: ca.pem',
      'state-file: answered.json',
      'max-connections: 128',
      // All 50 clients here are one peer (one address, one certificate): the per-peer cap (8 by
      // default) would refuse most of them; the bench measures the service, not that cap.
      'max-connections-per-peer: 64',
      '[guest node-7/web1]',
      'type: sev',
      `expected-digest: ${digest.toString('hex')}`,
      'policy: 0x3',
      'tik: tik',
      'tek: tek',
      'secret: luks-key:luks',
      '',
    ].join('\n'),
  );
  const owner = await listen(BIN, ['owner', 'serve', '--config', f('owner.conf')], /"address":"127\.0\.0\.1:(\d+)"/);
  const floor = await listen(process.execPath, ['-e', BASELINE, dir], /^port (\d+)$/);
  try {
    await burst(owner.port, 'inject'); // warm-up: JIT, TLS session setup, state file created
    await burst(floor.port, 'approve');
    const ours = [];
    const base = [];
    for (let r = 0; r < ROUNDS; r += 1) {
      ours.push(await burst(owner.port, 'inject'));
      base.push(await burst(floor.port, 'approve'));
    }
    const o = median(ours);
    const b = median(base);
    const ratio = o / b;
    console.log(
      `owner service: ${BURST} concurrent relay requests (mTLS, decided, sealed, durable): median ${o.toFixed(1)} ms (${((BURST * 1000) / o).toFixed(0)} req/s)`,
    );
    console.log(`bare https floor: ${BURST} concurrent requests: median ${b.toFixed(1)} ms (${((BURST * 1000) / b).toFixed(0)} req/s)`);
    console.log(`ratio ${ratio.toFixed(2)}x (target <= ${MAX_RATIO}x)`);
    reportTargets('owner-service', [
      target(`owner service: ${BURST} relay requests at once vs a bare https server`, Number(ratio.toFixed(2)), {
        unit: '×',
        max: MAX_RATIO,
        detail: `${o.toFixed(1)} ms vs ${b.toFixed(1)} ms`,
      }),
    ]);
  } finally {
    owner.child.kill('SIGTERM');
    floor.child.kill('SIGTERM');
    await Promise.all([owner, floor].map((p) => new Promise((r) => (p.child.exitCode === null ? p.child.once('exit', r) : r()))));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
