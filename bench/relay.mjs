#!/usr/bin/env node
// attest: relay under `sevsup daemon --platform sim`, with an owner service on loopback (node https,
// a bearer token, a CA and certificate made here with openssl): in one run, alternating,
//  1. held → running through the relay (the owner approves at once) against held → running by
//     `sevsup attest --approve` (the CLI, as a person or script does it); target ratio ≤ 1.2. The same
//     against the bare API call (no CLI start-up) is printed too, as the stricter floor.
//  2. N guests (default 50) held at once, all relayed (started four at a time): the owner answers each `reject` (so none of them
//     runs: 50 running TCG guests are not what this machine is for); measures held → decided for all,
//     the owner's requests per second, and the daemon's RSS afterwards.
// Each held → running is timed from the `held` event's arrival to the `running` event's on the
// daemon's event stream. Usage: node bench/relay.mjs [--runs N] [--guests N] [--json]  (needs dist/)
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { median, SEVSUP, spawnSimDaemon } from './bench-lib.mjs';
import { reportTargets, target } from './targets.mjs';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const OVMF = '/usr/share/ovmf/OVMF.fd';
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const RUNS = opt('--runs', 7);
const GUESTS = opt('--guests', 50);
const JSON_OUT = args.includes('--json');
const TARGET_RATIO = 1.2;

for (const p of [join(REPO, 'dist', 'bundle', 'sevsup.mjs'), join(REPO, 'dist', 'api', 'client.js'), OVMF]) {
  if (!existsSync(p)) {
    process.stderr.write(`bench/relay: ${p} is missing (npm run build; apt-get install ovmf)\n`);
    process.exit(2);
  }
}
const { callControl } = await import(join(REPO, 'dist', 'api', 'client.js'));
const round = (x, d = 1) => Number(x.toFixed(d));

const root = await mkdtemp(join(tmpdir(), 'br-'));
const socket = join(root, 's.sock');
const api = (method, path, body) =>
  callControl({ socketPath: socket, method, path, ...(body === undefined ? {} : { body }), timeoutMs: 120_000 });

// The owner's certificate: self-signed for localhost, pinned as the CA.
const certFile = join(root, 'owner.crt');
const keyFile = join(root, 'owner.key');
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ],
  { stdio: 'ignore' },
);
const token = 'bench-token-0123456789';
const tokenFile = join(root, 'host.token');
await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
await chmod(tokenFile, 0o600);

let decide = () => 'approve';
let served = [];
const owner = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"token"}');
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    served.push(performance.now());
    const decision = decide(body.vm);
    const reply = {
      schema: 'sevsup.attest-answer/v1',
      launchId: body.launchId,
      decision,
      ...(decision === 'reject' ? { reason: 'bench' } : {}),
    };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
  });
});
await new Promise((resolve) => owner.listen(0, '127.0.0.1', resolve));
const url = `https://localhost:${owner.address().port}/attest`;

const conf = (attest, extra = []) =>
  [
    'memory: 256',
    'cores: 1',
    'bios: ovmf',
    `firmware: ${OVMF}`,
    'amd_sev: type=std,nodbg=1,noks=1',
    `attest: ${attest}`,
    ...(attest === 'relay' ? [`attest-url: ${url}`, `attest-ca: ${certFile}`, `attest-token-file: ${tokenFile}`] : []),
    ...extra,
    '',
  ].join('\n');
await mkdir(join(root, 'vms'));
await writeFile(join(root, 'vms', 'viarelay.conf'), conf('relay'));
await writeFile(join(root, 'vms', 'viacli.conf'), conf('hold'));
await writeFile(join(root, 'vms', 'viaapi.conf'), conf('hold'));
const many = Array.from({ length: GUESTS }, (_, i) => `m${String(i).padStart(2, '0')}`);
for (const n of many) await writeFile(join(root, 'vms', `${n}.conf`), conf('relay', ['hold-timeout: 600']));

const { child: daemon, exited: daemonExit } = spawnSimDaemon(root, socket, ['--on-shutdown', 'shutdown']);

/** The daemon's event stream for one VM: resolves events by name as they arrive (arrival time). */
function watch(vm) {
  const waiters = new Map();
  const seen = new Map();
  const req = request({ socketPath: socket, path: `/v1/events?vm=${vm}` }, (res) => {
    let buf = '';
    res.on('data', (c) => {
      buf += c;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const e = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        const t = performance.now();
        if (!seen.has(e.event)) seen.set(e.event, t);
        waiters.get(e.event)?.(t);
      }
    });
  });
  req.on('error', () => undefined);
  req.end();
  const at = (name) => (seen.has(name) ? Promise.resolve(seen.get(name)) : new Promise((resolve) => waiters.set(name, resolve)));
  return { at, close: () => req.destroy(), subscribed: at('subscribed') };
}

