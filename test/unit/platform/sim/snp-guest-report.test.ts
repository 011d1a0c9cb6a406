import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { answerReportRequest, parseReportData } from '../../../../src/platform/sim/snp-guest-report.js';
import type { SnpLaunchFacts } from '../../../../src/platform/sim/snp-launch.js';
import { SIM_SNP_PRODUCT, SIM_SNP_TCB, type SnpPlatformIdentity } from '../../../../src/platform/sim/snp-platform-keys.js';
import { decodeTcb, parseSnpReport, verifySnpReportSignature } from '../../../../src/sev/snp-report.js';

const vcek = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
const platform: SnpPlatformIdentity = {
  dir: '/state',
  product: SIM_SNP_PRODUCT,
  tcb: SIM_SNP_TCB,
  chipId: Buffer.alloc(64, 0xc1),
  pem: { ark: 'ARK', ask: 'ASK', vcek: 'VCEK' },
  vcekKey: vcek.privateKey,
};
const facts: SnpLaunchFacts = {
  measurement: Buffer.alloc(48, 0x4d),
  hostData: Buffer.alloc(32, 0x48),
  idKeyDigest: Buffer.alloc(48, 0x49),
  authorKeyDigest: Buffer.alloc(48, 0x41),
  authorKeyEnabled: true,
  idBlockEnabled: true,
  familyId: Buffer.alloc(16, 0xf1),
  imageId: Buffer.alloc(16, 0x1a),
  guestSvn: 7,
  policy: 0x30000n,
  vcpus: 2,
  vcekDisabled: false,
};
const firmware = { apiMajor: 1, apiMinor: 55, buildId: 21 };
const snpGuest = { isSnp: true, snpFacts: facts };

describe('the sim-only SNP report request', () => {
  it('answers a v3 VMPL-0 report of the launch facts, signed by the VCEK, with the chain', () => {
    const nonce = Buffer.alloc(64, 0x6e);
    const reply = answerReportRequest({ 'report-data': nonce.toString('hex') }, snpGuest, platform, firmware, Buffer.alloc(32, 0x52));
    if (!('return' in reply)) throw new Error(JSON.stringify(reply));
    const ret = reply.return as Record<string, string>;
    expect(ret).toMatchObject({ ark: 'ARK', ask: 'ASK', vcek: 'VCEK' });
    const r = parseSnpReport(Buffer.from(ret['data'] as string, 'base64'));
    expect(r).toMatchObject({
      version: 3,
      vmpl: 0,
      guestSvn: 7,
      policy: 0x30000n,
      reportData: nonce,
      measurement: facts.measurement,
      hostData: facts.hostData,
      idKeyDigest: facts.idKeyDigest,
      authorKeyDigest: facts.authorKeyDigest,
      authorKeyEn: true,
      chipId: platform.chipId,
      currentVersion: { major: 1, minor: 55, build: 21 },
    });
    expect(decodeTcb(r.reportedTcb, 'milan-genoa')).toMatchObject(SIM_SNP_TCB);
    expect(verifySnpReportSignature(r, vcek.publicKey)).toBe(true);
  });

  it('refuses bad arguments, a guest that is not SNP or not launched, and a platform without its chain', () => {
    const hex = '00'.repeat(64);
    const err = (desc: string) => ({ error: { class: 'GenericError', desc } });
    const rid = Buffer.alloc(32);
    expect(answerReportRequest({}, snpGuest, platform, firmware, rid)).toEqual(err("Parameter 'report-data' is missing"));
    expect(answerReportRequest({ 'report-data': hex, x: 1 }, snpGuest, platform, firmware, rid)).toEqual(
      err("Parameter 'x' is unexpected"),
    );
    expect(answerReportRequest({ 'report-data': hex }, { isSnp: false, snpFacts: null }, platform, firmware, rid)).toEqual(
      err('x-sevsup-sim-snp-report: the guest is not an SEV-SNP guest'),
    );
    expect(answerReportRequest({ 'report-data': hex }, { isSnp: true, snpFacts: null }, platform, firmware, rid)).toMatchObject({
      error: { desc: expect.stringContaining('has not been launched yet') },
    });
    expect(
      answerReportRequest({ 'report-data': hex }, { isSnp: true, snpFacts: { ...facts, vcekDisabled: true } }, platform, firmware, rid),
    ).toMatchObject({
      error: { desc: expect.stringContaining('no VLEK') },
    });
    expect(answerReportRequest({ 'report-data': hex }, snpGuest, 'still making its chain', firmware, rid)).toEqual(
      err('x-sevsup-sim-snp-report: still making its chain'),
    );
  });

  it('takes report data as 128 hex digits or canonical base64 of 64 bytes only', () => {
    expect(parseReportData('ab'.repeat(64))).toEqual(Buffer.alloc(64, 0xab));
    expect(parseReportData(Buffer.alloc(64, 1).toString('base64'))).toEqual(Buffer.alloc(64, 1));
    expect(typeof parseReportData('ab'.repeat(63))).toBe('string');
    expect(typeof parseReportData(Buffer.alloc(63).toString('base64'))).toBe('string');
    expect(parseReportData(64)).toBe("Parameter 'report-data' expects string");
  });
});
