// Loading the guest owner's inputs from files: transport keys (TIK/TEK), a measurement record,
// secret files, and the expected launch digest (GCTX.LD) from firmware, kernel, initrd, cmdline
// and the SEV-ES vCPU set, with the refusals QEMU itself would make for those inputs.
// Owns: the I/O half of the owner's toolkit (verify.ts is the pure half). Must not: put key or
// secret bytes in any message, detail or log; load anything heavy (the CLI's start-up stays lean).
// Files are streamed once each: firmware first (its footer table decides what else is valid),
// then kernel and initrd.
import { createHash } from 'node:crypto';
import { SupervisorError, type ErrorCode } from '../errors.js';
import { readFileChunks, TailKeeper } from '../sev/hash-file.js';
import { hashKernelInputs, type HashedFile } from '../sev/kernel-hashes.js';
import { TEK_BYTES } from '../sev/launch-secret.js';
import { TIK_BYTES } from '../sev/measurement.js';
import {
  describeHashesAreaProblem,
  describeSevEsProblem,
  OVMF_TABLE_TAIL_BYTES,
  parseOvmfTableTail,
  type OvmfTable,
} from '../sev/ovmf-table.js';
import { buildVmsas, cpuSignature, type SevEsParams } from '../sev/vmsa.js';
import { parseRecord, type MeasurementRecord } from '../vm/record.js';
import { parseSnpRecord } from '../vm/snp-record.js';
import type { CpuSignatureParts } from '../sev/cpu-models.js';

/** TEK ‖ TIK in one file, as sevctl session and the validator's --tk use it. */
export const TK_BYTES = TEK_BYTES + TIK_BYTES;
/** A measurement record is a small JSON object; anything larger is not one of ours. */
export const MAX_RECORD_BYTES = 1024 * 1024;
/** Key files are 16 or 32 bytes; reading a little more lets the error say how long one really is. */
const MAX_KEY_FILE_BYTES = 4096;
/** One secret file; the whole table is bounded again by sev/launch-secret.ts. */
export const MAX_SECRET_FILE_BYTES = 64 * 1024;

export interface TransportKeyFiles {
  readonly tik?: string;
  readonly tek?: string;
  /** TEK ‖ TIK (32 bytes). */
  readonly tk?: string;
}

export interface TransportKeys {
  readonly tik: Buffer;
  /** Null when only a TIK was given (enough to verify, not to build a secret). */
  readonly tek: Buffer | null;
}

/**
 * Read the owner's transport keys: `--tik` [+ `--tek`] or `--tk`.
 * @throws SUP_ERR_VERIFY_UNSUPPORTED for a missing or unreadable file, a wrong length, `--tk`
 * together with `--tik`/`--tek`, or no TEK when `needTek`. Messages name paths and lengths only.
 */
export async function loadTransportKeys(f: TransportKeyFiles, o: { needTek: boolean }): Promise<TransportKeys> {
  const usage = (message: string): SupervisorError => new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', message);
  if (f.tk !== undefined) {
    if (f.tik !== undefined || f.tek !== undefined) throw usage('--tk is mutually exclusive with --tik/--tek');
    const tk = await readKeyFile(f.tk, TK_BYTES, 'TEK/TIK');
    return { tek: tk.subarray(0, TEK_BYTES), tik: tk.subarray(TEK_BYTES) };
  }
  if (f.tik === undefined) throw usage(o.needTek ? 'give --tik and --tek, or --tk' : 'give --tik (or --tk)');
  if (o.needTek && f.tek === undefined) throw usage('building a launch secret needs the TEK: give --tek (or --tk)');
  const [tik, tek] = await Promise.all([
    readKeyFile(f.tik, TIK_BYTES, 'TIK'),
    f.tek === undefined ? Promise.resolve(null) : readKeyFile(f.tek, TEK_BYTES, 'TEK'),
  ]);
  return { tik, tek };
}

async function readKeyFile(path: string, bytes: number, what: string): Promise<Buffer> {
  const data = await readBounded(path, MAX_KEY_FILE_BYTES, 'SUP_ERR_VERIFY_UNSUPPORTED', `${what} file`);
  if (data.length !== bytes) {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', `expected ${bytes} bytes in ${what} file ${path}, but got ${data.length}`, {
      details: { path, length: data.length },
    });
  }
  return data;
}

/**
 * A small regular file, refusing more than `max` bytes (reads at most max + 1).
 * @throws `code` for a missing, unreadable, non-regular or too large file; details {path, reason}.
 */
