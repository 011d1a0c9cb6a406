// `sevsup verify --report` with the owner's launch inputs: the expected measurement computed as
// `sevsup measure --mode snp` computes it, on reports the tests build and sign for a digest computed
// independently (the pure snpLaunchDigest over generated inputs); a changed kernel fails the
// measurement check alone; an expected measurement that disagrees with the inputs is refused.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hashKernelInputs } from '../../../src/sev/kernel-hashes.js';
import { snpLaunchDigest } from '../../../src/sev/snp-launch-digest.js';
import { buildSnpImage } from '../../support/ovmf-images.js';
import { runCliCaptured } from '../../support/run-cli.js';
import { fieldsFor, signedReport, snpCliFiles } from '../../support/snp-fixtures.js';

const { dir, file, chain, certs, ark, remove } = snpCliFiles('sevsup-snp-inputs-');
afterAll(remove);

const SECTIONS = [
  [0x800000, 0x2000, 1],
  [0x802000, 0x1000, 2],
  [0x803000, 0x1000, 3],
  [0x804000, 0x1000, 0x10],
] as const;
const image = buildSnpImage({ sections: SECTIONS, hashes: [0x804c00, 0x400], size: 0x20000 });
const fw = file('fw.fd', image);
const kernel = file('vmlinuz', Buffer.from('a generated kernel image, not a real one'));
const otherKernel = file('vmlinuz-2', Buffer.from('a generated kernel image, not a real one!'));
const initrd = file('initrd.img', Buffer.alloc(5000, 0x17));
const cmdline = 'console=ttyS0 root=/dev/vda';

async function expectedDigest(): Promise<Buffer> {
  const { table } = await hashKernelInputs({ kernel, initrd, cmdline });
  return snpLaunchDigest({
    firmware: image,
    sections: SECTIONS.map(([gpa, size, type]) => ({ gpa, size, type, name: null })),
    kernelHashesTable: table,
    kernelHashesBase: 0x804c00,
    resetAddress: 0x80b004,
    vcpus: 2,
    vcpuSignature: 0xa00f11,
    guestFeatures: 1n,
  });
}

const inputs = (k: string): string[] => [
  '--firmware',
  fw,
  '--kernel',
  k,
  '--initrd',
  initrd,
  '--append',
  cmdline,
  '--vcpus',
  '2',
  '--vcpu-type',
  'EPYC-Milan',
];
const base = (report: string): string[] => ['verify', '--report', report, '--certs', certs, '--ark', ark, '--cache', join(dir, 'no-cache')];

describe("sevsup verify --report from the owner's inputs", () => {
  it('verifies a report carrying the digest of the inputs; a changed kernel fails the measurement check alone', async () => {
    const digest = await expectedDigest();
    const report = file(
      'report.bin',
      signedReport(fieldsFor({ product: 'Genoa', kind: 'vcek', version: 3 }, { measurement: digest }), chain),
    );
    const good = await runCliCaptured(...base(report), ...inputs(kernel), '--json');
    expect(good.code).toBe(0);
    const j = JSON.parse(good.out) as { valid: boolean; evidenceOnly: boolean; checks: { name: string; ok: boolean }[] };
    expect(j).toMatchObject({ valid: true, evidenceOnly: false });
    expect(j.checks.find((c) => c.name === 'measurement')).toMatchObject({ ok: true });

    const bad = await runCliCaptured(...base(report), ...inputs(otherKernel), '--json');
    expect(bad.code).toBe(1);
    const b = JSON.parse(bad.out) as { checks: { name: string; ok: boolean }[] };
    expect(b.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['measurement']);
    const text = await runCliCaptured(...base(report), ...inputs(otherKernel));
    expect(text.err).toMatch(/ERROR: the measurement .* is not the expected/);
  });

  it('the same digest as `measure --mode snp` for the same options (--guest-features changes both)', async () => {
    const m = await runCliCaptured('measure', '--mode', 'snp', ...inputs(kernel), '--guest-features', '0x21');
    expect(m.code).toBe(0);
    const report = file(
      'report-21.bin',
      signedReport(fieldsFor({ product: 'Genoa', kind: 'vcek', version: 3 }, { measurement: Buffer.from(m.out.trim(), 'hex') }), chain),
    );
    expect((await runCliCaptured(...base(report), ...inputs(kernel), '--guest-features', '0x21')).code).toBe(0);
    expect((await runCliCaptured(...base(report), ...inputs(kernel))).code).toBe(1);
  });

  it('refuses an expected measurement that disagrees with the inputs (exit 2), accepts one that agrees', async () => {
    const digest = await expectedDigest();
    const report = file(
      'report-agree.bin',
      signedReport(fieldsFor({ product: 'Genoa', kind: 'vcek', version: 3 }, { measurement: digest }), chain),
    );
    const agree = await runCliCaptured(...base(report), ...inputs(kernel), '--expected-measurement', digest.toString('hex'));
    expect(agree.code).toBe(0);
    const clash = await runCliCaptured(...base(report), ...inputs(kernel), '--expected-measurement', '00'.repeat(48));
    expect(clash.code).toBe(2);
    expect(clash.err).toMatch(
      /the measurement from --expected-measurement \(0{96}\) is not the launch digest of your inputs \([0-9a-f]{96}/,
    );
    expect(clash.err).not.toMatch(/\n\s+at /);
    const rv = file(
      'rv.json',
      JSON.stringify({ schema: 'sevsup.snp-reference-values/v1', measurement: '11'.repeat(48), policy: '0x30000' }),
    );
    const rvClash = await runCliCaptured(...base(report), ...inputs(kernel), '--reference-values', rv);
    expect(rvClash.code).toBe(2);
    expect(rvClash.err).toMatch(/the measurement from --reference-values .*rv\.json/);
  });

  it('launch inputs without a firmware are a usage error, not ignored', async () => {
    const r = await runCliCaptured(
      ...base(file('r.bin', signedReport(fieldsFor({ product: 'Genoa', kind: 'vcek', version: 3 }), chain))),
      '--vcpus',
      '2',
    );
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--firmware \(or --ovmf\) is required/);
  });
});

