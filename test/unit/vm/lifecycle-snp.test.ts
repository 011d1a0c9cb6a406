// The SEV-SNP launch on real processes and sockets: test/fixtures/bin/fake-qemu.mjs, spawned by the
// real launcher with the real argv builder's `sev-snp-guest` object, answers QEMU 10's SNP QMP on the real monitor socket;
// the real QMP client, preflight (an SNP-shaped firmware image), digest, record builder and record
// store run. Each scenario asserts the commands the fake received: `cont` never reaches QEMU on a
// failed check or an unwritten record, query-sev-launch-measure and secret injection never at all.
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { computeSnpExpectedDigest } from '../../../src/attestation/snp-inputs.js';
import { parseSnpReferenceValues } from '../../../src/attestation/snp-reference-values.js';
import type { SnpSpec, VmSpec } from '../../../src/config/vm-spec.js';
import { buildIdAuth, buildIdBlock } from '../../../src/sev/snp-id-block.js';
import { snpPolicyFromConfig } from '../../../src/sev/snp-policy.js';
import { cpuSignature } from '../../../src/sev/vmsa.js';
import { VmLifecycle } from '../../../src/vm/lifecycle.js';
import type { LifecycleOptions } from '../../../src/vm/lifecycle-options.js';
import { SNP_QEMU_GUEST_FEATURES, parseSnpRecord } from '../../../src/vm/snp-record.js';
import type { LifecycleEventRecord } from '../../../src/vm/types.js';
import { fakeQemuCommands, fakeQemuLaunch, names, startFailure, waitFor } from '../../support/lifecycle-rig.js';
import { buildSnpImage, SECTION } from '../../support/ovmf-images.js';
import { readLatestRecord } from '../../support/records.js';

