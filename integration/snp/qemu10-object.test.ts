// The sev-snp-guest objects sevsup builds, given to a real QEMU 10 (Debian trixie's, in a chroot made
// with debootstrap as in qemu-sev-facts.md Appendix C) by QMP object-add on `-machine none -accel tcg`,
// which runs QEMU's own property setters and length checks: every value we emit is accepted, and
// QEMU refuses, in its own words, the lengths sevsup refuses up front.
// Needs SEVSUP_QEMU10_ROOT=<trixie root with qemu-system-x86> and root (unshare -m, chroot); skipped
// (and reported as skipped) otherwise.
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { snpGuestObject, type SnpLaunchParams } from '../../src/qemu/snp.js';

const ROOT = process.env['SEVSUP_QEMU10_ROOT'] ?? '';
const READY = ROOT !== '' && existsSync(`${ROOT}/usr/bin/qemu-system-x86_64`) && process.getuid?.() === 0;
const b64 = (n: number, fill = 1): string => Buffer.alloc(n, fill).toString('base64');

/** QMP replies (by id) of a QEMU 10 given `commands` one by one on stdin. */
async function qmp10(commands: readonly Record<string, unknown>[]): Promise<Map<unknown, Record<string, unknown>>> {
  const input = [{ execute: 'qmp_capabilities' }, ...commands, { execute: 'quit' }].map((c) => JSON.stringify(c)).join('\n');
  const script = `mount --bind /dev "$1/dev" && mount --bind /proc "$1/proc" && exec chroot "$1" qemu-system-x86_64 -machine none -accel tcg -nodefaults -display none -qmp stdio`;
  const r = await execa('unshare', ['-m', 'sh', '-c', script, 'sh', ROOT], { input: `${input}\n`, reject: false, timeout: 60_000 });
  const replies = new Map<unknown, Record<string, unknown>>();
  for (const line of String(r.stdout).split('\n')) {
    if (line.trim() === '') continue;
    const msg = JSON.parse(line) as Record<string, unknown>;
    if ('id' in msg) replies.set(msg['id'], msg);
  }
  return replies;
}

const add = (id: string, object: Record<string, unknown>): Record<string, unknown> => {
  const { 'qom-type': type, id: _ignored, ...props } = object;
  return { execute: 'object-add', arguments: { 'qom-type': type, id, ...props }, id };
};

describe.runIf(READY)('QEMU 10 takes the sev-snp-guest objects sevsup builds', () => {
  it('accepts every property value we emit and refuses the lengths we refuse, with its own texts', async () => {
    const base: SnpLaunchParams = {
      policy: 0x30000n,
      cbitpos: 51,
      reducedPhysBits: 1,
      kernelHashes: false,
      authorKey: false,
      vcekDisabled: false,
    };
    const full = snpGuestObject({
      ...base,
      policy: 0x3f301ffn & ~(1n << 18n),
      kernelHashes: true,
      idBlock: b64(96),
      idAuth: b64(4096, 2),
      authorKey: true,
      hostData: b64(32, 3),
      guestVisibleWorkarounds: b64(16, 4),
      vcekDisabled: true,
    });
    const plain = snpGuestObject(base);
    const replies = await qmp10([
      add('plain', plain),
      add('full', full),
      { execute: 'qom-get', arguments: { path: '/objects/full', property: 'policy' }, id: 'policy' },
      add('b1', { ...plain, 'id-block': b64(95) }),
      add('b2', { ...plain, 'id-auth': b64(4097) }),
      add('b3', { ...plain, 'host-data': b64(31) }),
      add('b4', { ...plain, 'guest-visible-workarounds': b64(15) }),
    ]);
    expect(replies.get('plain')).toEqual({ return: {}, id: 'plain' });
    expect(replies.get('full')).toEqual({ return: {}, id: 'full' });
    expect(replies.get('policy')).toEqual({ return: Number(0x3f301ffn & ~(1n << 18n)), id: 'policy' });
    const desc = (id: string): unknown => (replies.get(id)?.['error'] as { desc?: string } | undefined)?.desc;
    expect(desc('b1')).toBe('parameter length of 95 not equal to 96');
    expect(desc('b2')).toBe('parameter length:ID_AUTH 4097 exceeds max of 4096');
    expect(desc('b3')).toBe('parameter length of 31 not equal to 32');
    expect(desc('b4')).toBe('parameter length of 15 exceeds max of 16');
  });
});

const TRIXIE_OVMF = `${ROOT}/usr/share/ovmf/OVMF.fd`;
describe.runIf(ROOT !== '' && existsSync(TRIXIE_OVMF))("Debian trixie's OVMF.fd (SNP metadata, no KERNEL_HASHES section)", () => {
  it('is usable for SNP without a kernel, refused with one, and measurable', async () => {
    const { readSnpFirmware } = await import('../../src/attestation/snp-inputs.js');
    const { snpFirmwareProblems } = await import('../../src/sev/snp-firmware-checks.js');
    const { snpLaunchDigest } = await import('../../src/sev/snp-launch-digest.js');
    const fw = await readSnpFirmware(TRIXIE_OVMF);
    expect(fw.metadata.status).toBe('found');
    const sections = fw.metadata.status === 'found' ? fw.metadata.sections : [];
    expect(sections.map((s) => s.name)).toContain('SVSM_CAA');
    expect(sections.map((s) => s.name)).not.toContain('KERNEL_HASHES');
    expect(snpFirmwareProblems(fw, { kernel: false, kernelHashes: false })).toEqual([]);
    expect(snpFirmwareProblems(fw, { kernel: true, kernelHashes: true })[0]).toMatch(
      /^a kernel is given, but the firmware has no KERNEL_HASHES section/,
    );
    const digest = snpLaunchDigest({
      firmware: fw.bytes,
      sections,
      resetAddress: fw.table.sevResetAddress ?? 0,
      vcpus: 2,
      vcpuSignature: 0x800f12,
      guestFeatures: 1n,
    });
    expect(digest.length).toBe(48);
  });
});
