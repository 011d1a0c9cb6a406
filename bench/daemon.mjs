#!/usr/bin/env node
// The daemon under load, on the simulated platform: 50 guests held paused for attestation (cheap:
// paused guests run no guest code) under one `sevsup daemon`. Measures, in one run:
//  - the daemon's own RSS (target ≤ 150 MB; the simulators and QEMUs are separate processes);
//  - `GET /v1/vms` over the API, 50 guests (target ≤ 50 ms median);
//  - `GET /v1/vms/<vm>` (target ≤ 0.5 ms median: served from memory, no QMP round trip), over one
//    kept-alive connection, alternating with a bare node:http server answering the same bytes
//    through the same client (the floor), and with a fresh connection per request as the CLI does;
//  - the daemon's idle CPU over 10 s with 50 held guests;
//  - start → held of one more guest through the daemon vs `sevsup run --hold`, alternating, each
//    from its own `starting` to `held` event (target ratio ≤ 1.1); plus the API call's wall time.
// Usage: node bench/daemon.mjs [--guests N] [--runs N] [--json]   (needs dist/: npm run build)
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, createServer, request } from 'node:http';
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
const GUESTS = opt('--guests', 50);
const RUNS = opt('--runs', 5);
const JSON_OUT = args.includes('--json');
const IDLE_S = 10;
const CLK_TCK = 100; // USER_HZ on Linux
const TARGETS = { rssMb: 150, listMs: 50, statusMs: 0.5, startRatio: 1.1 };

for (const p of [join(REPO, 'dist', 'bundle', 'sevsup.mjs'), join(REPO, 'dist', 'api', 'client.js'), OVMF]) {
  if (!existsSync(p)) {
    process.stderr.write(`bench/daemon: ${p} is missing (npm run build; apt-get install ovmf)\n`);
    process.exit(2);
  }
}
const { callControl } = await import(join(REPO, 'dist', 'api', 'client.js'));

const root = await mkdtemp(join(tmpdir(), 'bd-'));
const socket = join(root, 's.sock');
const conf = (autostart) =>
  [
    'memory: 256',
    'cores: 1',
    'bios: ovmf',
    `firmware: ${OVMF}`,
    'amd_sev: type=std,nodbg=1,noks=1',
    'attest: hold',
    `autostart: ${autostart ? 1 : 0}`,
    '',
  ].join('\n');
await mkdir(join(root, 'vms'));
const names = Array.from({ length: GUESTS }, (_, i) => `g${String(i).padStart(2, '0')}`);
for (const n of names) await writeFile(join(root, 'vms', `${n}.conf`), conf(true));
await writeFile(join(root, 'vms', 'probe.conf'), conf(false));
await mkdir(join(root, 'solo'));
await writeFile(join(root, 'solo', 'probe.conf'), conf(false));

const round = (x, d = 2) => Number(x.toFixed(d));
const api = (method, path, body, timeoutMs = 120_000) =>
  callControl({ socketPath: socket, method, path, ...(body === undefined ? {} : { body }), timeoutMs });

const { child: daemon, exited: daemonExit } = spawnSimDaemon(root, socket, ['--on-shutdown', 'shutdown']);

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}
function rssMb(pid) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1] ?? 0) / 1024;
}

/** GET over one kept-alive connection (the daemon's own cost, not connection set-up). */
function keepAliveGet(agent, path, socketPath = socket) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end();
  });
}

/** `sevsup run --hold` for the probe guest: its starting → held, in ms; then it is stopped. */
function runOnce(i) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        SEVSUP,
        'run',
        join(root, 'solo', 'probe.conf'),
        '--platform',
        'sim',
        '--hold',
        '--json',
        '--run-dir',
        join(root, `solo-run-${i}`),
        '--state-dir',
        join(root, 'solo-state'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let buffer = '';
    let starting = null;
    let heldMs = null;
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    child.stdout.on('data', (c) => {
      buffer += c;
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const event = JSON.parse(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (event.event === 'starting') starting = Date.parse(event.time);
        if (event.event === 'held' && heldMs === null) {
          heldMs = Date.parse(event.time) - (starting ?? Date.parse(event.time));
          child.kill('SIGTERM');
        }
      }
    });
    child.once('close', (code) =>
      heldMs === null ? reject(new Error(`sevsup run exited ${code} before held: ${stderr}`)) : resolve(heldMs),
    );
  });
}

/** Start the probe guest through the daemon: its starting → held (events), and the call's wall time. */
async function daemonOnce() {
  const events = [];
  const stream = await new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: '/v1/events?vm=probe' }, (res) => {
      res.on('data', (c) => {
        for (const line of c.toString('utf8').split('\n').filter(Boolean)) events.push(JSON.parse(line));
        if (events.length === 1) resolve(req);
      });
    });
    req.on('error', reject);
    req.end();
  });
  const t0 = performance.now();
  await api('POST', '/v1/vms/probe/start');
  const wall = performance.now() - t0;
  await delay(20);
  stream.destroy();
  const at = (name) => Date.parse(events.find((e) => e.event === name)?.time ?? 'x');
  await api('POST', '/v1/vms/probe/stop', { force: true });
  return { lifecycle: at('held') - at('starting'), wall };
}

