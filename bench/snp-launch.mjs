#!/usr/bin/env node
// SEV-SNP launch against SEV's on the simulated platform (issue 12): `sevsup run --hold` of one
// SNP guest and one SEV guest with the same firmware (Debian's OVMF.fd with a kernel-hashes area
// and SNP metadata, scripts/make-test-firmware.mjs), the same kernel and cmdline, kernel-hashes on,
// runs interleaved (rounds), medians. The metric is the lifecycle's `starting` event → its `held`
// event: preflight, firmware checks, spawn, QMP, the launch checks, the measurement (SEV: QEMU's
// launch measurement; SNP: the expected launch digest computed over the firmware, kernel, initrd and
// cmdline) and the durable record, up to the hold before `cont`. Target: SNP / SEV ≤ 1.1.
// Usage: node bench/snp-launch.mjs [--runs N] [--json]   (needs dist/, .cache/test-assets, /usr/share/ovmf/OVMF.fd)
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, onJsonLines, rounds, SEVSUP } from './bench-lib.mjs';
import { reportTargets, target } from './targets.mjs';

const REPO = new URL('../', import.meta.url).pathname;
const DEBIAN_OVMF = '/usr/share/ovmf/OVMF.fd';
const KERNEL = join(REPO, '.cache', 'test-assets', 'vmlinuz');
const args = process.argv.slice(2);
const runsArg = args.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 7;
const JSON_OUT = args.includes('--json');
const TARGET = 1.1;
/** One launch must not hang the bench. */
const STEP_TIMEOUT_MS = 60_000;

for (const p of [join(REPO, 'dist', 'bundle', 'sevsup.mjs'), DEBIAN_OVMF, KERNEL]) {
  if (!existsSync(p)) {
    process.stderr.write(`bench/snp-launch: ${p} is missing (npm run build; bash scripts/setup.sh)\n`);
    process.exit(2);
  }
}

const root = await mkdtemp(join(tmpdir(), 'sb-snp-'));
const firmware = join(root, 'snp.fd');
execFileSync(process.execPath, [join(REPO, 'scripts', 'make-test-firmware.mjs'), DEBIAN_OVMF, firmware, '--snp', 'kernel-hashes'], {
  stdio: 'ignore',
});
const SEV_TYPES = { sev: 'type=std,nodbg=1,noks=1,kernel-hashes=1', snp: 'type=snp,no-debug=1,kernel-hashes=1' };
const confs = {};
for (const [name, sev] of Object.entries(SEV_TYPES)) {
  confs[name] = join(root, `${name}.conf`);
  const lines = ['memory: 256', 'cores: 1', 'cpu: EPYC-v3', 'bios: ovmf', `firmware: ${firmware}`, `kernel: ${KERNEL}`];
  await writeFile(confs[name], [`name: ${name}`, ...lines, 'cmdline: console=ttyS0', `amd_sev: ${sev}`, ''].join('\n'));
}

/** `sevsup run --hold`: its `starting` → `held` events on stdout, in ms; then SIGTERM (the guest never ran). */
let launches = 0;
async function launchOnce(name) {
  launches += 1;
  const dir = join(root, `${name}-${launches}`);
  const child = spawn(
    process.execPath,
    [SEVSUP, 'run', confs[name], '--platform', 'sim', '--json', '--hold', '--run-dir', join(dir, 'run'), '--state-dir', join(dir, 'state')],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise((resolve) => child.once('close', resolve));
  let timer;
  try {
    return await new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${name}: not held within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
      let tStarting = null;
      onJsonLines(child.stdout, (event) => {
        if (event.event === 'starting') tStarting = performance.now();
        if (event.event === 'held' && tStarting !== null) resolve(performance.now() - tStarting);
        if (event.event === 'failed') reject(new Error(`${name}: sevsup run failed: ${event.message}`));
      });
      child.once('close', () => reject(new Error(`${name}: sevsup run exited before held: ${stderr}`)));
    });
  } finally {
    clearTimeout(timer);
    child.kill('SIGTERM');
    await exited;
  }
}

try {
  const samples = await rounds(['sev', 'snp'], RUNS, launchOnce);
  const sev = median(samples.sev);
  const snp = median(samples.snp);
  const ratio = Number((snp / sev).toFixed(2));
  const result = {
    runs: RUNS,
    sevMedianMs: Math.round(sev),
    snpMedianMs: Math.round(snp),
    ratio,
    target: TARGET,
    sevMs: samples.sev.map(Math.round),
    snpMs: samples.snp.map(Math.round),
  };
  reportTargets('snp-launch', [
    target('SNP launch starting → held / SEV', ratio, {
      unit: '×',
      max: TARGET,
      detail: `${result.snpMedianMs} vs ${result.sevMedianMs} ms`,
    }),
  ]);
  if (JSON_OUT) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(
      `median of ${RUNS} (interleaved), starting → held on the simulated platform:\n` +
        `  SEV ${result.sevMedianMs} ms  [${result.sevMs.join(' ')}]\n` +
        `  SNP ${result.snpMedianMs} ms  [${result.snpMs.join(' ')}], ratio ${ratio} (target ≤ ${TARGET})\n`,
    );
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
