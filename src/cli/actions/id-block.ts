// Implementation of `sevsup id-block`: read the owner's keys, build and sign, print or write.
// Owns: option resolution (aliases, hex/base64 digests) and the output shapes. Must not: put key
// bytes in messages; build the structures (sev/snp-id-block.ts does).
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { SupervisorError } from '../../errors.js';
import { buildIdAuth, buildIdBlock, requireP384 } from '../../sev/snp-id-block.js';
import { formatSnpPolicy, snpPolicyProblems } from '../../sev/snp-policy.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { describeIoError } from '../../util/io-error.js';
import type { IdBlockCliOptions } from '../commands/id-block.js';
import { printJson } from '../output.js';

function usage(message: string): never {
  throw new SupervisorError('SUP_ERR_USAGE', message);
}

/** A PEM (or DER) private key file; errors name the path only. */
async function loadKey(path: string, what: string): Promise<KeyObject> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_CONFIG_READ', `cannot read ${what} ${path}: ${describeIoError(error)}`, { details: { path } });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(bytes.includes('-----BEGIN') ? { key: bytes, format: 'pem' } : { key: bytes, format: 'der', type: 'pkcs8' });
  } catch {
    throw new SupervisorError('SUP_ERR_USAGE', `${what} ${path} is not an unencrypted private key in PEM (or PKCS#8 DER)`, {
      details: { path },
    });
  } finally {
    bytes.fill(0);
  }
  requireP384(key, `${what} ${path}`);
  return key;
}

function idBytes(name: string, hex: string): Buffer {
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) usage(`${name} takes 16 bytes as 32 hex digits`);
  return Buffer.from(hex, 'hex');
}

async function launchDigestOf(o: IdBlockCliOptions): Promise<Buffer> {
  if (o.launchDigest !== undefined && o.measurement !== undefined) usage('give --launch-digest or --measurement, not both');
  const fromInputs = o.firmware !== undefined || o.ovmf !== undefined;
  if (fromInputs && (o.launchDigest !== undefined || o.measurement !== undefined)) {
    usage('give the launch digest (--launch-digest, --measurement) or the inputs to compute it (--firmware …), not both');
  }
  if (fromInputs) {
    const [{ resolveLaunchOptions }, { snpDigestFromOptions }] = await Promise.all([import('./measure.js'), import('./measure-snp.js')]);
    return (await snpDigestFromOptions(o, resolveLaunchOptions(o))).digest;
  }
  if (o.launchDigest !== undefined) {
    if (!/^[0-9a-fA-F]{96}$/.test(o.launchDigest)) usage('--launch-digest takes 48 bytes as 96 hex digits');
    return Buffer.from(o.launchDigest, 'hex');
  }
  if (o.measurement !== undefined) {
    const bytes = Buffer.from(o.measurement, 'base64');
    if (bytes.length !== 48 || bytes.toString('base64') !== o.measurement) usage('--measurement takes 48 bytes in base64 (64 characters)');
    return bytes;
  }
  return usage(
    'give the expected launch digest (--launch-digest HEX or --measurement BASE64), or the inputs to compute it (--firmware, --vcpus, --vcpu-type, …)',
  );
}

function merge(name: string, value: string | undefined, alias: string, aliasValue: string | undefined): string | undefined {
  if (value !== undefined && aliasValue !== undefined && value !== aliasValue)
    usage(`${name} and its alias ${alias} were given different values`);
  return value ?? aliasValue;
}

async function writeOutput(path: string, text: string): Promise<void> {
  try {
    await writeFileAtomic(path, text, { overwrite: true });
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_OUTPUT_WRITE', `cannot write ${path}: ${describeIoError(error)}`, { details: { path } });
  }
}