let result;
try {
  const readyBy = Date.now() + 600_000;
  let held = 0;
  const t0 = performance.now();
  while (held < GUESTS) {
    if (Date.now() > readyBy) throw new Error(`only ${held} of ${GUESTS} guests held after 10 min`);
    await delay(500);
    const list = await api('GET', '/v1/vms').catch(() => null);
    held = list === null ? 0 : list.vms.filter((v) => v.state === 'held').length;
    const failed = list?.vms.filter((v) => v.state === 'failed') ?? [];
    if (failed.length > 0) throw new Error(`guests failed: ${JSON.stringify(failed.map((f) => f.error))}`);
  }
  const allHeldS = (performance.now() - t0) / 1000;
  await delay(2000); // let start-up garbage settle before measuring memory and idle CPU

  const rss = rssMb(daemon.pid);
  const list = [];
  for (let i = 0; i < 50; i += 1) {
    const t = performance.now();
    await api('GET', '/v1/vms');
    list.push(performance.now() - t);
  }
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  // The floor, in the same run and through the same client: a bare node:http server on a Unix
  // socket answering with the daemon's own bytes for the same guest (no routing, no metrics).
  const sample = await api('GET', `/v1/vms/${names[0]}`);
  const bareBody = `${JSON.stringify(sample)}\n`;
  const bareSocket = join(root, 'bare.sock');
  const bare = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(bareBody) });
    res.end(bareBody);
  });
  await new Promise((resolve) => bare.listen(bareSocket, resolve));
  const bareAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  const statusKeepAlive = [];
  const bareKeepAlive = [];
  for (let i = 0; i < 500; i += 1) {
    let t = performance.now();
    await keepAliveGet(agent, `/v1/vms/${names[i % GUESTS]}`);
    statusKeepAlive.push(performance.now() - t);
    t = performance.now();
    await keepAliveGet(bareAgent, `/v1/vms/${names[i % GUESTS]}`, bareSocket);
    bareKeepAlive.push(performance.now() - t);
  }
  agent.destroy();
  bareAgent.destroy();
  await new Promise((resolve) => bare.close(resolve));
  const statusFresh = [];
  for (let i = 0; i < 200; i += 1) {
    const t = performance.now();
    await api('GET', `/v1/vms/${names[i % GUESTS]}`);
    statusFresh.push(performance.now() - t);
  }

  const ticks0 = cpuTicks(daemon.pid);
  await delay(IDLE_S * 1000);
  const idleCpuPct = ((cpuTicks(daemon.pid) - ticks0) / CLK_TCK / IDLE_S) * 100;

  const viaDaemon = [];
  const viaDaemonWall = [];
  const viaRun = [];
  for (let i = 0; i < RUNS; i += 1) {
    const d = await daemonOnce();
    viaDaemon.push(d.lifecycle);
    viaDaemonWall.push(d.wall);
    viaRun.push(await runOnce(i));
  }

  result = {
    guests: GUESTS,
    allHeldSeconds: round(allHeldS, 1),
    daemonRssMb: round(rss, 1),
    listMedianMs: round(median(list)),
    statusMedianMs: round(median(statusKeepAlive), 3),
    statusFreshConnectionMedianMs: round(median(statusFresh), 3),
    bareServerMedianMs: round(median(bareKeepAlive), 3),
    idleCpuPercent: round(idleCpuPct),
    startToHeld: {
      runs: RUNS,
      daemonMedianMs: median(viaDaemon),
      runMedianMs: median(viaRun),
      ratio: round(median(viaDaemon) / median(viaRun)),
      daemonApiWallMedianMs: round(median(viaDaemonWall), 1),
    },
    targets: TARGETS,
  };
  result.pass = {
    rss: result.daemonRssMb <= TARGETS.rssMb,
    list: result.listMedianMs <= TARGETS.listMs,
    status: result.statusMedianMs <= TARGETS.statusMs,
    start: result.startToHeld.ratio <= TARGETS.startRatio,
  };
} finally {
  daemon.kill('SIGTERM');
  await daemonExit;
  await rm(root, { recursive: true, force: true });
}

reportTargets('daemon', [
  target(`daemon RSS, ${result.guests} guests held`, result.daemonRssMb, { unit: 'MB', max: TARGETS.rssMb }),
  target(`GET /v1/vms, ${result.guests} guests`, result.listMedianMs, { unit: 'ms', max: TARGETS.listMs }),
  target('GET /v1/vms/<vm>, kept-alive connection', result.statusMedianMs, {
    unit: 'ms',
    max: TARGETS.statusMs,
    detail: `bare node:http server, same client: ${result.bareServerMedianMs} ms; fresh connection: ${result.statusFreshConnectionMedianMs} ms`,
  }),
  target('start → held: daemon / sevsup run --hold', result.startToHeld.ratio, {
    unit: '×',
    max: TARGETS.startRatio,
    detail: `${result.startToHeld.daemonMedianMs} vs ${result.startToHeld.runMedianMs} ms`,
  }),
]);
if (JSON_OUT) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  const r = result;
  const ok = (b) => (b ? 'PASS' : 'FAIL');
  process.stdout.write(
    [
      `${r.guests} guests held (all held after ${r.allHeldSeconds} s)`,
      `daemon RSS            ${r.daemonRssMb} MB (target ≤ ${TARGETS.rssMb}) ${ok(r.pass.rss)}`,
      `list (API)            median ${r.listMedianMs} ms (target ≤ ${TARGETS.listMs}) ${ok(r.pass.list)}`,
      `status (API)          median ${r.statusMedianMs} ms kept-alive (target ≤ ${TARGETS.statusMs}) ${ok(r.pass.status)}; ${r.statusFreshConnectionMedianMs} ms with a new connection each; a bare node:http server: ${r.bareServerMedianMs} ms`,
      `idle CPU              ${r.idleCpuPercent} % of one core over ${IDLE_S} s`,
      `start → held          daemon ${r.startToHeld.daemonMedianMs} ms vs sevsup run ${r.startToHeld.runMedianMs} ms: ratio ${r.startToHeld.ratio} (target ≤ ${TARGETS.startRatio}) ${ok(r.pass.start)}; API call ${r.startToHeld.daemonApiWallMedianMs} ms [${r.startToHeld.runs} runs each, alternating]`,
      '',
    ].join('\n'),
  );
}
