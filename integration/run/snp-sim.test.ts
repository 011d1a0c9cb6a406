// SEV-SNP end to end through `sevsup run --platform sim`: the simulated platform answers as QEMU 10 on
// an SNP host (real Debian QEMU underneath, TCG), measures the guest at its first cont and checks the
// ID block at LAUNCH_FINISH. Launch, hold, approve, run: the record written before cont carries the
// digest the platform itself measured, and the reference values `sevsup measure --mode snp
// --reference-values` prints for the owner's own files; an ID block pinning the owner's digest is
// accepted by the platform; one pinning another digest and a wrong policy each fail closed; no sim
// or QEMU process is left behind.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callControl } from '../../src/api/client.js';
import { buildIdAuth, buildIdBlock } from '../../src/sev/snp-id-block.js';
import {
  DEBIAN_OVMF,
  KERNEL,
  REPO,
  SIM,
  cleanupScope,
  missingPrerequisite,
  processesMentioning,
  sevsup,
  simRun,
  simStatus,
  writeConf,
} from './harness.js';

const missing = missingPrerequisite(SIM, KERNEL, DEBIAN_OVMF);
const scope = cleanupScope();
const track = scope.track;
const CMDLINE = 'console=ttyS0 panic=-1';
/** `cpu: EPYC-v3` (the harness's): family 23, model 1, stepping 2. */
const VCPU_SIG = '0x800f12';

/**
 * A launch that reaches `running` waits out the first-run window; these tests set it short (the
 * failing launches keep the default, whose text they check: their QEMU exits at the first cont).
 */
const SHORT_WINDOW = ['--snp-first-run-window', '300'];

/**
 * Debian's OVMF.fd with a kernel-hashes area and SNP metadata with a KERNEL_HASHES section, made
 * once for the file (read-only to every guest; each test's own directory still names its processes).
 */
let assets = '';
let FIRMWARE = '';
beforeAll(async () => {
  assets = await mkdtemp(join(tmpdir(), 'sr-snp-fw-'));
  FIRMWARE = join(assets, 'snp.fd');
  execFileSync(process.execPath, [join(REPO, 'scripts', 'make-test-firmware.mjs'), DEBIAN_OVMF, FIRMWARE, '--snp', 'kernel-hashes'], {
    stdio: 'ignore',
  });
});
afterAll(() => rm(assets, { recursive: true, force: true }));

function snpConf(dir: string, name: string, sev = 'type=snp,no-debug=1,kernel-hashes=1'): Promise<string> {
  return writeConf(dir, { name, firmware: FIRMWARE, kernel: KERNEL, cmdline: CMDLINE, sev });
}

type Json = Record<string, unknown>;

/** `sevsup measure --mode snp` as the owner runs it on their own copies of the guest's files. */
function ownerMeasure(firmware: string, extra: readonly string[] = []): ReturnType<typeof sevsup> {
  const inputs = ['--firmware', firmware, '--kernel', KERNEL, '--cmdline', CMDLINE, '--vcpus', '1', '--vcpu-sig', VCPU_SIG];
  return sevsup(['measure', '--mode', 'snp', ...inputs, ...extra]);
}

