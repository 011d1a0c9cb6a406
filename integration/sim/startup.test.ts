// QEMU 7.2's start-up on an SEV host as the simulated platform reproduces it: refusals with QEMU's
// exact stderr and exit status, SEV-ES (checked by the validator), plain VMs, and the sim's own
// options. Every test ends with no sim or QEMU process left.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { HAVE_VALIDATOR, runValidator } from '../../test/support/validator.js';
import { join } from 'node:path';
import { argvFor, DEBIAN_OVMF, missingPrerequisite, SIM, spec, useSimFixture, type RawQmp, type SimProcess } from './harness.js';

const missing = missingPrerequisite();
const run = promisify(execFile);

describe.skipIf(missing !== null)(`sim start-up${missing === null ? '' : ` (skipped: ${missing})`}`, () => {
  const f = useSimFixture();
  const launch = (argv: readonly string[]): SimProcess => f.launch(argv);
  const connect = (): Promise<RawQmp> => f.connect();

  it("refuses a cbitpos other than the host's 47 as sev_kvm_init does", async () => {
    const base = spec();
    const sim = launch(argvFor(spec({ sev: { ...(base.sev as NonNullable<typeof base.sev>), cbitpos: 51 } }), f.p));
    expect(await sim.exited).toEqual({ code: 1, signal: null });
    expect(sim.stderr).toBe(
      "qemu-system-x86_64: -accel kvm: sev_kvm_init: cbitpos check failed, host '47' requested '51'\n" +
        'qemu-system-x86_64: -accel kvm: failed to initialize kvm: Operation not permitted\n',
    );
  });

  it("refuses kernel-hashes with Debian's OVMF (empty hashes area)", async () => {
    const sim = launch(argvFor(spec({ firmware: { path: DEBIAN_OVMF } }), f.p));
    expect(await sim.exited).toEqual({ code: 1, signal: null });
    expect(sim.stderr).toBe('qemu-system-x86_64: SEV: guest firmware hashes table area is invalid (base=0x0 size=0x0)\n');
  });

  it('reports an unreadable session file as LAUNCH_START does', async () => {
    const session = join(f.dir, 'nope.b64');
    const sim = launch(argvFor(spec({ launch: { dhCert: session, session } }), f.p));
    expect(await sim.exited).toEqual({ code: 1, signal: null });
    expect(sim.stderr).toBe(
      `qemu-system-x86_64: -accel kvm: SEV: Failed to read '${session}' (Failed to open file “${session}”: No such file or directory)\n` +
        'qemu-system-x86_64: -accel kvm: sev_kvm_init: failed to create encryption context\n' +
        'qemu-system-x86_64: -accel kvm: failed to initialize kvm: Operation not permitted\n',
    );
  });

  it('aborts like QEMU 7.2 when the guest would run under TCG (no -accel kvm)', async () => {
    const argv = argvFor(spec(), f.p).filter((a, i, all) => a !== '-accel' && all[i - 1] !== '-accel');
    const sim = launch(argv);
    expect(await sim.exited).toEqual({ code: null, signal: 'SIGABRT' });
    expect(sim.stderr).toBe(
      "qemu-system-x86_64: ../../softmmu/vl.c:2590: qemu_machine_creation_done: Assertion `machine->cgs->ready' failed.\n",
    );
  });

  it('measures SEV-ES with one VMSA per vCPU, as the validator computes it', async () => {
    const es = spec({
      firmware: { path: DEBIAN_OVMF },
      cores: 2,
      sev: { type: 'es', nodbg: true, noks: true, kernelHashes: false, key: 'amd_sev' },
    });
    const { kernel: _k, cmdline: _c, ...noKernel } = es;
    launch(argvFor(noKernel, f.p));
    const qmp = await connect();
    expect(await qmp.ret('query-sev')).toMatchObject({ enabled: true, policy: 0xf, state: 'launch-secret' });
    const { data } = (await qmp.ret('query-sev-launch-measure')) as { data: string };
    if (HAVE_VALIDATOR) {
      const args = {
        measurement: data,
        apiMajor: 1,
        apiMinor: 55,
        buildId: 21,
        policy: 0xf,
        firmware: DEBIAN_OVMF,
        tik: join(f.dir, 'sim-tik.bin'),
        tek: join(f.dir, 'sim-tek.bin'),
      };
      // -cpu EPYC is family 23, model 1, stepping 2 in QEMU 7.2.
      expect(await runValidator({ ...args, numCpus: 2, sku: [23, 1, 2] })).toMatchObject({ exitCode: 0 });
      expect((await runValidator({ ...args, numCpus: 1, sku: [23, 1, 2] })).exitCode).toBe(1);
    }
  });

  it('runs a VM without SEV (no machine link) exactly as QEMU does', async () => {
    const { sev: _s, ...plain } = spec();
    launch(argvFor(plain, f.p));
    const qmp = await connect();
    expect(await qmp.raw('{"execute":"query-sev"}')).toBe(
      '{"return": {"enabled": false, "api-minor": 0, "handle": 0, "state": "uninit", "api-major": 0, "build-id": 0, "policy": 0}}',
    );
    expect(await qmp.cmd('sev-inject-launch-secret', { 'packet-header': 'AAAA', secret: 'AAAA' })).toEqual({
      error: { class: 'GenericError', desc: 'SEV not enabled for guest' },
    });
    await qmp.ret('cont');
    // No SEV blocker: QEMU itself judges the (bad) URI.
    expect(await qmp.cmd('migrate', { uri: 'bogus:x' })).not.toEqual({
      error: { class: 'GenericError', desc: 'SEV: Migration is not implemented' },
    });
  });

  it('treats a sev-guest object without the machine link as a plain VM (facts §2.3)', async () => {
    const argv = argvFor(spec(), f.p).map((a) => (a.startsWith('q35,') ? a.replace(',confidential-guest-support=sev0', '') : a));
    expect(argv.filter((a) => a.includes('confidential-guest-support'))).toEqual([]);
    launch(argv);
    const qmp = await connect();
    expect(await qmp.ret('query-sev')).toMatchObject({ enabled: false, state: 'uninit' });
    expect(await qmp.ret('qom-get', { path: '/objects/sev0', property: 'policy' })).toBe(0xb);
  });

  it('starts running without -S, with the measurement still available and migration blocked', async () => {
    launch(argvFor(spec(), f.p).filter((a) => a !== '-S'));
    const qmp = await connect();
    expect(await qmp.ret('query-sev')).toMatchObject({ state: 'running' });
    expect(await qmp.ret('query-sev-launch-measure')).toMatchObject({ data: expect.any(String) });
    expect(await qmp.cmd('migrate', { uri: 'exec:cat >/dev/null' })).toEqual({
      error: { class: 'GenericError', desc: 'SEV: Migration is not implemented' },
    });
  });

  it('passes exec-oob and its replies through, ids echoed', async () => {
    launch(argvFor(spec(), f.p));
    const qmp = await f.connect({ negotiate: false });
    await qmp.raw('{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}');
    expect(await qmp.raw('{"exec-oob":"query-version","id":{"n":[1]}}')).toBe(
      '{"id": {"n": [1]}, "error": {"class": "GenericError", "desc": "The command query-version does not support OOB"}}',
    );
    expect(await qmp.raw('{"exec-oob":"migrate-pause","id":"o"}')).toMatch(/^\{"id": "o", "error": /);
    expect(await qmp.raw('{"execute":"query-sev","id":"after"}')).toMatch(/"state": "launch-secret".*\}, "id": "after"\}$/);
  });

  it('explains itself with --sim-help, and refuses unknown --sim- options', async () => {
    const help = await run(process.execPath, [SIM, '--sim-help']);
    expect(help.stdout).toContain('NOT a security boundary');
    await expect(run(process.execPath, [SIM, '--sim-frobnicate', '1', '-S'])).rejects.toMatchObject({
      code: 2,
      stderr: "sevsup-sim: simulated: unknown option '--sim-frobnicate' (see --sim-help)\n",
    });
  });
});
