import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  glibBase64Decode,
  gpaProblem,
  launchMeasureFailureLine,
  SevGuestSim,
  type SevGuestSetup,
} from '../../../../src/platform/sim/sev-state.js';
import { ATTESTATION_REPORT_BYTES } from '../../../../src/platform/sim/platform-blobs.js';
import { formatQemuJson } from '../../../../src/platform/sim/qmp-json.js';
import { buildLaunchSecret, SECRET_ALIASES } from '../../../../src/sev/launch-secret.js';
import { decodeMeasurement } from '../../../../src/sev/measurement.js';

const tik = Buffer.alloc(16, 1);
const tek = Buffer.alloc(16, 2);
const mac = Buffer.alloc(32, 3);
const mnonce = Buffer.alloc(16, 4);
const digest = Buffer.alloc(32, 5);

function guest(o: Partial<SevGuestSetup> = {}): SevGuestSim {
  return new SevGuestSim({
    enabled: true,
    policy: 0x9,
    platform: { apiMajor: 1, apiMinor: 55, buildId: 21 },
    handle: 1,
    launchDigest: digest,
    measurement: { mac, mnonce },
    secretArea: { base: 0x80f000, size: 0xc00 },
    memoryBytes: 512 * 2 ** 20,
    tik,
    tek,
    replyShape: '7.2',
    crashOnCont: false,
    onlyMigratable: false,
    ...o,
  });
}

function packet(o: { tik?: Buffer; data?: string } = {}): { packetHeader: string; secret: string } {
  const p = buildLaunchSecret({
    tik: o.tik ?? tik,
    tek,
    measurementMac: mac,
    secrets: [{ guid: SECRET_ALIASES['luks-key'], data: Buffer.from(o.data ?? 'passphrase') }],
  });
  return { packetHeader: p.header.toString('base64'), secret: p.payload.toString('base64') };
}

describe('query-sev', () => {
  it('answers 7.2 flat, byte for byte in QEMU order', () => {
    expect(formatQemuJson({ return: guest().querySev() })).toBe(
      '{"return": {"enabled": true, "api-minor": 55, "handle": 1, "state": "launch-secret", "api-major": 1, "build-id": 21, "policy": 9}}',
    );
  });

  it('answers 9.1+ with sev-type, and 7.2 zeros when SEV is off', () => {
    expect(formatQemuJson(guest({ replyShape: '9.1' }).querySev())).toBe(
      '{"enabled": true, "api-minor": 55, "handle": 1, "state": "launch-secret", "api-major": 1, "sev-type": "sev", "build-id": 21, "policy": 9}',
    );
    expect(formatQemuJson(guest({ enabled: false }).querySev())).toBe(
      '{"enabled": false, "api-minor": 0, "handle": 0, "state": "uninit", "api-major": 0, "build-id": 0, "policy": 0}',
    );
  });
});

describe('state machine', () => {
  it('goes launch-secret → running at the first resume, and only then blocks migration', () => {
    const g = guest();
    expect([g.state, g.migrationBlocked]).toEqual(['launch-secret', false]);
    expect(g.resume()).toEqual({ kind: 'finished' });
    expect([g.state, g.migrationBlocked]).toEqual(['running', true]);
    expect(g.resume()).toEqual({ kind: 'none' });
  });

  it('keeps the measurement after running (cached, running ≥ launch-secret)', () => {
    const g = guest();
    g.resume();
    const result = g.queryLaunchMeasure();
    expect('return' in result && decodeMeasurement((result.return as { data: string }).data)).toEqual({ mac, mnonce });
  });

  it('stays in launch-update without a measurement, and LAUNCH_FINISH then fails', () => {
    const g = guest({ measurement: null });
    expect(g.state).toBe('launch-update');
    expect(g.queryLaunchMeasure()).toEqual({ error: { class: 'GenericError', desc: 'SEV launch measurement is not available' } });
    expect(g.resume()).toEqual({ kind: 'fatal', message: "sev_launch_finish: LAUNCH_FINISH ret=-5 fw_error=2 'Guest state is invalid'" });
    expect(launchMeasureFailureLine()).toBe("sev_launch_get_measure: LAUNCH_MEASURE ret=-5 fw_error=19 'Platform is already owned'");
  });

  it('fails LAUNCH_FINISH with crash-on-cont and the blocker with -only-migratable', () => {
    expect(guest({ crashOnCont: true }).resume()).toEqual({
      kind: 'fatal',
      message: "sev_launch_finish: LAUNCH_FINISH ret=-5 fw_error=19 'Hardware error'",
    });
    expect(guest({ onlyMigratable: true }).resume()).toEqual({
      kind: 'fatal',
      message: 'disallowing migration blocker (--only-migratable) for: SEV: Migration is not implemented',
    });
  });

  it('does nothing for a plain VM', () => {
    const g = guest({ enabled: false });
    expect([g.state, g.resume().kind, g.migrationBlocked]).toEqual(['uninit', 'none', false]);
    expect(g.hmpInfoSev()).toBe('SEV is not enabled\r\n');
  });
});

