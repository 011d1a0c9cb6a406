// Reading SNP certificates from a directory laid out as snpguest writes it (`snpguest fetch ca|vcek`,
// `snpguest certificates`): ark.pem, ask.pem or asvk.pem, vcek.pem or vlek.pem, each also as .der
// (any case); a KDS `cert_chain.pem` bundle (intermediate then ARK) stands in for ark + ask.
// Owns: those names. Must not: judge the certificates (verify-snp.ts, kds-fetch.ts do).
import { X509Certificate } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SupervisorError } from '../errors.js';
import { productOfName, splitPem } from '../sev/snp-certs.js';
import { describeIoError } from '../util/io-error.js';
import { amdPinnedArks, type PinnedArk } from './verify-snp.js';

export interface CertDir {
  readonly ark?: Buffer;
  readonly intermediate?: Buffer;
  /** Which intermediate was found (ask or asvk). */
  readonly intermediateRole?: 'ask' | 'asvk';
  readonly leaf?: Buffer;
  readonly leafRole?: 'vcek' | 'vlek';
  /** The files used, for messages and --json. */
  readonly files: readonly string[];
}

/**
 * Read what the directory has; none of the files is required here.
 * @throws SUP_ERR_CERTS_INPUT when the directory cannot be listed, a file cannot be read, or
 * both a VCEK and a VLEK (or an ASK and an ASVK) are present (ambiguous).
 */
export async function readCertDir(dir: string, flag = '--certs'): Promise<CertDir> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_CERTS_INPUT', `${flag} ${dir}: ${describeIoError(error)}`, { cause: error });
  }
  const find = async (base: string): Promise<{ data: Buffer; file: string } | null> => {
    const name = names.find((n) => n.toLowerCase() === `${base}.pem`) ?? names.find((n) => n.toLowerCase() === `${base}.der`);
    if (name === undefined) return null;
    const file = join(dir, name);
    try {
      return { data: await readFile(file), file };
    } catch (error: unknown) {
      throw new SupervisorError('SUP_ERR_CERTS_INPUT', `${file}: ${describeIoError(error)}`, { cause: error });
    }
  };
  const [ark, ask, asvk, vcek, vlek, bundle] = await Promise.all(['ark', 'ask', 'asvk', 'vcek', 'vlek', 'cert_chain'].map(find));
  if (vcek !== null && vlek !== null)
    throw new SupervisorError('SUP_ERR_CERTS_INPUT', `${dir} holds both vcek and vlek certificates: keep the one that signed the report`);
  if (ask !== null && asvk !== null)
    throw new SupervisorError('SUP_ERR_CERTS_INPUT', `${dir} holds both ask and asvk certificates: keep the one of the report's chain`);
  const files: string[] = [];
  let arkData = ark?.data;
  let mid = ask ?? asvk;
  if (ark !== null && ark !== undefined) files.push(ark.file);
  if (mid !== null && mid !== undefined) files.push(mid.file);
  if (bundle !== null && bundle !== undefined && (arkData === undefined || mid === null)) {
    const [first, second] = splitPem(bundle.data.toString('utf8'));
    if (first === undefined || second === undefined)
      throw new SupervisorError('SUP_ERR_CERTS_INPUT', `${bundle.file} does not hold two certificates (intermediate, then ARK)`);
    mid ??= { data: Buffer.from(first), file: bundle.file };
    arkData ??= Buffer.from(second);
    files.push(bundle.file);
  }
  const leaf = vcek ?? vlek;
  if (leaf !== null && leaf !== undefined) files.push(leaf.file);
  return {
    ...(arkData === undefined ? {} : { ark: arkData }),
    ...(mid === null || mid === undefined
      ? {}
      : { intermediate: mid.data, intermediateRole: asvk !== null && asvk !== undefined ? 'asvk' : 'ask' }),
    ...(leaf === null || leaf === undefined ? {} : { leaf: leaf.data, leafRole: vlek !== null && vlek !== undefined ? 'vlek' : 'vcek' }),
    files,
  };
}

/**
 * The roots to pin: AMD's built-in ARKs, or only the owner's `--ark FILE` (its product from its
 * CN "ARK-<product>", when it says).
 * @throws SUP_ERR_VERIFY_CONFIG when the file cannot be read or is not a certificate.
 */
export async function loadPinnedArks(arkPath: string | undefined): Promise<PinnedArk[]> {
  if (arkPath === undefined) return amdPinnedArks();
  let data: Buffer;
  try {
    data = await readFile(arkPath);
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_VERIFY_CONFIG', `--ark ${arkPath}: ${describeIoError(error)}`, { cause: error });
  }
  let x: X509Certificate;
  try {
    x = new X509Certificate(data);
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_VERIFY_CONFIG', `--ark ${arkPath}: not a certificate`, { cause: error });
  }
  const cn = /CN=(?:.* )?ARK-(\w+)/.exec(x.subject)?.[1] ?? null;
  return [{ der: x.raw, product: productOfName(cn), source: 'owner' }];
}
