// Signed SEV-SNP reports from the simulated platform, end to end: an SNP guest launched with an ID
// block and host data, a report fetched for a nonce with `sevsup sim snp-report` (the sim-only
// request), verified offline by `sevsup verify --report` against the owner's expected digest, host
// data, nonce and ID key digest with the sim's ARK pinned; every tampered field refused and named.
// Also: the request before the first run, for a non-SNP guest, and a real QEMU's CommandNotFound.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snpKeyDigest } from '../../src/sev/snp-id-block.js';
import { REAL_QEMU, SEVSUP } from '../../test/support/it-env.js';
import { terminate } from '../../test/support/terminate.js';
import { missingPrerequisite, useSimFixture } from './harness.js';
import { ensureSimState, expectedDigest, idBlockProps, makeSnpFirmware, p384, snpArgv } from './snp-harness.js';

const missing = missingPrerequisite();
const exec = promisify(execFile);

async function sevsup(args: readonly string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await exec(process.execPath, [SEVSUP, ...args]);
    return { code: 0, out: `${r.stdout}${r.stderr}` };
  } catch (error: unknown) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe.skipIf(missing !== null)(`sim SEV-SNP signed reports${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  const f = useSimFixture();
  let assets = '';
  let firmware = '';
  let state = '';
  let digest: Buffer = Buffer.alloc(0);
  beforeAll(async () => {
    assets = mkdtempSync(join(tmpdir(), 'sim-snp-report-'));
    firmware = makeSnpFirmware(assets);
    state = ensureSimState();
    digest = await expectedDigest(firmware);
  }, 300_000);
  afterAll(() => rmSync(assets, { recursive: true, force: true }));

  it('fetches a report for a nonce that verifies offline against the owner’s values; every tampered field is refused by name', async () => {
    const idKey = p384();
    const hostData = randomBytes(32);
    const object = `host-data=${hostData.toString('base64')},${idBlockProps(digest, 0x30000n, idKey)}`;
    f.launch(snpArgv(f.p, { firmware, object }), ['--sim-state-dir', state]);
    // QEMU's monitor (and the sim's) serves one client at a time: each client goes before the next.
    (await f.connect()).close();
    const nonce = randomBytes(64).toString('hex');
    const report = join(f.dir, 'report.bin');
    const certs = join(f.dir, 'certs');
    const fetch = ['sim', 'snp-report', 'vm', '--socket', f.p.monitor, '--report-data', nonce, '--out', report, '--certs-out', certs];

    // Before the first run there is no launch to report on.
    const early = await sevsup(fetch);
    expect(early.code).toBe(5);
    expect(early.out).toContain('the guest has not been launched yet');

    const qmp = await f.connect();
    await qmp.ret('cont');
    qmp.close();
    const fetched = await sevsup(fetch);
    expect(fetched).toMatchObject({ code: 0 });
    expect(readFileSync(join(certs, 'ark.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');

    const verify = (file: string): Promise<{ code: number; out: string }> =>
      sevsup([
        'verify',
        '--report',
        file,
        '--certs',
        certs,
        '--ark',
        join(certs, 'ark.pem'),
        '--expected-measurement',
        digest.toString('hex'),
        '--host-data',
        hostData.toString('hex'),
        '--report-data',
        nonce,
        '--id-key-digest',
        snpKeyDigest(idKey).toString('hex'),
      ]);
    const good = await verify(report);
    expect(good.code, good.out).toBe(0);
    expect(good.out).toContain('OK: the measurement is the expected');

    // AMD's built-in roots never verify the SIMULATED chain.
    const unpinned = await sevsup(['verify', '--report', report, '--certs', certs, '--expected-measurement', digest.toString('hex')]);
    expect(unpinned.code).not.toBe(0);

    const bytes = readFileSync(report);
    const cases: [string, number, number, string][] = [
      ['measurement', 0x90, 0x01, 'the measurement'],
      ['host data', 0xc0, 0x01, 'host data'],
      ['report data', 0x50, 0x01, 'report data (your nonce)'],
      ['ID key digest', 0xe0, 0x01, 'the ID key digest'],
      ['policy (debug bit)', 0x0a, 0x08, 'the policy allows debugging'],
      ['chip id', 0x1a0, 0x01, 'CHIP_ID'],
      ['reported TCB', 0x180, 0x01, 'the VCEK endorses TCB'],
      ['signature', 0x2a0, 0x01, 'the VCEK signature does not verify'],
    ];
    for (const [field, offset, bit, named] of cases) {
      const tampered = Buffer.from(bytes);
      tampered[offset] = (tampered[offset] as number) ^ bit;
      const file = join(f.dir, 'tampered.bin');
      writeFileSync(file, tampered);
      const r = await verify(file);
      expect(r.code, field).toBe(1);
      expect(r.out, field).toContain('ERROR: the VCEK signature does not verify');
      expect(r.out, field).toContain(`ERROR: ${named}`);
    }
  });

  it('refuses the request for a guest that is not an SNP guest, and bad report data', async () => {
    f.launch(snpArgv(f.p, { firmware, kernel: false, machine: 'q35' }), ['--sim-state-dir', state]);
    const qmp = await f.connect();
    expect(await qmp.cmd('x-sevsup-sim-snp-report', { 'report-data': '00'.repeat(64) })).toEqual({
      error: { class: 'GenericError', desc: 'x-sevsup-sim-snp-report: the guest is not an SEV-SNP guest' },
    });
    expect(await qmp.cmd('x-sevsup-sim-snp-report', { 'report-data': 'abc' })).toEqual({
      error: { class: 'GenericError', desc: 'x-sevsup-sim-snp-report: report-data must be 64 bytes, as 128 hex digits or base64' },
    });
    expect(await qmp.cmd('x-sevsup-sim-snp-report', { nonce: 'abc' })).toEqual({
      error: { class: 'GenericError', desc: "Parameter 'nonce' is unexpected" },
    });
  });

  it('is refused on a real QEMU (hardware has no such request): SUP_ERR_SIM_ONLY', async () => {
    const socket = join(f.dir, 'real.sock');
    const qemu = spawn(REAL_QEMU, ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', `unix:${socket},server=on,wait=off`], {
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => qemu.once('exit', resolve));
    try {
      let r = { code: -1, out: '' };
      for (let i = 0; i < 50; i++) {
        r = await sevsup(['sim', 'snp-report', 'vm', '--socket', socket, '--report-data', '00'.repeat(64), '--out', join(f.dir, 'r.bin')]);
        if (!r.out.includes('ENOENT') && !r.out.includes('ECONNREFUSED')) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(r.code).toBe(10);
      expect(r.out).toContain('does not run on the simulated platform: x-sevsup-sim-snp-report exists only there');
      expect(r.out).toContain('[SUP_ERR_SIM_ONLY]');
    } finally {
      await terminate(qemu, exited, 5000);
    }
  });
});