/** @throws SUP_ERR_USAGE, SUP_ERR_CONFIG_READ (unreadable key file), SUP_ERR_OUTPUT_WRITE. */
export async function runIdBlock(o: IdBlockCliOptions): Promise<void> {
  const launchDigest = await launchDigestOf(o);
  const idKeyPath = merge('--id-key', o.idKey, '--idkey', o.idkey);
  const authorKeyPath = merge('--author-key', o.authorKey, '--authorkey', o.authorkey);
  if (idKeyPath === undefined) usage('--id-key PEM (alias --idkey) is required');
  const problems = snpPolicyProblems(o.policy);
  if (problems.length > 0) usage(`policy ${formatSnpPolicy(o.policy)}: ${problems.join('; ')}`);
  const block = buildIdBlock({
    launchDigest,
    familyId: idBytes('--family-id', o.familyId),
    imageId: idBytes('--image-id', o.imageId),
    guestSvn: o.svn,
    policy: o.policy,
  });
  const idKey = await loadKey(idKeyPath, 'ID key');
  const authorKey = authorKeyPath === undefined ? undefined : await loadKey(authorKeyPath, 'author key');
  const auth = buildIdAuth(block, idKey, authorKey);
  const idBlock = block.toString('base64');
  const idAuth = auth.idAuth.toString('base64');
  if (o.idBlockFile !== undefined) await writeOutput(o.idBlockFile, `${idBlock}\n`);
  if (o.idAuthFile !== undefined) await writeOutput(o.idAuthFile, `${idAuth}\n`);
  if (o.json === true) {
    printJson({
      idBlock,
      idAuth,
      idKeyDigest: auth.idKeyDigest.toString('hex'),
      authorKeyDigest: auth.authorKeyDigest?.toString('hex') ?? null,
      launchDigest: launchDigest.toString('hex'),
      policy: formatSnpPolicy(o.policy),
      authorKeyEnabled: auth.authorKeyDigest !== null,
    });
    return;
  }
  if (o.summary !== true) {
    // sev-snp-measure's snp-create-id-block output, which scripts already parse.
    const lines = [`id-block=${idBlock},id-auth=${idAuth}`, `id_key_hash: ${auth.idKeyDigest.toString('base64')}`];
    if (auth.authorKeyDigest !== null) lines.push(`author_key: ${auth.authorKeyDigest.toString('base64')}`);
    process.stdout.write(`${lines.join('\n')}\n`);
    return;
  }
  process.stdout.write(
    formatIdBlockSummary({
      block,
      idAuthBytes: auth.idAuth.length,
      idKeyPath,
      authorKeyPath,
      idKeyDigest: auth.idKeyDigest,
      authorKeyDigest: auth.authorKeyDigest,
      launchDigest,
      policy: o.policy,
      familyId: o.familyId,
      imageId: o.imageId,
      svn: o.svn,
      files: { idBlock: o.idBlockFile, idAuth: o.idAuthFile },
    }),
  );
}

export interface IdBlockSummary {
  readonly block: Buffer;
  readonly idAuthBytes: number;
  readonly idKeyPath: string;
  readonly authorKeyPath: string | undefined;
  readonly idKeyDigest: Buffer;
  readonly authorKeyDigest: Buffer | null;
  readonly launchDigest: Buffer;
  readonly policy: bigint;
  readonly familyId: string;
  readonly imageId: string;
  readonly svn: number;
  readonly files: { readonly idBlock: string | undefined; readonly idAuth: string | undefined };
}

/**
 * What a person reads: what was signed, with which key, the digests reports will carry, the sizes
 * and where the files went. The 4 KiB ID auth itself is only in the files and in --json.
 */
export function formatIdBlockSummary(s: IdBlockSummary): string {
  const written = (file: string | undefined, key: string, option: string): string =>
    file === undefined
      ? `not written (--${option} FILE writes it; --json prints it)`
      : `${file} (base64, as the config's ${key}= takes it)`;
  const lines = [
    `signed an SEV-SNP ID block (${s.block.length} bytes) and ID auth (${s.idAuthBytes} bytes) with the ID key ${s.idKeyPath}`,
    `launch digest:     ${s.launchDigest.toString('hex')}`,
    `policy:            ${formatSnpPolicy(s.policy)}`,
    `family id:         ${s.familyId.toLowerCase()}`,
    `image id:          ${s.imageId.toLowerCase()}`,
    `guest SVN:         ${s.svn}`,
    `ID key digest:     ${s.idKeyDigest.toString('hex')} (ID_KEY_DIGEST in every report; base64 ${s.idKeyDigest.toString('base64')})`,
    s.authorKeyDigest === null
      ? 'author key:        none'
      : `author key digest: ${s.authorKeyDigest.toString('hex')} (AUTHOR_KEY_DIGEST; ${s.authorKeyPath ?? '?'})`,
    `ID block file:     ${written(s.files.idBlock, 'id-block', 'id-block-file')}`,
    `ID auth file:      ${written(s.files.idAuth, 'id-auth', 'id-auth-file')}`,
  ];
  return `${lines.join('\n')}\n`;
}
