// SEV-SNP as the simulated platform runs it (QEMU 10 on an SNP host, Debian's QEMU 7.2 underneath):
// start-up refusals with QEMU 10's texts, query-sev's SNP shape and states, the launch digest at the
// first cont (equal to what an owner computes), the ID block checked at LAUNCH_FINISH (a wrong
// digest or policy stops QEMU before the guest runs), and QEMU's own failures at the first run.
// Every test ends with no sim or QEMU process left.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snpKeyDigest } from '../../src/sev/snp-id-block.js';
import { DEBIAN_OVMF, missingPrerequisite, readStatus, useSimFixture } from './harness.js';
import { expectedDigest, idBlockProps, makeSnpFirmware, p384, snpArgv, withoutSnpMetadata } from './snp-harness.js';

const missing = missingPrerequisite();
const PREFIX = 'qemu-system-x86_64: ';
/** stderr without QEMU 7.2's TCG feature warnings (the simulated host runs KVM, which has none). */
const withoutTcgWarnings = (stderr: string): string => stderr.replace(/^qemu-system-x86_64: warning: TCG doesn't support .*\n/gm, '');

describe.skipIf(missing !== null)(`sim SEV-SNP launch${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  const f = useSimFixture();
  let assets = '';
  let firmware = '';
  let debianFirmware = '';
  let digest: Buffer = Buffer.alloc(0);
  beforeAll(async () => {
    assets = mkdtempSync(join(tmpdir(), 'sim-snp-assets-'));
    firmware = makeSnpFirmware(assets);
    debianFirmware = makeSnpFirmware(assets, 'debian');
    digest = await expectedDigest(firmware);
  });
  afterAll(() => rmSync(assets, { recursive: true, force: true }));

  const objectOption = (argv: readonly string[]): string => argv[argv.indexOf('-object') + 1] as string;

  it('refuses property values as QEMU 10 creates the object, naming the option', async () => {
    // Texts and locations as QEMU 10.0.13 prints them (checked with Debian trixie's): the QAPI visit's
    // errors name the -object option, the property setters' (base64 lengths) do not.
    const cases: [string, string, boolean][] = [
      ['host-data=AAAA', 'parameter length of 3 not equal to 32', false],
      [`id-block=${Buffer.alloc(95).toString('base64')}`, 'parameter length of 95 not equal to 96', false],
      [`id-auth=${Buffer.alloc(4097).toString('base64')}`, 'parameter length:ID_AUTH 4097 exceeds max of 4096', false],
      [`guest-visible-workarounds=${Buffer.alloc(8).toString('base64')}`, 'parameter length of 8 exceeds max of 16', false],
      ['host-data=!!!!', 'Base64 data contains invalid characters', false],
      ['handle=1', "Invalid parameter 'handle'", true],
      ['dh-cert-file=/x', "Invalid parameter 'dh-cert-file'", true],
      ['policy=zero', "Parameter 'policy' expects a uint64 value", true],
    ];
    // Side by side, each sim with its own directory (none of them gets as far as QEMU).
    const runs = cases.map(([object, error, located], i) => {
      const argv = snpArgv(f.sub(`c${i}`), { firmware, object });
      return { sim: f.launch(argv), expected: `${PREFIX}${located ? `-object ${objectOption(argv)}: ` : ''}${error}\n` };
    });
    for (const { sim, expected } of runs) {
      expect(await sim.exited).toEqual({ code: 1, signal: null });
      expect(sim.stderr).toBe(expected);
    }
  });

  it('refuses SMM, a wrong cbitpos and policy bits KVM rejects at accelerator init', async () => {
    const smm = f.launch(snpArgv(f.sub('smm'), { firmware, machine: 'q35,confidential-guest-support=sev0,smm=on' }));
    const cbit = f.launch(
      snpArgv(f.sub('cbit'), { firmware, objectText: 'sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on' }),
    );
    const ma = f.launch(snpArgv(f.sub('ma'), { firmware, object: 'policy=0x70000' }));
    expect(await smm.exited).toEqual({ code: 1, signal: null });
    expect(smm.stderr).toBe(
      `${PREFIX}-accel kvm: SEV-SNP does not support SMM.\n${PREFIX}-accel kvm: failed to initialize kvm: Operation not permitted\n`,
    );
    expect(await cbit.exited).toEqual({ code: 1, signal: null });
    expect(cbit.stderr).toContain("sev_common_kvm_init: cbitpos check failed, host '47' requested '51'\n");
    expect(await ma.exited).toEqual({ code: 1, signal: null });
    expect(ma.stderr).toBe(
      `${PREFIX}-accel kvm: sev_snp_launch_start: SNP_LAUNCH_START ret=-22 fw_error=0 ''\n` +
        `${PREFIX}-accel kvm: sev_common_kvm_init: failed to create encryption context\n` +
        `${PREFIX}-accel kvm: failed to initialize kvm: Operation not permitted\n`,
    );
  });

  it('refuses a -bios whose size is not a multiple of 64 KiB, and kernel-hashes without a hashes area', async () => {
    const odd = join(f.dir, 'odd.fd');
    const bytes = readFileSync(firmware);
    writeFileSync(odd, bytes.subarray(0x1000));
    const sim = f.launch(snpArgv(f.sub('odd'), { firmware: odd }));
    const plain = f.launch(snpArgv(f.sub('plain'), { firmware: DEBIAN_OVMF }));
    expect(await sim.exited).toEqual({ code: 1, signal: null });
    expect(sim.stderr).toBe(`${PREFIX}qemu: could not load PC BIOS '${odd}'\n`);
    expect(await plain.exited).toEqual({ code: 1, signal: null });
    expect(plain.stderr).toBe(`${PREFIX}SEV: guest firmware hashes table area is invalid (base=0x0 size=0x0)\n`);
  });

  it('answers query-sev in the SNP shape, launch-update until the first cont, then running; SEV-only commands fail', async () => {
    f.launch(snpArgv(f.p, { firmware, vcpus: 2 }));
    const qmp = await f.connect();
    expect(await qmp.ret('query-sev')).toEqual({
      enabled: true,
      'api-major': 1,
      'api-minor': 55,
      'build-id': 21,
      state: 'launch-update',
      'sev-type': 'sev-snp',
      'snp-policy': 0x30000,
    });
    expect(await qmp.cmd('query-sev-launch-measure')).toEqual({
      error: { class: 'GenericError', desc: 'SEV launch measurement is not available' },
    });
    expect(await qmp.cmd('sev-inject-launch-secret', { 'packet-header': 'AAAA', secret: 'AAAA' })).toEqual({
      error: { class: 'GenericError', desc: 'SEV: Not in correct state. (LSECRET) 1' },
    });
    expect(await qmp.cmd('query-sev-attestation-report', { mnonce: Buffer.alloc(16).toString('base64') })).toEqual({
      error: { class: 'GenericError', desc: 'SEV: Failed to query the attestation report length ret=-1 fw_err=0 ()' },
    });
    expect(await qmp.ret('human-monitor-command', { 'command-line': 'info sev' })).toBe(
      'SEV type: sev-snp\r\nstate: launch-update\r\nbuild: 21\r\napi version: 1.55\r\ndebug: off\r\nSMT allowed: on\r\n',
    );
    await qmp.ret('cont');
    expect(await qmp.ret('query-sev')).toMatchObject({ state: 'running', 'sev-type': 'sev-snp' });
    expect(await qmp.cmd('migrate', { uri: 'exec:cat' })).toEqual({
      error: { class: 'GenericError', desc: 'SEV-SNP: Migration is not implemented' },
    });
    const status = readStatus(f.p) as unknown as { snp: { measurement: string; vcpus: number } };
    expect(status.snp.measurement).toBe((await expectedDigest(firmware, 2)).toString('hex'));
    expect(status.snp.vcpus).toBe(2);
  });

  it('launches with an ID block and host data that match, keeping the launch facts for reports', async () => {
    const idKey = p384();
    const authorKey = p384();
    const hostData = Buffer.alloc(32, 0x5a);
    const object = `policy=0x30000,host-data=${hostData.toString('base64')},${idBlockProps(digest, 0x30000n, idKey, authorKey)}`;
    f.launch(snpArgv(f.p, { firmware, object }));
    const qmp = await f.connect();
    await qmp.ret('cont');
    expect(await qmp.ret('query-sev')).toMatchObject({ state: 'running' });
    const status = readStatus(f.p) as unknown as { snp: Record<string, unknown> };
    expect(status.snp).toMatchObject({
      measurement: digest.toString('hex'),
      hostData: hostData.toString('hex'),
      idKeyDigest: snpKeyDigest(idKey).toString('hex'),
      authorKeyDigest: snpKeyDigest(authorKey).toString('hex'),
      authorKeyEnabled: true,
      guestSvn: 7,
      familyId: 'f1'.repeat(16),
      policy: '0x30000',
    });
  });

  it('stops at the first cont when the ID block names another digest (a changed kernel), before the guest runs', async () => {
    const idKey = p384();
    const other = await expectedDigest(firmware, 1, { cmdline: 'console=ttyS0 panic=-1 init=/bin/sh' });
    const sim = f.launch(snpArgv(f.p, { firmware, object: idBlockProps(other, 0x30000n, idKey) }));
    const qmp = await f.connect();
    await qmp.raw('{"execute":"cont"}').catch(() => undefined);
    expect(await sim.exited).toEqual({ code: 1, signal: null });
    expect(sim.stderr).toContain(`${PREFIX}SNP_LAUNCH_FINISH ret=-5 fw_error=11 'Bad measurement'\n`);
    expect(readStatus(f.p).state).toBe('launch-update');
  });

  it('stops at the first cont on an ID block for another policy, or signed by another key', async () => {
    const idKey = p384();
    // The ID auth's signature over the block, one byte flipped: the firmware's BAD_SIGNATURE.
    const props = idBlockProps(digest, 0x30000n, idKey);
    const auth = Buffer.from(/id-auth=([^,]+)/.exec(props)?.[1] as string, 'base64');
    auth[0x40] = (auth[0x40] as number) ^ 1;
    const forged = props.replace(/id-auth=[^,]+/, `id-auth=${auth.toString('base64')}`);
    // Side by side, each with its own monitor.
    const [policyP, sigP] = [f.sub('policy'), f.sub('sig')];
    const policy = f.launch(snpArgv(policyP, { firmware, object: idBlockProps(digest, 0xb0000n, idKey) }));
    const sig = f.launch(snpArgv(sigP, { firmware, object: forged }));
    await Promise.all([policyP, sigP].map(async (p) => (await f.connect({ p })).raw('{"execute":"cont"}').catch(() => undefined)));
    expect(await policy.exited).toEqual({ code: 1, signal: null });
    expect(policy.stderr).toContain(`${PREFIX}SNP_LAUNCH_FINISH ret=-5 fw_error=7 'Policy is not allowed'\n`);
    expect(await sig.exited).toEqual({ code: 1, signal: null });
    expect(sig.stderr).toContain(`${PREFIX}SNP_LAUNCH_FINISH ret=-5 fw_error=10 'Bad signature'\n`);
  });

  it('fails the first run as QEMU 10 does: no SEV metadata (exit 1), kernel-hashes without a kernel (abort)', async () => {
    const broken = withoutSnpMetadata(firmware, join(f.dir, 'nometa.fd'));
    // Side by side, each with its own monitor.
    const [nometaP, abortP] = [f.sub('nometa'), f.sub('abort')];
    const nometa = f.launch(snpArgv(nometaP, { firmware: broken }));
    const argv = snpArgv(abortP, {
      firmware,
      kernel: false,
      objectText: 'sev-snp-guest,id=sev0,cbitpos=47,reduced-phys-bits=1,kernel-hashes=on',
    });
    const abort = f.launch(argv);
    await Promise.all([nometaP, abortP].map(async (p) => (await f.connect({ p })).raw('{"execute":"cont"}').catch(() => undefined)));
    expect(await nometa.exited).toEqual({ code: 1, signal: null });
    expect(withoutTcgWarnings(nometa.stderr)).toBe(`${PREFIX}sev_snp_launch_finish: Failed to locate SEV metadata header\n`);
    expect(await abort.exited).toEqual({ code: null, signal: 'SIGABRT' });
    expect(abort.stderr).toContain("snp_launch_update_kernel_hashes: Assertion `sev_snp->kernel_hashes_data' failed.\n");
  });

  it("launches Debian's OVMF (SNP metadata, no KERNEL_HASHES section) without a kernel", async () => {
    f.launch(snpArgv(f.p, { firmware: debianFirmware, kernel: false }));
    const qmp = await f.connect();
    await qmp.ret('cont');
    expect(await qmp.ret('query-sev')).toMatchObject({ state: 'running' });
  });
});
