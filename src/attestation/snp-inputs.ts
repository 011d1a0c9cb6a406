// The expected SEV-SNP launch digest from the owner's files (firmware, kernel, initrd, cmdline) and
// the vCPU set: the I/O half of `sevsup measure --mode snp` and of the SNP reference values a
// verifier checks a report's MEASUREMENT against. The digest itself is sev/snp-launch-digest.ts.
// Owns: reading the inputs once each (firmware into memory: the chain hashes it page by page),
// and what is reported about them. Must not: load anything heavy (the CLI's start-up stays lean).
import { createHash } from 'node:crypto';
import { SupervisorError } from '../errors.js';
import { readFileChunks } from '../sev/hash-file.js';
import { hashKernelInputs, type HashedFile, type KernelInputs } from '../sev/kernel-hashes.js';
import { parseOvmfTable, type OvmfTable } from '../sev/ovmf-table.js';
import {
  continueWithVmsas,
  snpDigestBeforeVmsas,
  snpDigestProblems,
  snpFirmwareDigest,
  SNP_LAUNCH_DIGEST_BYTES,
} from '../sev/snp-launch-digest.js';
import { parseSnpMetadata, type SnpMetadata } from '../sev/snp-metadata.js';
import { buildSnpVmsas, type SnpVmmType } from '../sev/snp-vmsa.js';

/** -bios images are a few MiB; QEMU maps them below 4 GiB. Anything this big is the wrong file. */
export const MAX_SNP_FIRMWARE_BYTES = 256 * 1024 * 1024;

export interface SnpDigestRequest {
  readonly firmware: string;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  readonly vcpus: number;
  readonly vcpuSignature: number;
  readonly guestFeatures: bigint;
  readonly vmmType: SnpVmmType;
  /** `--snp-ovmf-hash`: the firmware part, precomputed; the firmware file still supplies the metadata. */
  readonly firmwareDigest?: Buffer;
}

export interface SnpFirmwareFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  readonly bytes: Buffer;
  readonly table: OvmfTable;
  readonly metadata: SnpMetadata;
}

export interface SnpExpectedDigest {
  readonly digest: Buffer;
  /** The chain after the firmware pages (`--mode snp:ovmf-hash`), as used (given or computed). */
  readonly firmwareDigest: Buffer;
  readonly firmwareDigestGiven: boolean;
  readonly firmware: Omit<SnpFirmwareFile, 'bytes'>;
  readonly kernel: HashedFile | null;
  readonly initrd: HashedFile | null;
  readonly cmdline: string | null;
  readonly kernelHashesTable: Buffer | null;
}

/**
 * Read a firmware image whole, with its sha256, footer table and SNP metadata.
 * @throws SUP_ERR_FIRMWARE_READ (missing, unreadable, larger than MAX_SNP_FIRMWARE_BYTES),
 *   SUP_ERR_FIRMWARE_TABLE_INVALID (a footer table QEMU refuses).
 */
export async function readSnpFirmware(path: string): Promise<SnpFirmwareFile> {
  const chunks: Buffer[] = [];
  const sha256 = createHash('sha256');
  let total = 0;
  const size = await readFileChunks(
    path,
    (chunk) => {
      total += chunk.length;
      if (total > MAX_SNP_FIRMWARE_BYTES) {
        throw new SupervisorError(
          'SUP_ERR_FIRMWARE_READ',
          `firmware image ${path} is larger than ${MAX_SNP_FIRMWARE_BYTES} bytes: not a -bios image`,
          {
            details: { path },
          },
        );
      }
      sha256.update(chunk);
      chunks.push(Buffer.from(chunk));
    },
    { code: 'SUP_ERR_FIRMWARE_READ', what: 'firmware image' },
  );
  const bytes = Buffer.concat(chunks, size);
  const table = parseOvmfTable(bytes);
  return { path, size, sha256: sha256.digest('hex'), bytes, table, metadata: parseSnpMetadata(bytes, table) };
}

/**
 * The expected SNP launch digest, sev-snp-measure's `--mode snp` for the same options.
 * @throws SUP_ERR_FIRMWARE_READ, SUP_ERR_FIRMWARE_TABLE_INVALID, SUP_ERR_KERNEL_READ,
 *   SUP_ERR_VERIFY_UNSUPPORTED (inputs QEMU would refuse, with every reason), SUP_ERR_USAGE
 *   (initrd or cmdline without a kernel, a firmware digest that is not 48 bytes).
 */
