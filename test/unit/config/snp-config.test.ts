// `amd-sev: type=snp` / `amd_sev: snp`: Proxmox's options and defaults, the SNP launch options
// Proxmox lacks, and every refusal with its message.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatVmConfig, parseVmConfig } from '../../../src/config/vm-config.js';
import type { SnpSpec } from '../../../src/config/vm-spec.js';
import { snpPolicyFromConfig } from '../../../src/sev/snp-policy.js';
import { catchSupervisorError } from '../../support/catch-error.js';

const FILE = '/vms/g.conf';
const snp = (line: string, extra = ''): SnpSpec => {
  const spec = parseVmConfig(`${extra}${line}\n`, FILE);
  if (spec.sev?.type !== 'snp') throw new Error('not an SNP spec');
  return spec.sev;
};

describe('the SNP line', () => {
  it.each([
    // Proxmox's spellings and defaults (allow-smt 1, no-debug 0) give Proxmox's policies.
    ['amd-sev: type=snp', 0xb0000n],
    ['amd_sev: snp', 0xb0000n],
    ['amd-sev: type=snp,no-debug=1', 0x30000n],
    ['amd-sev: type=snp,allow-smt=0', 0xa0000n],
    ['amd-sev: type=snp,allow-smt=0,no-debug=1', 0x20000n],
    ['amd_sev: snp,nodbg=1,abi=1.55', 0x30137n],
    ['amd_sev: snp,nodbg=1,single-socket=1,cxl-allow=1,aes-256-xts=1,rapl-dis=1,ciphertext-hiding=1,page-swap-disable=1', 0x3f30000n],
  ])('%s → policy %s', (line, policy) => {
    expect(snpPolicyFromConfig(snp(line))).toBe(policy);
  });

  it('reads every SNP key', () => {
    const hex = 'ab'.repeat(32);
    const s = snp(
      `amd-sev: type=snp,kernel-hashes=1,host-data=${hex},id-block=ib.b64,id-auth=/k/ia.b64,author-key=1,vcek=0,guest-visible-workarounds=${'0f'.repeat(16)},cbitpos=51,reduced-phys-bits=1`,
      'kernel: /k/vmlinuz\n',
    );
    expect(s).toEqual({
      type: 'snp',
      key: 'amd-sev',
      kernelHashes: true,
      cbitpos: 51,
      reducedPhysBits: 1,
      nodbg: false,
      allowSmt: true,
      singleSocket: false,
      cxlAllow: false,
      aes256Xts: false,
      raplDis: false,
      ciphertextHiding: false,
      pageSwapDisable: false,
      hostData: { kind: 'value', base64: Buffer.from(hex, 'hex').toString('base64') },
      idBlock: '/vms/ib.b64',
      idAuth: '/k/ia.b64',
      authorKey: true,
      vcek: false,
      guestVisibleWorkarounds: Buffer.alloc(16, 0x0f).toString('base64'),
    });
  });

  it('takes host data as base64 too, or from a file, and round-trips through the canonical text', () => {
    const b64 = Buffer.alloc(32, 7).toString('base64');
    expect(snp(`amd_sev: snp,host-data=${b64}`).hostData).toEqual({ kind: 'value', base64: b64 });
    expect(snp('amd_sev: snp,host-data-file=hd.bin').hostData).toEqual({ kind: 'file', path: '/vms/hd.bin' });
    const spec = parseVmConfig(`amd-sev: type=snp,no-debug=1,allow-smt=0,abi=1.51,host-data=${b64}\n`, FILE);
    expect(formatVmConfig(spec)).toContain(`amd-sev: type=snp,no-debug=1,allow-smt=0,abi=1.51,host-data=${b64}`);
    expect(parseVmConfig(formatVmConfig(spec), FILE).sev).toEqual(spec.sev);
  });

  const at = (key: string, problem: string, line = 1): string => `${FILE}:${line}: ${key}: ${problem}`;
  it.each([
    [
      'amd-sev: type=snp,no-key-sharing=1',
      'SUP_ERR_CONFIG_CONFLICT',
      at(
        'amd-sev',
        "property 'no-key-sharing' is refused with type=snp: SEV-SNP has no key-sharing policy bit: every SNP guest always gets its own memory key (Proxmox ignores no-key-sharing for SNP; sevsup refuses it so the config says what happens); remove it",
      ),
    ],
    [
      'amd_sev: snp,migrate-ma=1',
      'SUP_ERR_CONFIG_UNSUPPORTED',
      at(
        'amd_sev',
        "property 'migrate-ma' is not supported: an SNP migration agent (policy bit 18) would let the guest be migrated; sevsup never migrates an encrypted guest, as it always sets SEV's NOSEND; remove it",
      ),
    ],
    [
      'amd_sev: es,host-data-file=x',
      'SUP_ERR_CONFIG_CONFLICT',
      at('amd_sev', "property 'host-data-file' applies only to type=snp (AMD SEV-SNP), not type=es; remove it or use type=snp"),
    ],
    [
      'amd_sev: std,vcek=0',
      'SUP_ERR_CONFIG_CONFLICT',
      at('amd_sev', "property 'vcek' applies only to type=snp (AMD SEV-SNP), not type=std; remove it or use type=snp"),
    ],
    [
      'amd_sev: snp,abi=256.0',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at('amd_sev', "property 'abi' has invalid value '256.0'; allowed: MAJOR.MINOR, each 0 to 255"),
    ],
    [
      'amd_sev: snp,abi=1',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      at('amd_sev', "property 'abi' has invalid value '1'; allowed: MAJOR.MINOR, each 0 to 255 (e.g. 1.55)"),
    ],
    [
      'amd_sev: snp,host-data=abcd',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      at('amd_sev', "property 'host-data' has invalid value 'abcd'; allowed: 32 bytes as 44 base64 characters or 64 hex digits"),
    ],
    [
      `amd_sev: snp,host-data=${'00'.repeat(32)},host-data-file=f`,
      'SUP_ERR_CONFIG_CONFLICT',
      at('amd_sev', 'give host-data or host-data-file, not both'),
    ],
    [
      'amd_sev: snp,id-block=a',
      'SUP_ERR_CONFIG_CONFLICT',
      at('amd_sev', 'id-block and id-auth go together (QEMU needs both; `sevsup id-block` writes both files)'),
    ],
    [
      'amd_sev: snp,author-key=1',
      'SUP_ERR_CONFIG_CONFLICT',
      at('amd_sev', 'author-key=1 needs id-block and id-auth: the author key is part of the ID auth'),
    ],
    [
      'amd_sev: snp,guest-visible-workarounds=AAAA',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      at(
        'amd_sev',
        "property 'guest-visible-workarounds' has invalid value 'AAAA'; allowed: 16 bytes as 24 base64 characters or 32 hex digits",
      ),
    ],
    [
      'amd_sev: snp,kernel-hashes=1',
      'SUP_ERR_CONFIG_MISSING_KEY',
      at('amd_sev', "kernel-hashes=1 needs a 'kernel' key; without a kernel QEMU silently measures nothing"),
    ],
  ])('refuses %s', (line, code, message) => {
    expect(catchSupervisorError(() => parseVmConfig(`${line}\n`, FILE))).toMatchObject({ code, message });
  });

  it('refuses an EFI vars disk (pflash), saying why, SNP first among the reasons', () => {
    const error = catchSupervisorError(() => parseVmConfig('amd-sev: type=snp\nefidisk0: local:vm-100-disk-0,size=4M\n', FILE));
    expect(error.code).toBe('SUP_ERR_CONFIG_UNSUPPORTED');
    expect(error.message).toMatch(
      /^\/vms\/g\.conf:2: efidisk0: sevsup has no EFI vars disk \(pflash VARS store\): it loads OVMF stateless with -bios/,
    );
    expect(error.message).toContain('SEV-SNP cannot use one at all');
    expect(error.details).toEqual({ file: FILE, line: 2, key: 'efidisk0' });
  });

  it('refuses a launch session with SNP, saying why', () => {
    const error = catchSupervisorError(() => parseVmConfig('amd_sev: snp\nlaunch: dh-cert=a,session=b\n', FILE));
    expect(error.code).toBe('SUP_ERR_CONFIG_CONFLICT');
    expect(error.message).toMatch(/^\/vms\/g\.conf:2: launch: SEV-SNP has no launch session/);
  });
});