describe.skipIf(missing !== null)(`sevsup run --platform sim, SEV-SNP${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  it('launch, hold, approve, run: the record before cont holds the digest the platform measured', async () => {
    const dir = await scope.dir();
    const conf = await snpConf(dir, 'p1');
    const run = track(simRun(dir, conf, ['--hold', ...SHORT_WINDOW]));
    const recorded = await run.waitFor('snp-recorded');
    const held = await run.waitFor('held');
    expect(held).toMatchObject({ secretInjection: false });
    expect(simStatus(dir, 'p1').contCount).toBe(0);
    expect(run.events[0]).toMatchObject({ platform: 'simulated', sev: true });
    expect(run.events[2]).toMatchObject({ event: 'checked', sevType: 'sev-snp', policy: '0x30000' });

    const socketPath = join(dir, 'run', 'p1', 'control.sock');
    const record = (await callControl({ socketPath, method: 'GET', path: '/v1/vms/p1/measurement' })) as Json;
    expect(JSON.parse(await readFile(String(recorded['record']), 'utf8'))).toEqual(record);
    expect(record).toMatchObject({ schema: 'sevsup.snp-launch/v1', platform: 'simulated', sevType: 'sev-snp', state: 'launch-update' });
    expect(record['expectedLaunchDigest']).toBe(recorded['expectedLaunchDigest']);

    // SNP takes no launch secret: refused with its own code, and nothing reaches the platform.
    const header = join(dir, 'h.b64');
    await writeFile(header, `${Buffer.alloc(52, 1).toString('base64')}\n`);
    const inject = await sevsup(['attest', '--run-dir', join(dir, 'run'), 'p1', '--inject-secret', header, header]);
    expect(inject.code).toBe(7);
    expect(inject.stderr).toMatch(/^sevsup: VM p1 is an SEV-SNP guest: SNP has no host-side launch secret .*\[SUP_ERR_SECRET_SNP\]\n$/);

    const approved = await sevsup(['attest', '--run-dir', join(dir, 'run'), 'p1', '--approve']);
    expect(approved).toEqual({ code: 0, stdout: 'p1: approved; state running\n', stderr: '' });
    expect(run.names()).toEqual(['starting', 'spawned', 'checked', 'snp-recorded', 'held', 'resumed', 'running']);
    const status = simStatus(dir, 'p1') as ReturnType<typeof simStatus> & { snp?: { measurement: string } };
    expect(status.contCount).toBe(1);
    // The simulated PSP measured the guest at its first run: the same digest the host recorded before it.
    expect(status.snp?.measurement).toBe(record['expectedLaunchDigest']);

    // The record's reference values are what the owner's own `measure --mode snp --reference-values` prints.
    const firmware = (record['launch'] as { firmware: { path: string } }).firmware.path;
    const measured = await ownerMeasure(firmware, ['--policy', '0x30000', '--reference-values']);
    expect(measured.code).toBe(0);
    expect(JSON.parse(measured.stdout)).toEqual(record['referenceValues']);

    run.signal('SIGINT');
    expect((await run.done).code).toBe(0);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it("an ID block pinning the owner's digest, with host data: the platform accepts it and the record carries both", async () => {
    const dir = await scope.dir();
    const conf = await snpConf(dir, 'p4', 'type=snp,no-debug=1,kernel-hashes=1,id-block=p4.idblock,id-auth=p4.idauth,host-data-file=p4.hd');
    // The owner's digest, from their own files and `sevsup measure`, never from the host.
    const measured = await ownerMeasure(FIRMWARE);
    expect(measured.code).toBe(0);
    const digest = Buffer.from(measured.stdout.trim(), 'hex');
    const idKey = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    const block = buildIdBlock({
      launchDigest: digest,
      familyId: Buffer.alloc(16, 1),
      imageId: Buffer.alloc(16, 2),
      guestSvn: 5,
      policy: 0x30000n,
    });
    const auth = buildIdAuth(block, idKey);
    const hostData = Buffer.alloc(32, 0x5c);
    await writeFile(join(dir, 'p4.idblock'), block.toString('base64'));
    await writeFile(join(dir, 'p4.idauth'), auth.idAuth);
    await writeFile(join(dir, 'p4.hd'), hostData);
    const run = track(simRun(dir, conf, SHORT_WINDOW));
    await run.waitFor('running');
    const recorded = run.events.find((e) => e.event === 'snp-recorded');
    expect(recorded).toMatchObject({
      expectedLaunchDigest: digest.toString('hex'),
      hostData: hostData.toString('hex'),
      idKeyDigest: auth.idKeyDigest.toString('hex'),
      idBlockMatches: true,
    });
    const snp = (simStatus(dir, 'p4') as unknown as { snp: Json }).snp;
    expect(snp).toMatchObject({
      measurement: digest.toString('hex'),
      hostData: hostData.toString('hex'),
      idKeyDigest: auth.idKeyDigest.toString('hex'),
      idBlockEnabled: true,
    });
    run.signal('SIGINT');
    expect((await run.done).code).toBe(0);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it('an ID block pinning another digest: the platform refuses the first run, a failed launch in its words', async () => {
    const dir = await scope.dir();
    const idKey = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    const block = buildIdBlock({
      launchDigest: Buffer.alloc(48, 0x42),
      familyId: Buffer.alloc(16),
      imageId: Buffer.alloc(16),
      guestSvn: 1,
      policy: 0x30000n,
    });
    await writeFile(join(dir, 'p2.idblock'), block.toString('base64'));
    await writeFile(join(dir, 'p2.idauth'), buildIdAuth(block, idKey).idAuth.toString('base64'));
    const conf = await snpConf(dir, 'p2', 'type=snp,no-debug=1,kernel-hashes=1,id-block=p2.idblock,id-auth=p2.idauth');
    const run = track(simRun(dir, conf));
    const result = await run.done;
    expect(result.code).toBe(5);
    expect(run.events.find((e) => e.event === 'snp-recorded')).toMatchObject({ idBlockMatches: false });
    expect(run.names()).not.toContain('running');
    const failed = run.events.at(-1);
    expect(failed).toMatchObject({ event: 'failed', code: 'SUP_ERR_SNP_LAUNCH_FAILED' });
    expect(String(failed?.['message'])).toMatch(
      /the SEV-SNP launch failed at its first run: QEMU exited with code 1 within 3 s of cont: .*SNP_LAUNCH_FINISH/,
    );
    expect(result.stderr).toContain('[SUP_ERR_SNP_LAUNCH_FAILED]');
    expect(processesMentioning(dir)).toEqual([]);
  });

  it('a wrong policy fails closed before cont, with no record', async () => {
    const dir = await scope.dir();
    const conf = await snpConf(dir, 'p3');
    const run = track(simRun(dir, conf, ['--sim-fault', 'wrong-policy']));
    const result = await run.done;
    expect(result.code).toBe(6);
    expect(run.events.at(-1)).toMatchObject({
      event: 'failed',
      code: 'SUP_ERR_CHECK_POLICY_MISMATCH',
      message:
        'VM p3: QEMU applied SEV-SNP policy 0xb0000 (SNP, ABI >= 0.0, SMT allowed, DEBUG allowed), but the config asks for 0x30000 (SNP, ABI >= 0.0, SMT allowed, no debugging); the guest was not resumed',
    });
    expect(run.names()).not.toContain('snp-recorded');
    expect(run.names()).not.toContain('resumed');
    expect(simStatus(dir, 'p3').contCount).toBe(0);
    expect(processesMentioning(dir)).toEqual([]);
  });
});
