// SEV-SNP checks on the files a guest boots from, before any QEMU starts: the -bios image, as
// vm/preflight.ts read it once for both its checks and these (sev/snp-firmware-checks.ts says what
// QEMU 10 would refuse or mishandle) and the files the SNP
// line names (ID block, ID auth, host data), read and turned into the base64 values the
// sev-snp-guest object takes (qemu/snp.ts); vm/preflight.ts calls it for `type=snp`.
// Owns: the messages (config file, key, path, what to do).
// Must not: spawn anything or build argv.
import { readFile } from 'node:fs/promises';
import type { SnpFirmwareFile } from '../attestation/snp-inputs.js';
import type { SnpSpec, VmSpec } from '../config/vm-spec.js';
import { SupervisorError } from '../errors.js';
import type { SnpLaunchFiles } from '../qemu/snp.js';
import { snpFirmwareProblems } from '../sev/snp-firmware-checks.js';
import { ID_AUTH_BYTES, ID_BLOCK_BYTES } from '../sev/snp-id-block.js';
import { describeIoError } from '../util/io-error.js';

export type { SnpLaunchFiles } from '../qemu/snp.js';

/** A small file the SNP line names: raw bytes of the exact size, or their base64 text (what `sevsup id-block` writes). */
async function readBytesFile(
  spec: VmSpec,
  sev: SnpSpec,
  what: string,
  path: string,
  size: { exact?: number; max?: number },
): Promise<string> {
  const fail = (problem: string): SupervisorError =>
    new SupervisorError('SUP_ERR_CONFIG_BAD_VALUE', `${spec.source}: ${sev.key}: ${what} ${path}: ${problem}`, {
      details: { file: spec.source, key: sev.key, property: what, path },
    });
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (error: unknown) {
    throw fail(`cannot read it: ${describeIoError(error)}`);
  }
  const fits = (n: number): boolean => (size.exact === undefined ? n > 0 && n <= (size.max ?? 0) : n === size.exact);
  // Base64 text first (canonical, of a fitting size), else the raw bytes.
  const text = data.toString('latin1').trim();
  const decoded = Buffer.from(text, 'base64');
  if (text !== '' && decoded.toString('base64') === text && fits(decoded.length)) return text;
  if (fits(data.length)) return data.toString('base64');
  const want = size.exact === undefined ? `at most ${size.max} bytes` : `${size.exact} bytes`;
  throw fail(`must hold ${want}, raw or in base64 (\`sevsup id-block\` writes them); it holds neither`);
}

/** What SNP preflight read: the SNP line's files for the argv, and the firmware image it checked. */
export interface SnpPreflight {
  readonly files: SnpLaunchFiles;
  /**
   * The -bios image the checks judged (bytes, sha256, table, SNP metadata): the launch computes the
   * expected digest from these bytes instead of reading the image again.
   */
  readonly firmware: SnpFirmwareFile;
}

/**
 * Check the firmware for SNP (`fw`: the image at the spec's firmware path, read whole; null when the
 * spec names none) and read the SNP line's files.
 * @throws SUP_ERR_FIRMWARE_SNP for no firmware (SNP needs OVMF as -bios) and with every reason QEMU 10 would refuse it, SUP_ERR_CONFIG_BAD_VALUE for
 *   an unreadable or malformed ID block, ID auth or host-data file.
 */
export async function snpPreflight(spec: VmSpec, sev: SnpSpec, fw: SnpFirmwareFile | null): Promise<SnpPreflight> {
  if (fw === null) {
    throw new SupervisorError(
      'SUP_ERR_FIRMWARE_SNP',
      `${spec.source}: SEV-SNP needs OVMF loaded as -bios; set bios: ovmf and a firmware key`,
      {
        details: { file: spec.source, key: 'firmware' },
      },
    );
  }
  const { path } = fw;
  const problems = snpFirmwareProblems(fw, { kernel: spec.kernel !== undefined, kernelHashes: sev.kernelHashes });
  if (problems.length > 0) {
    throw new SupervisorError(
      'SUP_ERR_FIRMWARE_SNP',
      `${spec.source}: firmware: ${path} cannot launch this SEV-SNP guest: ${problems.join('; ')}`,
      {
        details: { file: spec.source, key: 'firmware', path, problems },
      },
    );
  }
  const files: { -readonly [K in keyof SnpLaunchFiles]: SnpLaunchFiles[K] } = {};
  if (sev.idBlock !== undefined) files.idBlock = await readBytesFile(spec, sev, 'id-block', sev.idBlock, { exact: ID_BLOCK_BYTES });
  if (sev.idAuth !== undefined) files.idAuth = await readBytesFile(spec, sev, 'id-auth', sev.idAuth, { max: ID_AUTH_BYTES });
  if (sev.hostData?.kind === 'file') files.hostData = await readBytesFile(spec, sev, 'host-data-file', sev.hostData.path, { exact: 32 });
  else if (sev.hostData?.kind === 'value') files.hostData = sev.hostData.base64;
  return { files, firmware: fw };
}