describe('an SNP guest in the argv builder', () => {
  it('is never launched as a SEV guest: no SNP on the host is refused, SNP gets sev-snp-guest', async () => {
    const { resolveSevParams } = await import('../../../src/qemu/sev.js');
    const { SIMULATED_HOST_CAPS } = await import('../../../src/host/simulated.js');
    const spec = parseVmConfig('amd-sev: type=snp,no-debug=1\nfirmware: /fw.fd\n', FILE);
    // The seed's style for a host without SNP …
    const noSnp = { ...SIMULATED_HOST_CAPS, sevSnp: { supported: false, reason: 'not supported: test', source: 'test' } };
    expect(catchSupervisorError(() => resolveSevParams(spec, noSnp))).toMatchObject({
      code: 'SUP_ERR_SEV_SNP_UNSUPPORTED',
      message: 'Your CPU does not support AMD SEV-SNP!',
    });
    // … and on a host with SNP, the SNP parameters (qemu/snp.ts builds the sev-snp-guest object).
    const snpHost = { ...SIMULATED_HOST_CAPS, sevSnp: { supported: true, reason: 'supported: test', source: 'test' } };
    expect(resolveSevParams(spec, snpHost)).toMatchObject({ type: 'snp', cbitpos: 47, reducedPhysBits: 1 });
  });
});

describe('examples/vms/snp.conf', () => {
  it('is a valid SNP config with policy 0x30000, host data, an ID block and its own QEMU', async () => {
    const { loadVmConfig } = await import('../../../src/config/vm-config.js');
    const file = path.resolve('examples/vms/snp.conf');
    const spec = await loadVmConfig(file);
    expect(spec.qemu).toBe('/usr/local/bin/qemu-system-x86_64');
    if (spec.sev?.type !== 'snp') throw new Error('not SNP');
    expect(snpPolicyFromConfig(spec.sev)).toBe(0x30000n);
    expect(spec.sev).toMatchObject({
      kernelHashes: true,
      idBlock: path.join(path.dirname(file), 'snp.idblock'),
      hostData: { kind: 'value' },
    });
  });
});