describe('sev-inject-launch-secret', () => {
  it('accepts a packet built under the TIK/TEK for this measurement, into the firmware secret area', () => {
    const outcome = guest().injectLaunchSecret(packet());
    expect(outcome).toEqual({
      kind: 'accepted',
      result: { return: {} },
      injected: { gpa: 0x80f000, secrets: [{ guid: SECRET_ALIASES['luks-key'], length: 10 }], payloadBytes: expect.any(Number) },
    });
  });

  it('refuses a packet under another TIK as the PSP does', () => {
    const outcome = guest().injectLaunchSecret(packet({ tik: Buffer.alloc(16, 9) }));
    expect(outcome).toMatchObject({
      kind: 'refused',
      result: { error: { class: 'GenericError', desc: "SEV: failed to inject secret ret=-5 fw_error=11 'Bad measurement'" } },
    });
  });

  it('runs QEMU 7.2 checks in order', () => {
    const p = packet();
    expect(guest({ enabled: false }).injectLaunchSecret(p).result).toEqual({
      error: { class: 'GenericError', desc: 'SEV not enabled for guest' },
    });
    const running = guest({ secretArea: null });
    running.resume();
    // The secret-area check comes before the state check.
    expect(running.injectLaunchSecret(p).result).toMatchObject({
      error: { desc: 'SEV: no secret area found in OVMF, gpa must be specified.' },
    });
    expect(running.injectLaunchSecret({ ...p, gpa: 0x1000 }).result).toMatchObject({
      error: { desc: 'SEV: Not in correct state. (LSECRET) 3' },
    });
    expect(guest({ measurement: null }).injectLaunchSecret(p).result).toMatchObject({
      error: { desc: 'SEV: Not in correct state. (LSECRET) 1' },
    });
    expect(guest().injectLaunchSecret({ ...p, packetHeader: '!!' }).result).toMatchObject({
      error: { desc: 'SEV: Failed to decode sequence header' },
    });
    expect(guest().injectLaunchSecret({ ...p, secret: '' }).result).toMatchObject({ error: { desc: 'SEV: Failed to decode data' } });
    expect(guest().injectLaunchSecret({ ...p, gpa: 2 ** 33 }).result).toMatchObject({
      error: { desc: 'SEV: Failed to calculate guest address: No memory is mapped at address 0x200000000' },
    });
  });

  it('accepts several injections while in launch-secret (the state does not change)', () => {
    const g = guest();
    expect(g.injectLaunchSecret(packet()).kind).toBe('accepted');
    expect(g.injectLaunchSecret({ ...packet({ data: 'second' }), gpa: 0x900000 }).kind).toBe('accepted');
    expect(g.injected.map((i) => i.gpa)).toEqual([0x80f000, 0x900000]);
    expect(g.state).toBe('launch-secret');
  });
});