export async function readBounded(path: string, max: number, code: ErrorCode, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  const fail = (reason: string): SupervisorError =>
    new SupervisorError(code, `cannot read ${what} ${path}: ${reason}`, { details: { path, reason } });
  try {
    await readFileChunks(
      path,
      (chunk) => {
        size += chunk.length;
        if (size > max) throw fail(`larger than ${max} bytes`);
        chunks.push(Buffer.from(chunk));
      },
      { code, what },
    );
  } catch (error: unknown) {
    if (error instanceof SupervisorError && error.code === code) throw error;
    throw fail(error instanceof Error ? error.message : String(error));
  }
  return Buffer.concat(chunks, size);
}

/**
 * A measurement record written by sevsup (schema sevsup.measurement/v1).
 * @throws SUP_ERR_VERIFY_CONFIG for an unreadable file, bad JSON or not a record.
 */
export async function loadRecord(path: string): Promise<MeasurementRecord> {
  const text = (await readBounded(path, MAX_RECORD_BYTES, 'SUP_ERR_VERIFY_CONFIG', 'measurement record')).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error: unknown) {
    throw new SupervisorError(
      'SUP_ERR_VERIFY_CONFIG',
      `measurement record ${path} is not JSON: ${error instanceof Error ? error.message : String(error)}`,
      {
        details: { path },
      },
    );
  }
  const record = parseRecord(value);
  if (record === null && parseSnpRecord(value) !== null) {
    throw new SupervisorError(
      'SUP_ERR_VERIFY_CONFIG',
      `${path} is an SEV-SNP launch record (sevsup.snp-launch/v1): an SNP launch has no host-side measurement to verify; ` +
        "check the guest's attestation report with `sevsup verify --report REPORT.bin --reference-values FILE` (the record's referenceValues member)",
      { details: { path } },
    );
  }
  if (record === null) {
    throw new SupervisorError('SUP_ERR_VERIFY_CONFIG', `${path} is not a sevsup measurement record (schema sevsup.measurement/v1)`, {
      details: { path },
    });
  }
  return record;
}

/**
 * The bytes of one secret file.
 * @throws SUP_ERR_USAGE for an unreadable file or one over MAX_SECRET_FILE_BYTES.
 */
export async function readSecretFile(path: string): Promise<Buffer> {
  return readBounded(path, MAX_SECRET_FILE_BYTES, 'SUP_ERR_USAGE', 'secret file');
}

export type VmsaInit = SevEsParams['vmsaInit'];

export interface SevEsInputs {
  readonly vcpus: number;
  readonly cpu: CpuSignatureParts;
  readonly vmsaInit: VmsaInit;
  readonly sevFeatures: bigint;
}

export interface ExpectedDigestInputs {
  readonly firmware: string;
  readonly kernel?: string;
  readonly initrd?: string;
  /** `-append` as given (UTF-8); measured only with a kernel. */
  readonly cmdline?: string;
  /** Present for SEV-ES: one VMSA page per vCPU is measured after the rest. */
  readonly sevEs?: SevEsInputs;
}

export interface FirmwareDigestInfo extends HashedFile {
  readonly size: number;
  readonly table: OvmfTable;
}

export interface VmsaInfo {
  readonly variant: VmsaInit;
  readonly vcpus: number;
  readonly cpu: CpuSignatureParts & { readonly signature: number };
  readonly sevFeatures: bigint;
  /** The AP reset address from the firmware's SEV info block. */
  readonly resetAddress: number;
  /** Lower-case hex sha256 of vCPU 0's page and of the pages of the other vCPUs (null with one vCPU). */
  readonly bspSha256: string;
  readonly apSha256: string | null;
}

export interface ExpectedDigest {
  /** GCTX.LD: 32 bytes. Not a measurement (that is the HMAC over it). */
  readonly digest: Buffer;
  readonly firmware: FirmwareDigestInfo;
  readonly kernel: HashedFile | null;
  readonly initrd: HashedFile | null;
  /** The measured cmdline (null without a kernel) and the sha256 QEMU puts in the table. */
  readonly cmdline: string | null;
  readonly cmdlineSha256: string | null;
  /** The 176-byte kernel-hashes table, or null without a kernel. */
  readonly kernelHashesTable: Buffer | null;
  readonly vmsa: VmsaInfo | null;
}