let root: string;
let firmware: string;
let n = 0;
const lifecycles: VmLifecycle[] = [];
/** The fake QEMU's vCPU signature (qom-get family/model/stepping: 23/1/2). */
const FAKE_VCPU_SIGNATURE = cpuSignature(23, 1, 2);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'snp-lc-'));
  firmware = join(root, 'snp.fd');
  await writeFile(
    firmware,
    buildSnpImage({
      sections: [
        [0x800000, 0x2000, SECTION.SEC_MEM],
        [0x802000, 0x1000, SECTION.SECRETS],
        [0x803000, 0x1000, SECTION.CPUID],
        [0x804000, 0x1000, SECTION.KERNEL_HASHES],
      ],
      hashes: [0x804c00, 0x400],
    }),
  );
});
afterEach(async () => {
  await Promise.all(lifecycles.splice(0).map((l) => l.stop('test cleanup')));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const SNP: SnpSpec = {
  type: 'snp',
  key: 'amd-sev',
  kernelHashes: false,
  nodbg: true,
  allowSmt: true,
  singleSocket: false,
  cxlAllow: false,
  aes256Xts: false,
  raplDis: false,
  ciphertextHiding: false,
  pageSwapDisable: false,
  authorKey: false,
  vcek: true,
};

function spec(sev: Partial<SnpSpec> = {}, over: Partial<VmSpec> = {}): VmSpec {
  return {
    name: 'vm1',
    source: join(root, 'vm1.conf'),
    memory: 256,
    cores: 2,
    cpu: 'EPYC-v4',
    bios: 'ovmf',
    firmware: { path: firmware },
    disks: [],
    nets: [],
    attest: 'none',
    autostart: false,
    serial: 'none',
    sev: { ...SNP, ...sev },
    qmpAllow: [],
    qmpDeny: [],
    ...over,
  };
}

/** What `sevsup measure --mode snp` gives for the test guest's inputs (no kernel, 2 vCPUs of the fake's signature). */
function expectedDigest(): ReturnType<typeof computeSnpExpectedDigest> {
  return computeSnpExpectedDigest({
    firmware,
    vcpus: 2,
    vcpuSignature: FAKE_VCPU_SIGNATURE,
    guestFeatures: SNP_QEMU_GUEST_FEATURES,
    vmmType: 'QEMU',
  });
}

interface Harness {
  readonly lifecycle: VmLifecycle;
  readonly events: LifecycleEventRecord[];
  readonly commands: () => Promise<string[]>;
  readonly stateDir: string;
}

/** For a launch that reaches `running`: it waits out the first-run window, so a short one (the 1.5 s default here is for QEMUs that exit in it). */
const RUNS: Partial<LifecycleOptions> = { snpFirstRunWindowMs: 200 };

async function harness(scenario: object, vmSpec: VmSpec = spec(), over: Partial<LifecycleOptions> = {}): Promise<Harness> {
  const dir = join(root, String(n++));
  const commandLog = join(dir, 'commands.jsonl');
  const stateDir = join(dir, 'state');
  const lifecycle = new VmLifecycle({
    spec: vmSpec,
    ...fakeQemuLaunch(scenario, commandLog),
    runDir: join(dir, 'run'),
    stateDir,
    powerdownTimeoutMs: 2000,
    snpFirstRunWindowMs: 1500,
    ...over,
  });
  lifecycles.push(lifecycle);
  const events: LifecycleEventRecord[] = [];
  lifecycle.onEvent((e) => events.push(e));
  return { lifecycle, events, stateDir, commands: () => fakeQemuCommands(commandLog) };
}

describe('VmLifecycle: the SEV-SNP launch', () => {
  it('checks query-sev, writes the record before cont, holds, and runs once approved; never measures or injects', async () => {
    const h = await harness({}, spec({}, { attest: 'hold' }), RUNS);
    const started = h.lifecycle.start();
    const held = await waitFor(h, 'held');
    expect(held).toMatchObject({ secretInjection: false });
    // Durable before cont: on disk while QEMU has not been resumed.
    expect(await h.commands()).not.toContain('cont');
    const record = await readLatestRecord(h.stateDir, 'vm1');
    if (record?.schema !== 'sevsup.snp-launch/v1') throw new Error(`expected an SNP launch record, got ${record?.schema}`);
    expect(record.sevType).toBe('sev-snp');
    expect(record.platform).toBe('simulated');
    expect(record.state).toBe('launch-update');
    expect(record.policy).toMatchObject({ value: '0x30000', abiMajor: 0, abiMinor: 0, flags: ['SMT'] });
    expect([record.apiMajor, record.apiMinor, record.buildId]).toEqual([1, 55, 21]);
    expect(record.launch).toMatchObject({ vcpus: 2, vcpuSignature: `0x${FAKE_VCPU_SIGNATURE.toString(16)}`, guestFeatures: '0x1' });
    expect(record.launch.qemuVersion).toBe('7.2.22 (fake)');

    // The expected digest is the one `sevsup measure --mode snp` gives for the same inputs.
    const expected = await expectedDigest();
    expect(record.expectedLaunchDigest).toBe(expected.digest.toString('hex'));
    expect(record.launch.firmware.sha256).toBe(expected.firmware.sha256);
    // The reference values load as `verify --report --reference-values` loads them.
    const rv = parseSnpReferenceValues(JSON.parse(JSON.stringify(record.referenceValues)), 'record');
    expect(rv).toMatchObject({ measurement: record.expectedLaunchDigest, policy: '0x30000', hostData: null, idKeyDigest: null });

    await expect(h.lifecycle.injectSecret({ packetHeader: 'AAAA', secret: 'AAAA' })).rejects.toMatchObject({
      code: 'SUP_ERR_SECRET_SNP',
      message: expect.stringContaining('VM vm1 is an SEV-SNP guest: SNP has no host-side launch secret'),
    });
    expect(h.lifecycle.state).toBe('held');

    await h.lifecycle.approve();
    await started;
    expect(h.lifecycle.state).toBe('running');
    expect(names(h.events)).toEqual(['starting', 'spawned', 'checked', 'snp-recorded', 'held', 'resumed', 'running']);
    expect(h.events[2]).toMatchObject({ policy: '0x30000', sevType: 'sev-snp' });
    expect(h.events[3]).toMatchObject({ expectedLaunchDigest: record.expectedLaunchDigest, hostData: null, idBlockMatches: null });
    const commands = await h.commands();
    expect(commands).not.toContain('query-sev-launch-measure');
    expect(commands).not.toContain('sev-inject-launch-secret');
    expect(commands.filter((c) => c === 'cont')).toHaveLength(1);
    expect(h.lifecycle.status().record).toMatch(/measurements\/.*\.json$/);
  });

  it('records host data and the ID key digest of an ID block pinning this launch', async () => {
    const expected = await expectedDigest();
    const policy = snpPolicyFromConfig({ ...SNP });
    const block = buildIdBlock({
      launchDigest: expected.digest,
      familyId: Buffer.alloc(16),
      imageId: Buffer.alloc(16, 1),
      guestSvn: 3,
      policy,
    });
    const idKey = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    const auth = buildIdAuth(block, idKey);
    await writeFile(join(root, 'id.block'), block.toString('base64'));
    await writeFile(join(root, 'id.auth'), auth.idAuth);
    const hostData = Buffer.alloc(32, 0xab);
    const h = await harness(
      {},
      spec({
        idBlock: join(root, 'id.block'),
        idAuth: join(root, 'id.auth'),
        hostData: { kind: 'value', base64: hostData.toString('base64') },
      }),
      RUNS,
    );
    await h.lifecycle.start();
    const record = parseSnpRecord(JSON.parse(await readFile(h.lifecycle.status().record ?? '', 'utf8')));
    expect(record?.hostData).toBe(hostData.toString('hex'));
    expect(record?.idBlock).toMatchObject({
      launchDigest: expected.digest.toString('hex'),
      matchesExpected: true,
      guestSvn: 3,
      idKeyDigest: auth.idKeyDigest.toString('hex'),
      authorKeyDigest: null,
    });
    expect(record?.referenceValues).toMatchObject({ hostData: hostData.toString('hex'), idKeyDigest: auth.idKeyDigest.toString('hex') });
    expect(record?.launch.idBlock).toMatchObject({ path: join(root, 'id.block') });
  });
});

describe('VmLifecycle: the SEV-SNP launch fails closed', () => {
  it.each([
    [
      'QEMU applied another policy',
      { sev: { snpPolicy: 0xb0000 } },
      'SUP_ERR_CHECK_POLICY_MISMATCH',
      'VM vm1: QEMU applied SEV-SNP policy 0xb0000 (SNP, ABI >= 0.0, SMT allowed, DEBUG allowed), but the config asks for 0x30000 (SNP, ABI >= 0.0, SMT allowed, no debugging); the guest was not resumed',
    ],
    [
      'QEMU reports an SEV guest',
      { sev: { sevType: 'sev' } },
      'SUP_ERR_CHECK_SEV_TYPE_MISMATCH',
      'VM vm1: QEMU reports sev-type sev (SEV or SEV-ES), expected sev-snp; the guest was not resumed',
    ],
    [
      'the guest already ran',
      { sev: { state: 'running' } },
      'SUP_ERR_CHECK_STATE',
      'VM vm1: SEV-SNP state is running, expected launch-update: the guest has already run, so its launch was finished without sevsup (was QEMU started without -S?); the guest was not resumed',
    ],
    [
      'SEV is off',
      { sev: { enabled: false, state: 'uninit' } },
      'SUP_ERR_CHECK_SEV_DISABLED',
      'VM vm1: QEMU reports SEV is not enabled (query-sev: enabled false), expected an SEV-SNP guest with policy 0x30000 (SNP, ABI >= 0.0, SMT allowed, no debugging); the guest was not resumed',
    ],
  ])('when %s: never cont, no record, state failed', async (_name, scenario, code, message) => {
    const h = await harness(scenario);
    const error = await startFailure(h);
    expect([error.code, error.message]).toEqual([code, message]);
    expect(h.lifecycle.state).toBe('failed');
    const commands = await h.commands();
    expect(commands).not.toContain('cont');
    expect(commands).not.toContain('query-sev-launch-measure');
    expect(commands.at(-1)).toBe('quit');
    expect(await readLatestRecord(h.stateDir, 'vm1')).toBeNull();
  });

  it('a kernel that cannot be hashed after spawn (the digest cannot be computed) stops the guest before cont, with no record', async () => {
    // The digest up to the VMSAs is computed while QEMU starts; its failure must still end the launch.
    const kernel = join(root, 'vanishing-vmlinuz');
    await writeFile(kernel, 'a kernel');
    const h = await harness({}, spec({ kernelHashes: true }, { kernel, attest: 'hold' }));
    h.lifecycle.onEvent((e) => {
      if (e.event === 'spawned') unlinkSync(kernel);
    });
    const error = await startFailure(h);
    expect(error.code).toBe('SUP_ERR_KERNEL_READ');
    expect(error.message).toMatch(/^VM vm1: cannot compute the expected SNP launch digest: .*; the guest was not resumed$/);
    expect(await h.commands()).not.toContain('cont');
    expect(names(h.events)).not.toContain('snp-recorded');
    expect(await readLatestRecord(h.stateDir, 'vm1')).toBeNull();
    expect(h.lifecycle.state).toBe('failed');
  });

  it('a firmware image replaced after preflight read it is refused before cont: the digest would not be of what QEMU loaded', async () => {
    const changing = join(root, 'changing.fd');
    copyFileSync(firmware, changing);
    const h = await harness({}, spec({}, { firmware: { path: changing } }));
    h.lifecycle.onEvent((e) => {
      if (e.event === 'spawned') writeFileSync(changing, buildSnpImage({ sections: [[0x800000, 0x1000, SECTION.SEC_MEM]] }));
    });
    const error = await startFailure(h);
    expect(error.code).toBe('SUP_ERR_FIRMWARE_HASH_MISMATCH');
    expect(error.message).toContain(`VM vm1: the firmware ${changing} changed while the guest was starting`);
    expect(await h.commands()).not.toContain('cont');
    expect(h.lifecycle.state).toBe('failed');
  });

  it('does not resume when the record cannot be written', async () => {
    const blocker = join(root, 'snp-state-is-a-file');
    await writeFile(blocker, '');
    const h = await harness({}, spec(), { stateDir: join(blocker, 'state') });
    const error = await startFailure(h);
    expect(error.code).toBe('SUP_ERR_RECORD_WRITE');
    expect(error.message).toMatch(/; the guest was not resumed$/);
    expect(await h.commands()).not.toContain('cont');
    expect(h.lifecycle.state).toBe('failed');
  });

  it("a QEMU that exits at cont (the PSP refusing the launch) is a failed launch in QEMU's words", async () => {
    const text = 'sev_snp_launch_finish: SNP_LAUNCH_FINISH ret=-5 fw_error=8 (Bad measurement)';
    const h = await harness({ snpFailAtCont: text });
    const error = await startFailure(h);
    expect(error.code).toBe('SUP_ERR_SNP_LAUNCH_FAILED');
    expect(error.message).toContain(
      `VM vm1: the SEV-SNP launch failed at its first run: QEMU exited with code 1 within 1.5 s of cont: qemu-system-x86_64: ${text}`,
    );
    expect(error.details).toMatchObject({ exitCode: 1, phase: 'first run' });
    expect(h.lifecycle.state).toBe('failed');
    expect(names(h.events)).not.toContain('running');
    expect(names(h.events).at(-1)).toBe('failed');
    expect(await h.lifecycle.finished).toMatchObject({ state: 'failed', ran: true });
  });

  it('a QEMU that exits within the first-run window after cont is a failed launch, never "running"', async () => {
    const text = 'SEV-SNP: CPUID validation failed for function 0x7, index: 0x0';
    const h = await harness({ snpExitAfterCont: { afterMs: 200, text } });
    const error = await startFailure(h);
    expect(error.code).toBe('SUP_ERR_SNP_LAUNCH_FAILED');
    expect(error.message).toContain(`qemu-system-x86_64: ${text}`);
    expect(names(h.events)).toContain('resumed');
    expect(names(h.events)).not.toContain('running');
    expect(h.lifecycle.status().error?.code).toBe('SUP_ERR_SNP_LAUNCH_FAILED');
  });

  it('a QEMU that exits after the window ran: the guest stopped running, it is not a failed launch', async () => {
    const h = await harness({ snpExitAfterCont: { afterMs: 500, text: 'guest crashed later' } }, spec(), { snpFirstRunWindowMs: 100 });
    await h.lifecycle.start();
    expect(h.lifecycle.state).toBe('running');
    const outcome = await h.lifecycle.finished;
    expect(outcome.state === 'failed' ? outcome.error.code : outcome.state).not.toBe('SUP_ERR_SNP_LAUNCH_FAILED');
  });

  it('stop() during the first-run window stops the guest; no failure is made up', async () => {
    const h = await harness({}, spec(), { snpFirstRunWindowMs: 60_000 });
    const started = h.lifecycle.start();
    await waitFor(h, 'resumed');
    const outcome = await h.lifecycle.stop('operator');
    await started;
    expect(outcome).toMatchObject({ state: 'stopped' });
  });
});
