// The Docker image, built from this checkout the way a user builds it: scripts/docker-base.sh
// (the trixie base, made again only when its recipe changes) then scripts/docker-build.sh
// (sevsup:dev; layer-cached, so a source change rebuilds only the last layers).
// Runs only when a Docker engine answers here: this suite never installs Docker or starts an
// engine (.ci/run does, with scripts/docker-engine.sh, and stops it afterwards). Skips, saying so
// on stderr and in each test's skip note, when none answers or docker-base.sh finds the engine
// cannot run a container (exit 3). Leaves no container: every one is --rm, labelled, checked for.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('../..', import.meta.url).pathname;
const IMAGE = 'sevsup:dev';
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
// Every container this file starts carries this label, so afterAll can prove none is left.
const LABEL = `sevsup-test=image-${process.pid}`;
const ASSETS = '/opt/sevsup/.cache/test-assets';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<Result> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: ROOT, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const dockerRun = (args: string[], timeoutMs = 120_000): Promise<Result> =>
  run('docker', ['run', '--rm', '--network', 'none', '--label', LABEL, ...args], timeoutMs);

const tail = (text: string, lines = 25): string => text.trimEnd().split('\n').slice(-lines).join('\n');

/** Set when docker-base.sh says Docker cannot work on this machine (exit 3): the reason. */
let unavailable: string | undefined;