export async function computeSnpExpectedDigest(r: SnpDigestRequest): Promise<SnpExpectedDigest> {
  if (r.kernel === undefined && (r.initrd !== undefined || r.cmdline !== undefined)) {
    throw new SupervisorError('SUP_ERR_USAGE', 'initrd and cmdline require a kernel');
  }
  checkFirmwareDigestSeed(r);
  const [fw, kernelInputs] = await Promise.all([
    readSnpFirmware(r.firmware),
    r.kernel === undefined
      ? Promise.resolve(null)
      : hashKernelInputs({
          kernel: r.kernel,
          ...(r.initrd === undefined ? {} : { initrd: r.initrd }),
          ...(r.cmdline === undefined ? {} : { cmdline: r.cmdline }),
        }),
  ]);
  return prepareSnpExpectedDigest(fw, kernelInputs, r).finish(r.vcpuSignature);
}

/** What to measure besides the files, for prepareSnpExpectedDigest (the vCPU signature comes later). */
export type SnpDigestSettings = Pick<SnpDigestRequest, 'vcpus' | 'guestFeatures' | 'vmmType' | 'firmwareDigest'>;

/** Everything of the expected digest but the VMSAs; `finish` adds them for the vCPU signature. */
export interface PreparedSnpDigest {
  /** @throws SUP_ERR_VERIFY_UNSUPPORTED for a vCPU signature that is not a u32. */
  finish(vcpuSignature: number): SnpExpectedDigest;
}

/**
 * The expected digest's chain up to the VMSAs from a firmware image already read and kernel inputs
 * already hashed: a launch computes it while QEMU starts, from what preflight read and the digests
 * taken at spawn, and finishes it once QEMU reports the vCPU signature (only the VMSAs need it).
 * @throws SUP_ERR_VERIFY_UNSUPPORTED (inputs QEMU would refuse, with every reason), SUP_ERR_USAGE
 *   (a firmware digest that is not 48 bytes).
 */
export function prepareSnpExpectedDigest(fw: SnpFirmwareFile, kernelInputs: KernelInputs | null, r: SnpDigestSettings): PreparedSnpDigest {
  checkFirmwareDigestSeed(r);
  const { bytes, ...firmware } = fw;
  const sections = fw.metadata.status === 'found' ? fw.metadata.sections : [];
  const metadataProblem =
    fw.metadata.status === 'invalid'
      ? [
          `the firmware's SNP metadata is unusable (${fw.metadata.reason}); QEMU stops the guest at its first run ("Failed to locate SEV metadata header")`,
        ]
      : [];
  if (metadataProblem.length > 0) {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `cannot compute the SNP launch digest: ${metadataProblem.join('; ')}`, {
      details: { problems: metadataProblem, path: fw.path },
    });
  }
  const inputs = {
    sections,
    ...(kernelInputs === null ? {} : { kernelHashesTable: kernelInputs.table }),
    ...(fw.table.hashesArea === null ? {} : { kernelHashesBase: fw.table.hashesArea.base }),
    resetAddress: fw.table.sevResetAddress ?? 0,
    vcpus: r.vcpus,
    guestFeatures: r.guestFeatures,
    vmmType: r.vmmType,
  };
  // Every reason at once, the firmware's size included even when its digest is given.
  const problems = snpDigestProblems({ ...inputs, vcpuSignature: 0, firmware: bytes });
  if (problems.length > 0) {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `cannot compute the SNP launch digest: ${problems.join('; ')}`, {
      details: { problems, path: fw.path },
    });
  }
  const firmwareDigest = r.firmwareDigest ?? snpFirmwareDigest(bytes);
  const beforeVmsas = snpDigestBeforeVmsas({ ...inputs, vcpuSignature: 0, firmwareDigest });
  return {
    finish: (vcpuSignature) => ({
      digest: continueWithVmsas(
        beforeVmsas,
        buildSnpVmsas({
          vcpus: r.vcpus,
          resetAddress: inputs.resetAddress,
          vcpuSignature,
          guestFeatures: r.guestFeatures,
          vmmType: r.vmmType,
        }),
      ),
      firmwareDigest,
      firmwareDigestGiven: r.firmwareDigest !== undefined,
      firmware,
      kernel: kernelInputs?.kernel ?? null,
      initrd: kernelInputs?.initrd ?? null,
      cmdline: kernelInputs?.cmdline ?? null,
      kernelHashesTable: kernelInputs?.table ?? null,
    }),
  };
}

function checkFirmwareDigestSeed(r: SnpDigestSettings): void {
  if (r.firmwareDigest !== undefined && r.firmwareDigest.length !== SNP_LAUNCH_DIGEST_BYTES) {
    throw new SupervisorError(
      'SUP_ERR_USAGE',
      `--snp-ovmf-hash is ${SNP_LAUNCH_DIGEST_BYTES} bytes (96 hex digits), got ${r.firmwareDigest.length}`,
    );
  }
}