/**
 * The launch digest QEMU's LAUNCH_UPDATE_* produce for these inputs: sha256(firmware ‖ kernel
 * hashes table (with a kernel) ‖ one VMSA per vCPU (SEV-ES)), as libvirt's validator and
 * sev-snp-measure compute it. Refuses what QEMU would refuse to launch, which the validator does not
 * check: a kernel with a firmware lacking a usable hashes area, SEV-ES without a reset address.
 * @throws SUP_ERR_FIRMWARE_READ, SUP_ERR_KERNEL_READ (unreadable files);
 * SUP_ERR_FIRMWARE_TABLE_INVALID; SUP_ERR_FIRMWARE_NO_HASHES_AREA; SUP_ERR_FIRMWARE_NO_SEV_INFO;
 * SUP_ERR_VERIFY_UNSUPPORTED (initrd/cmdline without kernel, out-of-range vCPU parameters);
 * SUP_ERR_CONFIG_BAD_VALUE (cmdline with NUL).
 */
export async function computeExpectedDigest(i: ExpectedDigestInputs): Promise<ExpectedDigest> {
  if (i.kernel === undefined && (i.initrd !== undefined || i.cmdline !== undefined)) {
    throw new SupervisorError('SUP_ERR_VERIFY_UNSUPPORTED', '--initrd/--cmdline require --kernel');
  }
  const firmwareHash = createHash('sha256');
  const tail = new TailKeeper(OVMF_TABLE_TAIL_BYTES);
  const size = await readFileChunks(
    i.firmware,
    (chunk) => {
      firmwareHash.update(chunk);
      tail.push(chunk);
    },
    { code: 'SUP_ERR_FIRMWARE_READ', what: 'firmware image' },
  );
  const table = parseOvmfTableTail(tail.bytes, size);
  if (i.kernel !== undefined) checkHashesArea(i.firmware, table);
  const vmsas = i.sevEs === undefined ? null : buildFirmwareVmsas(i.firmware, table, i.sevEs);
  const kernelInputs =
    i.kernel === undefined
      ? null
      : await hashKernelInputs({
          kernel: i.kernel,
          ...(i.initrd === undefined ? {} : { initrd: i.initrd }),
          ...(i.cmdline === undefined ? {} : { cmdline: i.cmdline }),
        });
  // The digest continues the firmware's hash, so the image is read and hashed once.
  const digestHash = firmwareHash.copy();
  if (kernelInputs !== null) digestHash.update(kernelInputs.table);
  for (const page of vmsas?.pages ?? []) digestHash.update(page);
  return {
    digest: digestHash.digest(),
    firmware: { path: i.firmware, size, sha256: firmwareHash.digest('hex'), table },
    kernel: kernelInputs?.kernel ?? null,
    initrd: kernelInputs?.initrd ?? null,
    cmdline: kernelInputs?.cmdline ?? null,
    cmdlineSha256: kernelInputs?.cmdlineSha256 ?? null,
    kernelHashesTable: kernelInputs?.table ?? null,
    vmsa: vmsas?.info ?? null,
  };
}

function checkHashesArea(firmware: string, table: OvmfTable): void {
  const problem = describeHashesAreaProblem(table.hashesArea);
  if (problem === '') return;
  throw new SupervisorError(
    'SUP_ERR_FIRMWARE_NO_HASHES_AREA',
    `${problem}: QEMU refuses to launch ${firmware} with a kernel and kernel-hashes=on, so no measurement can match; ` +
      'use a firmware that declares a kernel-hashes area (an OVMF AmdSev build)',
    { details: { firmware, hashesArea: table.hashesArea } },
  );
}

function buildFirmwareVmsas(firmware: string, table: OvmfTable, es: SevEsInputs): { pages: Buffer[]; info: VmsaInfo } {
  const problem = describeSevEsProblem(table);
  if (problem !== '' || table.sevResetAddress === null) {
    throw new SupervisorError(
      'SUP_ERR_FIRMWARE_NO_SEV_INFO',
      `${problem || 'SEV-ES reset address is zero'}: QEMU refuses to launch ${firmware} as an SEV-ES guest (${table.found ? 'its footer table has no usable SEV info block' : 'it has no OVMF footer table'})`,
      { details: { firmware } },
    );
  }
  const pages = buildVmsas({
    vcpus: es.vcpus,
    ...es.cpu,
    resetAddress: table.sevResetAddress,
    vmsaInit: es.vmsaInit,
    sevFeatures: es.sevFeatures,
  });
  const sha = (page: Buffer | undefined): string | null => (page === undefined ? null : createHash('sha256').update(page).digest('hex'));
  return {
    pages,
    info: {
      variant: es.vmsaInit,
      vcpus: es.vcpus,
      cpu: { ...es.cpu, signature: cpuSignature(es.cpu.family, es.cpu.model, es.cpu.stepping) },
      sevFeatures: es.sevFeatures,
      resetAddress: table.sevResetAddress,
      bspSha256: sha(pages[0]) ?? '',
      apSha256: sha(pages[1]),
    },
  };
}
