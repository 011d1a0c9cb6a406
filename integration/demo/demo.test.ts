// `sevsup demo` as a user runs it (bin/sevsup, a real process): every step's key line appears (the
// validator's verdict, the injected secret, the running guest, its serial greeting, both refusals;
// the SNP guest's record, its report verified and a tampered one refused, the platform's refusal),
// it exits 0, and no QEMU, simulator or supervisor process nor its work directory is left. Ctrl-C
// while the guest is held stops everything too (exit 130), and --keep keeps the directory.
// The three runs share nothing (each demo makes its own work directory, sockets and loopback port)
// and spend much of their time waiting on their guests, so they run at once; each test ends and
// removes only its own runs.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, type OnTestFinishedHandler } from 'vitest';
import { processesMentioning as running } from '../../src/demo/processes.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SEVSUP = join(REPO, 'bin', 'sevsup');
const NEEDED = [
  join(REPO, 'dist', 'bundle', 'sevsup.mjs'),
  join(REPO, '.cache', 'test-assets', 'vmlinuz'),
  join(REPO, '.cache', 'test-assets', 'demo-initrd.img'),
  join(REPO, '.cache', 'test-assets', 'ovmf-sev-test.fd'),
  join(REPO, '.cache', 'test-assets', 'sim-state'),
  '/usr/share/ovmf/OVMF.fd',
  '/usr/bin/virt-qemu-sev-validate',
  '/usr/bin/python3',
];
const missing = NEEDED.filter((p) => !existsSync(p));

interface DemoRun {
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  stdout(): string;
  waitForOutput(text: string, timeoutMs: number): Promise<void>;
  kill(signal: NodeJS.Signals): void;
}

/** One test's demo runs and work directories, ended and removed when that test finishes, whatever it did. */
interface Scope {
  readonly runs: DemoRun[];
  readonly dirs: string[];
}

function scope(onTestFinished: (fn: OnTestFinishedHandler) => void): Scope {
  const s: Scope = { runs: [], dirs: [] };
  onTestFinished(async () => {
    for (const run of s.runs) {
      run.kill('SIGTERM');
      await run.done;
    }
    for (const dir of s.dirs) await rm(dir, { recursive: true, force: true });
  });
  return s;
}