async function heldToRunning(vm, approve) {
  const w = watch(vm);
  await w.subscribed;
  const started = api('POST', `/v1/vms/${vm}/start`).catch(() => undefined);
  const held = await w.at('held');
  if (approve !== null) await approve();
  const running = await w.at('running');
  await started;
  w.close();
  await api('POST', `/v1/vms/${vm}/stop`, { force: true });
  return running - held;
}

const cliApprove = (vm) => () =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SEVSUP, 'attest', vm, '--approve', '--socket', socket], { stdio: 'ignore' });
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`sevsup attest exited ${code}`))));
  });

let result;
try {
  for (let i = 0; ; i += 1) {
    if ((await api('GET', '/v1/vms').catch(() => null)) !== null) break;
    if (i > 600) throw new Error('the daemon did not come up');
    await delay(50);
  }
  await delay(500);
  const relay = [];
  const cli = [];
  const apiOnly = [];
  for (let i = 0; i < RUNS; i += 1) {
    relay.push(await heldToRunning('viarelay', null));
    cli.push(await heldToRunning('viacli', cliApprove('viacli')));
    apiOnly.push(await heldToRunning('viaapi', () => api('POST', '/v1/vms/viaapi/attest', { action: 'approve' })));
  }

  // N held at once, all relayed; the owner rejects each, so none runs.
  decide = () => 'reject';
  served = [];
  const t0 = performance.now();
  // Four start calls at a time (as the daemon's autostart batches them): 50 spawns at once on a
  // small machine time out QEMU's start-up, which is not what this measures.
  const queue = [...many];
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let vm = queue.shift(); vm !== undefined; vm = queue.shift()) await api('POST', `/v1/vms/${vm}/start`).catch(() => undefined);
    }),
  );
  for (;;) {
    const list = await api('GET', '/v1/vms');
    const decided = list.vms.filter((v) => many.includes(v.vm) && v.state === 'failed');
    const wrong = decided.filter((v) => v.error?.code !== 'SUP_ERR_RELAY_REJECTED');
    if (wrong.length > 0) throw new Error(`unexpected failures: ${JSON.stringify(wrong.map((v) => v.error))}`);
    if (decided.length === many.length) break;
    if (performance.now() - t0 > 600_000) throw new Error(`only ${decided.length} of ${many.length} decided after 10 min`);
    await delay(100);
  }
  const allDecidedS = (performance.now() - t0) / 1000;
  const ownerWindowS = (served.at(-1) - served[0]) / 1000;
  const rss = Number(readFileSync(`/proc/${daemon.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) / 1024;
  result = {
    runs: RUNS,
    relayMedianMs: round(median(relay)),
    cliMedianMs: round(median(cli)),
    apiMedianMs: round(median(apiOnly)),
    ratioVsCli: round(median(relay) / median(cli), 2),
    ratioVsApi: round(median(relay) / median(apiOnly), 2),
    many: {
      guests: GUESTS,
      allDecidedSeconds: round(allDecidedS),
      ownerRequests: served.length,
      ownerWindowSeconds: round(ownerWindowS, 2),
      ownerRequestsPerSecond: round(served.length / Math.max(ownerWindowS, 0.001)),
      daemonRssMb: round(rss),
    },
  };
} finally {
  daemon.kill('SIGTERM');
  await daemonExit;
  await new Promise((resolve) => owner.close(resolve));
  owner.closeAllConnections();
  await rm(root, { recursive: true, force: true });
}

reportTargets('relay', [
  target('held → running: relay / sevsup attest --approve', result.ratioVsCli, {
    unit: '×',
    max: TARGET_RATIO,
    detail: `${result.relayMedianMs} vs ${result.cliMedianMs} ms; vs the bare API call ${result.apiMedianMs} ms: ${result.ratioVsApi}×`,
  }),
]);
if (JSON_OUT) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  const r = result;
  process.stdout.write(
    [
      `held → running (median of ${r.runs}, alternating): relay ${r.relayMedianMs} ms; sevsup attest --approve ${r.cliMedianMs} ms; API approve ${r.apiMedianMs} ms`,
      `ratio relay / CLI ${r.ratioVsCli} (target ≤ ${TARGET_RATIO}) ${r.ratioVsCli <= TARGET_RATIO ? 'PASS' : 'FAIL'}; relay / API ${r.ratioVsApi}`,
      `${r.many.guests} guests held at once, all relayed (owner rejects): all decided after ${r.many.allDecidedSeconds} s from the start calls; owner served ${r.many.ownerRequests} requests in ${r.many.ownerWindowSeconds} s (${r.many.ownerRequestsPerSecond}/s); daemon RSS ${r.many.daemonRssMb} MB`,
      '',
    ].join('\n'),
  );
}
