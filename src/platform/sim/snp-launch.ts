// The simulated SEV-SNP launch at the guest's first run (QEMU 10 sev_snp_launch_finish, then the
// PSP's SNP_LAUNCH_FINISH): the SEV metadata walk with QEMU's failure and assertions, the launch
// digest over the firmware bytes QEMU loaded at start-up, the metadata sections (the kernel-hashes
// page among them) and one VMSA per vCPU, then the ID block check the firmware makes.
// Owns: that order and its texts; the launch facts the platform later signs reports with.
// Pure: bytes in, verdict out; the digest is sev/snp-launch-digest.ts (the one code path).
// Must not: read files, or print (main.ts prints QEMU's lines and exits as QEMU does).
import { PADDED_HASH_TABLE_BYTES } from '../../sev/ovmf-table.js';
import { parseIdBlock, verifyIdAuth } from '../../sev/snp-id-block.js';
import { snpLaunchDigest, PAGE_BYTES } from '../../sev/snp-launch-digest.js';
import { SNP_SECTION, type SnpMetadata } from '../../sev/snp-metadata.js';
import { PSP_IOCTL_RET, SEV_FW_ERRORS } from './sev-state.js';
import type { SnpObjectParams } from './snp-startup-checks.js';

/** SEV_FEATURES KVM gives a stock QEMU 10 guest (KVM_SEV_INIT2 with vmsa_features 0: SNPActive). */
export const SNP_GUEST_FEATURES = 0x1n;
/** glibc's assert text; the file is Debian's build path. The line number is that of no checked build. */
const SEV_C = '../target/i386/sev.c';

export interface SnpLaunchInput {
  readonly params: SnpObjectParams;
  /** The policy the platform applied (the wrong-policy fault changes it). */
  readonly policy: bigint;
  /** The -bios bytes as QEMU read them at start-up. */
  readonly firmware: Buffer;
  readonly metadata: SnpMetadata;
  /** The table QEMU built at start-up (kernel-hashes=on with a bzImage), else null. */
  readonly kernelHashesTable: Buffer | null;
  /** The firmware's hashes-area base (the table goes at its in-page offset). */
  readonly kernelHashesBase: number;
  readonly resetAddress: number;
  readonly vcpus: number;
  /** CPUID 1 EAX of the vCPU model (KVM puts it in each VMSA's RDX). */
  readonly vcpuSignature: number;
  /** The crash-on-cont fault: the PSP fails LAUNCH_FINISH with a hardware error. */
  readonly hardwareError: boolean;
}

/** What a running SNP guest's reports carry from its launch (snp-facts §2.3). */
export interface SnpLaunchFacts {
  readonly measurement: Buffer;
  readonly hostData: Buffer;
  readonly idKeyDigest: Buffer;
  readonly authorKeyDigest: Buffer;
  readonly authorKeyEnabled: boolean;
  readonly idBlockEnabled: boolean;
  readonly familyId: Buffer;
  readonly imageId: Buffer;
  readonly guestSvn: number;
  readonly policy: bigint;
  readonly vcpus: number;
  readonly vcekDisabled: boolean;
}

export type SnpFinish =
  | { readonly kind: 'running'; readonly facts: SnpLaunchFacts }
  /** QEMU prints `message` (after its prefix) and exits 1; `why` is the sim's own note, if any. */
  | { readonly kind: 'exit'; readonly message: string; readonly why: string | null }
  /** QEMU's assertion fails: `message` then SIGABRT. */
  | { readonly kind: 'abort'; readonly message: string };

const finishFailure = (fw: { code: number; text: string }, why: string | null, ret = PSP_IOCTL_RET): SnpFinish => ({
  kind: 'exit',
  message: `SNP_LAUNCH_FINISH ret=${ret} fw_error=${fw.code} '${fw.text}'`,
  why,
});

const assertion = (expr: string): SnpFinish => ({
  kind: 'abort',
  message: `${SEV_C}: snp_launch_update_kernel_hashes: Assertion \`${expr}' failed.`,
});

/** Linux errno values KVM returns (QEMU prints them negated in ret=). */
const EFAULT = 14;
const EINVAL = 22;