function startDemo(s: Scope, args: readonly string[] = []): DemoRun {
  const child = spawn(process.execPath, [SEVSUP, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  const run: DemoRun = {
    done,
    stdout: () => stdout,
    async waitForOutput(text, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (!stdout.includes(text)) {
        if (child.exitCode !== null || Date.now() > deadline)
          throw new Error(`no "${text}" in the demo's output; stdout:\n${stdout}\nstderr:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    kill: (signal) => child.kill(signal),
  };
  s.runs.push(run);
  return run;
}

/** The demo's private work directory, from its "Work directory:" line. */
function workDir(s: Scope, stdout: string): string {
  const dir = /^Work directory: (\S+)$/m.exec(stdout)?.[1];
  if (dir === undefined) throw new Error(`no work directory in:\n${stdout}`);
  s.dirs.push(dir);
  return dir;
}

/** Per demo: its own runtime under a host busy with the other two (and other suites' guests). */
const DEMO_TEST_TIMEOUT_MS = 240_000;

describe.skipIf(missing.length > 0)(
  `sevsup demo${missing.length > 0 ? ` (skipped: missing ${missing.join(', ')}; run bash scripts/setup.sh)` : ''}`,
  () => {
    it.concurrent.for([
      ['the daemon (default)', [] as string[]],
      ['sevsup run', ['--via', 'run']],
    ] as const)(
      'through %s: runs every step, says the platform is simulated, and leaves nothing behind',
      { timeout: DEMO_TEST_TIMEOUT_MS },
      async ([via, args], { expect, onTestFinished }) => {
        const s = scope(onTestFinished);
        const result = await startDemo(s, args).done;
        const out = result.stdout;
        // With the daemon, the owner's service also refuses a changed launch: one more step.
        const total = via === 'sevsup run' ? 13 : 14;
        expect(result.code, `stdout:\n${out}\nstderr:\n${result.stderr}`).toBe(0);
        expect(out).toContain('THE PLATFORM IS SIMULATED');
        // The owner's own keys reach the simulated platform through a (simulated) launch session.
        expect(out).toContain('wrote a SIMULATED launch session (for platform: sim only)');
        expect(out).toMatch(/^ {4}launch: dh-cert=\S+\/session\/dh-cert,session=\S+\/session\/session$/m);
        if (via === 'sevsup run') expect(out).toMatch(/demo-sev: state held \(paused, measured/);
        expect(out).toMatch(/^ {4}platform: {5}simulated$/m);
        expect(out).toMatch(/^ {4}OK: Looks good to me$/m);
        expect(out).toContain("verdict: valid (exit 0): the measurement matches the owner's inputs and TIK");
        if (via === 'sevsup run') {
          expect(out).toContain('demo-sev: launch secret injected; state held');
          expect(out).toContain('demo-sev: approved; state running');
        }
        expect(out).toMatch(/demo-sev: running \(QEMU pid \d+\)/);
        expect(out).toContain('migrate refused by sevsup: migration');
        expect(out).toContain('→ migrate: refused (exit 10)');
        expect(out).toContain('dump-guest-memory refused by sevsup: memory-dump');
        expect(out).toContain('→ dump-guest-memory: refused (exit 10)');
        expect(out).toMatch(/^ {4}sevsup-demo: hello from the guest, running on \S+$/m);
        // The SEV-SNP guest: the owner's digest pinned in an ID block, the record, a verified report,
        // a tampered one refused by name, and the platform refusing a changed command line.
        const digest = /^ {4}([0-9a-f]{96})$/m.exec(out)?.[1]; // sevsup measure --mode snp
        expect(digest).toBeDefined();
        expect(out).toMatch(/the ID key digest reports will carry: [0-9a-f]{96}$/m);
        expect(out).toContain(`launch digest: ${digest}`);
        expect(out).toMatch(/^ {4}host data: {5}[0-9a-f]{64}$/m);
        expect(out).toContain('demo-snp: approved; state running');
        expect(out).toContain('SIMULATED platform: wrote the report to ');
        expect(out).toContain(`OK: the measurement is the expected ${digest?.slice(0, 24) ?? ''}`);
        expect(out).toContain('OK: report data (your nonce) is the expected');
        expect(out).toContain('OK: the ID key digest is the expected');
        expect(out).toMatch(/ERROR: the measurement [0-9a-f]{24}… is not the expected [0-9a-f]{24}…/);
        expect(out).toContain('→ refused (exit 1): the signature no longer verifies');
        expect(out).toMatch(/^ {4}demo-snp serial console: sevsup-demo: hello from the guest/m);
        expect(out).toContain('demo-snp: WARNING: the ID block pins another digest or policy');
        expect(out).toContain("SNP_LAUNCH_FINISH ret=-5 fw_error=11 'Bad measurement'");
        expect(out).toContain('→ refused by the platform (exit 5)');
        const refusedLaunch = out.slice(out.indexOf(`[${total - 1}/${total}]`), out.indexOf(`[${total}/${total}]`));
        expect(refusedLaunch).not.toContain('demo-snp: running');
        expect(out).toContain('no QEMU, simulator, supervisor or owner service process is left');
        if (via === 'sevsup run') {
          expect(out).toContain('$ sevsup run demo-sev ');
          expect(out).toContain('sevsup run exited by itself (code 0) once its guest had powered off');
        } else {
          expect(out).toContain('$ sevsup daemon --config ');
          // The owner's service over TLS on loopback; the daemon relays, nobody types.
          expect(out).toContain('$ sevsup owner serve --config ');
          expect(out).toMatch(/^ {4}listening: https:\/\/localhost:\d+\/attest \(pid \d+\)$/m);
          expect(out).toMatch(/^ {4}attest: relay$/m);
          expect(out).toMatch(/^ {4}attempt 1: status 200, decision inject$/m);
          expect(out).toMatch(/^ {4}approved: injected true$/m);
          expect(out).toContain('holds 1 secret: 736869e5-84f0-4973-92ec-06879ce3da0b (51 bytes)');
          expect(out).toContain('demo-sev: running (QEMU pid');
          expect(out).not.toContain('$ sevsup attest demo-sev ');
          // The changed launch: rejected by the owner's service, in the status and the audit; never run.
          expect(out).toContain(
            "demo-sev-changed: state failed: VM demo-sev-changed was rejected: the owner's service rejected it: the measurement does not match",
          );
          expect(out).toMatch(/^ {4}attempt 1: status 200, decision reject, reason the measurement does not match/m);
          expect(out).toContain("→ refused by the owner's service: the guest never ran");
          expect(out).toContain('sevsup owner serve exited (stopped)');
          expect(out).toContain('sevsup_qmp_refused_total{reason="migration"} 1');
          expect(out).toContain('sevsup_qmp_refused_total{reason="memory-dump"} 1');
          expect(out).toContain('sevsup daemon exited (code 0)');
        }
        // Step order as narrated.
        const steps = [...out.matchAll(new RegExp(`^\\[(\\d+)/${total}\\] `, 'gm'))].map((m) => Number(m[1]));
        expect(steps).toEqual(Array.from({ length: total }, (_, i) => i + 1));
        // Keys and secrets never appear: only their lengths and file names.
        expect(out).not.toContain('correct horse battery staple');
        expect(out).not.toContain('PRIVATE KEY');
        expect(out).not.toMatch(/BEGIN (EC )?PRIVATE|Bearer /);

        const dir = workDir(s, out);
        expect(existsSync(dir)).toBe(false);
        expect(running(dir).map((p) => p.cmdline)).toEqual([]);
      },
    );

    it.concurrent('Ctrl-C while the guest is held (or just relayed) stops everything, the owner service too; --keep keeps the work directory', {
      timeout: DEMO_TEST_TIMEOUT_MS,
    }, async ({ expect, onTestFinished }) => {
      const s = scope(onTestFinished);
      const run = startDemo(s, ['--keep']);
      // Held, or already approved by the owner's service: either way the guest's processes run.
      await run.waitForOutput('demo-sev: state ', 120_000);
      const dir = workDir(s, run.stdout());
      // The owner service, the supervisor, the simulator, QEMU.
      expect(running(dir).some((p) => p.cmdline.includes('owner serve'))).toBe(true);
      expect(running(dir).length).toBeGreaterThan(1);
      run.kill('SIGINT');
      const result = await run.done;
      expect(result.code).toBe(130);
      expect(result.stderr).toContain('sevsup demo: SIGINT: stopping everything…');
      expect(running(dir).map((p) => p.cmdline)).toEqual([]);
      expect(result.stdout).toContain(`Kept ${dir}:`);
      expect(readdirSync(dir).sort()).toEqual(expect.arrayContaining(['run', 'state', 'vms']));
      // This launch's record (and the store's latest.json pointing at it).
      expect(readdirSync(join(dir, 'state', 'demo-sev', 'measurements')).filter((f) => /^\d{4}-.*\.json$/.test(f))).toHaveLength(1);
    });
  },
);