describe('the Docker image sevsup:dev', () => {
  beforeAll(async () => {
    const engine = await run('docker', ['info', '--format', '{{.ServerVersion}}'], 15_000);
    if (engine.code !== 0) {
      const why =
        engine.code === -1 && !engine.stderr
          ? 'the docker client is not installed'
          : tail(engine.stderr, 1) || `docker info exited ${engine.code}`;
      unavailable = `no Docker engine answers here (${why}); to run these tests: bash scripts/docker-engine.sh start`;
      process.stderr.write(`integration/docker: SKIPPED — ${unavailable}\n`);
      return;
    }
    const base = await run('bash', ['scripts/docker-base.sh'], 400_000);
    if (base.code === 3) {
      unavailable = /docker-base: unavailable: (.*)$/m.exec(base.stderr)?.[1] ?? tail(base.stderr, 1);
      process.stderr.write(`integration/docker: SKIPPED — Docker cannot work on this machine: ${unavailable}\n`);
      return;
    }
    if (base.code !== 0) throw new Error(`scripts/docker-base.sh exited ${base.code}:\n${tail(base.stderr)}`);
    const build = await run('bash', ['scripts/docker-build.sh', IMAGE], 480_000);
    if (build.code !== 0) throw new Error(`scripts/docker-build.sh exited ${build.code}:\n${tail(build.stderr)}`);
  }, 900_000);

  afterAll(async () => {
    if (unavailable !== undefined) return;
    const left = await run('docker', ['ps', '-aq', '--filter', `label=${LABEL}`], 30_000);
    const ids = left.stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await run('docker', ['rm', '-f', ...ids], 60_000);
    expect(ids, 'containers left behind by this suite').toEqual([]);
  }, 120_000);

  it('`sevsup --version` prints the package version', async (ctx) => {
    if (unavailable !== undefined) ctx.skip(unavailable);
    const r = await dockerRun([IMAGE, '--version']);
    expect(r).toMatchObject({ code: 0, stdout: `${VERSION}\n` });
  });

  it('`sevsup host --json` exits 0 and reports SEV unsupported, with a reason, without /dev/sev', async (ctx) => {
    if (unavailable !== undefined) ctx.skip(unavailable);
    // The premise: no device is passed, so the container has no /dev/sev even on an SEV host.
    const devices = await dockerRun(['--entrypoint', 'ls', IMAGE, '/dev']);
    expect(devices.code).toBe(0);
    expect(devices.stdout.split('\n')).not.toContain('sev');

    const r = await dockerRun([IMAGE, 'host', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const caps = JSON.parse(r.stdout) as Record<'sev' | 'sevEs' | 'sevSnp', { supported: boolean; reason: string }>;
    for (const kind of ['sev', 'sevEs', 'sevSnp'] as const) {
      expect(caps[kind].supported, kind).toBe(false);
      expect(caps[kind].reason, kind).toMatch(/^not supported, because \S/);
    }
  });

  it('is clean: production dependencies only, no apt lists, no npm cache, no build toolchain', async (ctx) => {
    if (unavailable !== undefined) ctx.skip(unavailable);
    const script = [
      'find /var/lib/apt/lists /var/cache/apt/archives /root/.npm /root/.cache -mindepth 1 ! -name lock ! -name partial 2>/dev/null',
      // corepack stays: trixie's nodejs depends on it; npm is what the build stage added.
      'for t in npm npx tsc gcc cc make; do command -v "$t"; done',
      'ls -d /opt/sevsup/node_modules/typescript /opt/sevsup/node_modules/vitest /opt/sevsup/node_modules/@types 2>/dev/null',
      'ls -d /opt/sevsup/src /opt/sevsup/.git 2>/dev/null',
      'true',
    ].join('; ');
    const r = await dockerRun(['--entrypoint', 'sh', IMAGE, '-c', script]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').filter(Boolean), 'left in the image').toEqual([]);
    // …while what sevsup needs at run time is there.
    const need = await dockerRun([
      '--entrypoint',
      'sh',
      IMAGE,
      '-c',
      'command -v sevsup qemu-system-x86_64 qemu-img node && test -s /usr/share/ovmf/OVMF.fd && node --version',
    ]);
    expect(need.code, need.stderr).toBe(0);
    expect(need.stdout).toMatch(/^v20\./m);
  });

  it("the demo guest's assets boot under the image's QEMU with TCG (no device needed)", async (ctx) => {
    if (unavailable !== undefined) ctx.skip(unavailable);
    // What `sevsup demo` will run on the simulated platform: the test firmware, Debian trixie's
    // cloud kernel and the busybox initrd built at image build time, to the guest's own greeting.
    // `timeout` inside the container bounds a hung guest; it then fails here, and is removed.
    const r = await dockerRun(
      [
        '--entrypoint',
        'timeout',
        IMAGE,
        '100',
        'qemu-system-x86_64',
        '-machine',
        'q35',
        '-accel',
        'tcg',
        '-m',
        '512',
        '-nodefaults',
        '-nographic',
        '-bios',
        `${ASSETS}/ovmf-sev-test.fd`,
        '-kernel',
        `${ASSETS}/vmlinuz`,
        '-initrd',
        `${ASSETS}/demo-initrd.img`,
        '-append',
        'console=ttyS0 panic=-1 quiet',
        '-no-reboot',
        '-serial',
        'stdio',
      ],
      150_000,
    );
    expect(r.stdout).toContain('sevsup-demo: hello from the guest, running on ');
    expect(r.stdout).toContain('sevsup-demo: powering off');
    expect(r.code, tail(r.stderr)).toBe(0);
  }, 150_000);

  it('`sevsup demo` runs end to end inside the container on the simulated platform', async (ctx) => {
    if (unavailable !== undefined) ctx.skip(unavailable);
    // --network none and no device: the simulated platform runs the guest under TCG, and the
    // daemon, the proxy and the validator all run inside the container.
    const r = await dockerRun([IMAGE, 'demo'], 240_000);
    expect(r.code, tail(r.stderr)).toBe(0);
    expect(r.stdout).toContain("verdict: valid (exit 0): the measurement matches the owner's inputs and TIK");
    expect(r.stdout).toContain('migrate refused by sevsup: migration');
    expect(r.stdout).toContain('dump-guest-memory refused by sevsup: memory-dump');
    expect(r.stdout).toContain('sevsup-demo: hello from the guest');
  }, 240_000);
});
