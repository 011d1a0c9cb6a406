// The SEV-SNP half of the command line: the `sev-snp-guest` object (QEMU >= 9.1, qapi
// SevSnpGuestProperties; snp-facts §1.1) and the machine properties SNP needs; qemu/argv.ts puts
// them in place of the `sev-guest` object for `type=snp`.
// Owns: property names and encodings (u64 policy, base64 byte values, the inverted vcek). Pure:
// the ID block, ID auth and host data arrive already read and checked (vm/snp-preflight.ts). None
// of them is a secret, so argv may carry them: the ID block is a digest, ids, an SVN and the
// policy; the ID auth holds signatures and public keys; host data is copied into every
// attestation report the guest shows anyone.
// Must not: carry sev-guest's launch-session properties (dh-cert-file, session-file, handle,
// legacy-vm-type), which sev-snp-guest does not have.
import { SupervisorError } from '../errors.js';
import { snpPolicyFromConfig, snpPolicyProblems } from '../sev/snp-policy.js';
import type { JsonOption } from './escape.js';
import { SEV_OBJECT_ID, type SnpHostParams } from './sev.js';

/** The SNP line's byte values as preflight read them (files) or the config gave them: base64, as QEMU takes them. */
export interface SnpLaunchFiles {
  readonly idBlock?: string;
  readonly idAuth?: string;
  readonly hostData?: string;
}

export interface SnpLaunchParams {
  readonly policy: bigint;
  readonly cbitpos: number;
  readonly reducedPhysBits: number;
  readonly kernelHashes: boolean;
  /** Base64 of exactly 96 bytes; with `idAuth`. */
  readonly idBlock?: string;
  /** Base64 of at most 4096 bytes. */
  readonly idAuth?: string;
  readonly authorKey: boolean;
  /** Base64 of exactly 32 bytes. */
  readonly hostData?: string;
  /** Base64 of exactly 16 bytes. */
  readonly guestVisibleWorkarounds?: string;
  /** Config `vcek=0`. */
  readonly vcekDisabled: boolean;
}

/** QEMU's length rules for the byte-valued properties (its setters' texts in the messages). */
const LENGTHS = {
  'id-block': { exact: 96 },
  'id-auth': { max: 4096 },
  'host-data': { exact: 32 },
  'guest-visible-workarounds': { exact: 16 },
} as const;

function checkBase64(name: keyof typeof LENGTHS, value: string): void {
  const bytes = Buffer.from(value, 'base64');
  const rule: { exact?: number; max?: number } = LENGTHS[name];
  const canonical = bytes.toString('base64') === value;
  const ok = canonical && (rule.exact === undefined ? bytes.length > 0 && bytes.length <= (rule.max ?? 0) : bytes.length === rule.exact);
  if (!ok) {
    const want = rule.exact === undefined ? `at most ${rule.max} bytes` : `exactly ${rule.exact} bytes`;
    throw new SupervisorError(
      'SUP_ERR_INTERNAL',
      `sev-snp-guest ${name} must be base64 of ${want}, got ${canonical ? `${bytes.length} bytes` : 'text that is not canonical base64'}`,
    );
  }
}

/**
 * `{"qom-type":"sev-snp-guest","id":"sev0","cbitpos":51,"reduced-phys-bits":1,"policy":…, …}` with
 * only the properties that differ from QEMU's defaults, as libvirt emits them.
 * @throws SUP_ERR_INTERNAL for values preflight should have refused (a policy sevsup refuses, a
 *   byte value of the wrong length, an ID block without its auth).
 */
export function snpGuestObject(p: SnpLaunchParams): JsonOption {
  const problems = snpPolicyProblems(p.policy);
  if (problems.length > 0) throw new SupervisorError('SUP_ERR_INTERNAL', `SNP policy refused: ${problems.join('; ')}`);
  if ((p.idBlock === undefined) !== (p.idAuth === undefined))
    throw new SupervisorError('SUP_ERR_INTERNAL', 'id-block and id-auth go together');
  if (p.authorKey && p.idBlock === undefined) throw new SupervisorError('SUP_ERR_INTERNAL', 'author-key-enabled needs an ID block');
  const object: Record<string, string | number | boolean> = {
    'qom-type': 'sev-snp-guest',
    id: SEV_OBJECT_ID,
    cbitpos: p.cbitpos,
    'reduced-phys-bits': p.reducedPhysBits,
    // Policies fit in 26 bits, so a JSON number carries them exactly.
    policy: Number(p.policy),
  };
  if (p.kernelHashes) object['kernel-hashes'] = true;
  const bytes: readonly [keyof typeof LENGTHS, string | undefined][] = [
    ['guest-visible-workarounds', p.guestVisibleWorkarounds],
    ['id-block', p.idBlock],
    ['id-auth', p.idAuth],
    ['host-data', p.hostData],
  ];
  for (const [name, value] of bytes) {
    if (value === undefined) continue;
    checkBase64(name, value);
    object[name] = value;
  }
  if (p.authorKey) object['author-key-enabled'] = true;
  if (p.vcekDisabled) object['vcek-disabled'] = true;
  return object;
}

/**
 * The object's parameters for `host.sev`: the policy from the config, the host's cbitpos and
 * reduced-phys-bits, and the byte values preflight read.
 * @throws SUP_ERR_INTERNAL when the config names a file preflight did not read (a caller bug).
 */
export function snpLaunchParams(host: SnpHostParams, files: SnpLaunchFiles = {}): SnpLaunchParams {
  const { sev } = host;
  const unread = (
    [
      ['id-block', sev.idBlock !== undefined, files.idBlock],
      ['id-auth', sev.idAuth !== undefined, files.idAuth],
      ['host-data', sev.hostData !== undefined, files.hostData],
    ] as const
  ).filter(([, wanted, value]) => wanted && value === undefined);
  if (unread.length > 0) {
    throw new SupervisorError('SUP_ERR_INTERNAL', `SNP ${unread.map(([name]) => name).join(', ')} not read by preflight`);
  }
  return {
    policy: snpPolicyFromConfig(sev),
    cbitpos: host.cbitpos,
    reducedPhysBits: host.reducedPhysBits,
    kernelHashes: sev.kernelHashes,
    ...(files.idBlock === undefined ? {} : { idBlock: files.idBlock }),
    ...(files.idAuth === undefined ? {} : { idAuth: files.idAuth }),
    authorKey: sev.authorKey,
    ...(files.hostData === undefined ? {} : { hostData: files.hostData }),
    ...(sev.guestVisibleWorkarounds === undefined ? {} : { guestVisibleWorkarounds: sev.guestVisibleWorkarounds }),
    vcekDisabled: !sev.vcek,
  };
}

/** Machine properties for SNP: the object link, and SMM off (QEMU: "SEV-SNP does not support SMM."). */
export const SNP_MACHINE_PROPERTIES = [`confidential-guest-support=${SEV_OBJECT_ID}`, 'smm=off'] as const;