/** sev_snp_launch_finish and the PSP's SNP_LAUNCH_FINISH for `i`. */
export function snpLaunchFinish(i: SnpLaunchInput): SnpFinish {
  const md = i.metadata;
  if (md.status !== 'found') return { kind: 'exit', message: 'sev_snp_launch_finish: Failed to locate SEV metadata header', why: null };
  const hashes = md.sections.filter((s) => s.type === SNP_SECTION.KERNEL_HASHES);
  const offset = i.kernelHashesBase & (PAGE_BYTES - 1);
  let table: Buffer | undefined;
  if (i.params.kernelHashes) {
    for (const s of hashes) {
      // snp_launch_update_kernel_hashes asserts both, in this order.
      if (i.kernelHashesTable === null) return assertion('sev_snp->kernel_hashes_data');
      if (offset + PADDED_HASH_TABLE_BYTES > s.size)
        return assertion('(sev_snp->kernel_hashes_offset + sizeof(*sev_snp->kernel_hashes_data)) <= len');
    }
    // A table with no KERNEL_HASHES section never reaches guest memory: the kernel is not measured.
    if (hashes.length > 0 && i.kernelHashesTable !== null) table = i.kernelHashesTable;
  }
  if (i.hardwareError) return finishFailure(SEV_FW_ERRORS.HWSEV_RET_PLATFORM, 'the crash-on-cont fault');
  let measurement: Buffer;
  try {
    measurement = snpLaunchDigest({
      firmware: i.firmware,
      sections: md.sections,
      ...(table === undefined ? {} : { kernelHashesTable: table, kernelHashesBase: i.kernelHashesBase }),
      resetAddress: i.resetAddress,
      vcpus: i.vcpus,
      vcpuSignature: i.vcpuSignature,
      guestFeatures: SNP_GUEST_FEATURES,
    });
  } catch (error: unknown) {
    // Sections the simulated firmware cannot place (not whole pages, beyond 4 GiB): LAUNCH_UPDATE fails.
    const why = error instanceof Error ? error.message : String(error);
    return { kind: 'exit', message: `SNP_LAUNCH_UPDATE ret=-${EINVAL} fw_error=0 ''`, why };
  }
  const zeros = (n: number): Buffer => Buffer.alloc(n);
  let idKeyDigest = zeros(48);
  let authorKeyDigest = zeros(48);
  let familyId = zeros(16);
  let imageId = zeros(16);
  let guestSvn = 0;
  if (i.params.idBlock !== null) {
    if (i.params.idAuth === null) return finishFailure({ code: 0, text: '' }, 'id-block without id-auth', -EFAULT);
    const verdict = verifyIdAuth(i.params.idBlock, i.params.idAuth, i.params.authorKeyEnabled);
    if (!verdict.ok) return finishFailure(SEV_FW_ERRORS.BAD_SIGNATURE, verdict.reason);
    const block = parseIdBlock(i.params.idBlock);
    if (!Buffer.from(block.launchDigest).equals(measurement)) {
      return finishFailure(
        SEV_FW_ERRORS.BAD_MEASUREMENT,
        `the ID block's digest ${Buffer.from(block.launchDigest).toString('hex')} is not the launch digest ${measurement.toString('hex')}`,
      );
    }
    if (block.policy !== i.policy) {
      return finishFailure(
        SEV_FW_ERRORS.POLICY_FAILURE,
        `the ID block's policy 0x${block.policy.toString(16)} is not the launch's 0x${i.policy.toString(16)}`,
      );
    }
    idKeyDigest = verdict.idKeyDigest;
    authorKeyDigest = verdict.authorKeyDigest ?? zeros(48);
    familyId = Buffer.from(block.familyId);
    imageId = Buffer.from(block.imageId);
    guestSvn = block.guestSvn;
  }
  return {
    kind: 'running',
    facts: {
      measurement,
      hostData: i.params.hostData ?? zeros(32),
      idKeyDigest,
      authorKeyDigest,
      authorKeyEnabled: i.params.idBlock !== null && i.params.authorKeyEnabled,
      idBlockEnabled: i.params.idBlock !== null,
      familyId,
      imageId,
      guestSvn,
      policy: i.policy,
      vcpus: i.vcpus,
      vcekDisabled: i.params.vcekDisabled,
    },
  };
}