describe('sevsup measure --mode snp --reference-values → verify --report --reference-values', () => {
  const rvArgs = [
    '--policy',
    '0x30000',
    '--host-data',
    '48'.repeat(32),
    '--id-key-digest',
    '49'.repeat(48),
    '--min-tcb',
    'bl=7,snp=14',
    '--vmpl',
    '0',
  ];

  it('prints the documented JSON for the inputs and options, and a matching report verifies against it', async () => {
    const m = await runCliCaptured('measure', '--mode', 'snp', ...inputs(kernel), '--reference-values', ...rvArgs);
    expect(m.code).toBe(0);
    const rv = JSON.parse(m.out) as Record<string, unknown>;
    const digest = await expectedDigest();
    expect(rv).toEqual({
      schema: 'sevsup.snp-reference-values/v1',
      measurement: digest.toString('hex'),
      policy: '0x30000',
      hostData: '48'.repeat(32),
      idKeyDigest: '49'.repeat(48),
      authorKeyDigest: null,
      minTcb: { bootloader: 7, tee: 0, snp: 14, microcode: 0 },
      minGuestSvn: null,
      vmpl: 0,
      inputs: expect.objectContaining({ cmdline, vcpus: 2, vcpuSignature: '0xa00f11', guestFeatures: '0x1', vmmType: 'QEMU' }) as unknown,
    });
    const rvFile = file('reference-values.json', m.out);
    const genuine = file('rt.bin', signedReport(fieldsFor({ product: 'Genoa', kind: 'vcek', version: 3 }, { measurement: digest }), chain));
    const ok = await runCliCaptured(...base(genuine), '--reference-values', rvFile);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/OK: host data is the expected 4848/);

    // Each field changed alone (the report still genuinely signed) is caught and named.
    const tamper = async (name: string, over: Parameters<typeof fieldsFor>[1]): Promise<string> => {
      const r = await runCliCaptured(
        ...base(
          file(
            `${name}.bin`,
            signedReport(fieldsFor({ product: 'Genoa', kind: 'vcek', version: 3 }, { measurement: digest, ...over }), chain),
          ),
        ),
        '--reference-values',
        rvFile,
        '--json',
      );
      expect(r.code).toBe(1);
      const failed = (JSON.parse(r.out) as { checks: { name: string; ok: boolean }[] }).checks.filter((c) => !c.ok).map((c) => c.name);
      expect(failed).toHaveLength(1);
      return failed[0] ?? '';
    };
    expect(await tamper('t-host', { hostData: Buffer.alloc(32, 0x47) })).toBe('host-data');
    expect(await tamper('t-meas', { measurement: Buffer.alloc(48, 0x4d) })).toBe('measurement');
    expect(await tamper('t-idkey', { idKeyDigest: Buffer.alloc(48, 0x50) })).toBe('id-key-digest');
  });

  it('refuses the reference-value options without --reference-values, outside --mode snp, and a policy sevsup refuses', async () => {
    const without = await runCliCaptured('measure', '--mode', 'snp', ...inputs(kernel), '--host-data', '48'.repeat(32));
    expect(without.code).toBe(2);
    expect(without.err).toMatch(/--host-data goes with --reference-values/);
    const sev = await runCliCaptured('measure', '--mode', 'sev', '--firmware', fw, '--reference-values');
    expect(sev.code).toBe(2);
    expect(sev.err).toMatch(/--reference-values: SNP reference values, only with --mode snp/);
    const bad = await runCliCaptured('measure', '--mode', 'snp', ...inputs(kernel), '--reference-values', '--policy', '0x10000');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--policy 0x10000: /);
  });
});

describe('SNP digest options on an SEV verify', () => {
  it('are refused, not ignored (exit 2)', async () => {
    const r = await runCliCaptured('verify', '--firmware', fw, '--snp-ovmf-hash', '00'.repeat(48), '--guest-features', '0x21');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--snp-ovmf-hash, --guest-features: for SNP attestation reports \(--report\), not SEV measurements/);
  });
});