describe('other commands', () => {
  it('reports capabilities with cbitpos 47 and reduced-phys-bits 1 and 2084-byte certificates', () => {
    const caps = guest().queryCapabilities();
    if (!('return' in caps)) throw new Error('expected return');
    const r = caps.return as Record<string, string | number>;
    expect([r['cbitpos'], r['reduced-phys-bits']]).toEqual([47, 1]);
    expect(Buffer.from(r['pdh'] as string, 'base64').length).toBe(2084);
    expect(Buffer.from(r['cert-chain'] as string, 'base64').length).toBe(3 * 2084);
    expect(Buffer.from(r['cpu0-id'] as string, 'base64').length).toBe(64);
    expect(guest({ enabled: false }).queryCapabilities()).toEqual(caps);
  });

  it('returns an attestation report with the mnonce, launch digest and policy', () => {
    const nonce = randomBytes(16);
    const result = guest().queryAttestationReport(nonce.toString('base64'), Buffer.alloc(144, 7));
    if (!('return' in result)) throw new Error('expected return');
    const report = Buffer.from((result.return as { data: string }).data, 'base64');
    expect(report.length).toBe(ATTESTATION_REPORT_BYTES);
    expect(report.subarray(0, 16)).toEqual(nonce);
    expect(report.subarray(16, 48)).toEqual(digest);
    expect(report.readUInt32LE(0x30)).toBe(9);
    expect(guest().queryAttestationReport('AAAA', Buffer.alloc(144))).toEqual({
      error: { class: 'GenericError', desc: 'SEV: mnonce must be 16 bytes (got 3)' },
    });
    expect(guest({ enabled: false }).queryAttestationReport('AAAA', Buffer.alloc(144))).toEqual({
      error: { class: 'GenericError', desc: 'SEV is not enabled' },
    });
  });

  it('prints HMP info sev as 7.2 does', () => {
    expect(guest().hmpInfoSev()).toBe(
      'handle: 1\r\nstate: launch-secret\r\nbuild: 21\r\napi version: 1.55\r\ndebug: off\r\nkey-sharing: on\r\n',
    );
    expect(guest({ replyShape: '9.1', policy: 0xa }).hmpInfoSev()).toMatch(
      /^SEV type: sev\r\nhandle: 1\r\n[\s\S]*debug: on\r\nkey-sharing: off\r\n$/,
    );
  });

  it('prints HMP info sev for SNP as QEMU 10 does: debug and SMT from policy bits 19 and 16', () => {
    const snp = { finish: () => ({}) as never };
    const lines = (policy: number): string => guest({ policy, snp, replyShape: '9.1' }).hmpInfoSev();
    expect(lines(0x30000)).toMatch(
      /^SEV type: sev-snp\r\nstate: [a-z-]+\r\nbuild: 21\r\napi version: 1\.55\r\ndebug: off\r\nSMT allowed: on\r\n$/,
    );
    expect(lines(0xa0000)).toMatch(/debug: on\r\nSMT allowed: off\r\n$/);
  });
});

describe('helpers', () => {
  it('decodes base64 as glib does: skipping junk, dropping an incomplete group', () => {
    expect(glibBase64Decode('aGVs bG8=')).toEqual(Buffer.from('hello'));
    expect(glibBase64Decode('aGVsbG8')).toEqual(Buffer.from('hel'));
    expect(glibBase64Decode('!!')).toEqual(Buffer.alloc(0));
  });

  it('maps q35 RAM as gpa2hva sees it', () => {
    const mem = 3 * 2 ** 30;
    expect(gpaProblem(0x1000, 16, mem)).toBeNull();
    expect(gpaProblem(0xa0000, 16, mem)).toBe('Memory at address 0xa0000 is not RAM');
    expect(gpaProblem(0x80000000, 16, mem)).toBe('No memory is mapped at address 0x80000000');
    expect(gpaProblem(2 ** 32, 16, mem)).toBeNull();
    expect(gpaProblem(0x7ffffff8, 16, mem)).toBe('Size of memory region at 0x7ffffff8 exceeded.');
  });
});
