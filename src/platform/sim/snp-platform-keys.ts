// The simulated SEV-SNP platform's identity: a SIMULATED ARK → ASK → VCEK chain (RSA-PSS ARK/ASK,
// P-384 VCEK with AMD's extensions; sev/snp-cert-builder.ts), the chip id and the TCB the VCEK
// certifies. Made once per sim state directory and kept there: snp/ark.pem, ask.pem, vcek.pem (the
// chain as snpguest lays it out), vcek-key.pem and platform.json, every file 0600, the directories
// 0700. NOT a security boundary: the "chip key" is a file on this host.
// Owns: where the state directory is, its atomic creation (made in a temporary directory and
// renamed into place, so concurrent sims agree on one chain), and loading it.
// Must not: be used outside the simulated platform, or log key material.
import { createPrivateKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { buildSimulatedChain, derToPem, type ChainKeys } from '../../sev/snp-cert-builder.js';
import { splitPem } from '../../sev/snp-certs.js';
import type { SnpProduct, TcbParts } from '../../sev/snp-report.js';
import { isRecord } from '../../util/is-record.js';

/** The simulated host: an EPYC Milan (the sim's -cpu host), with a recent Milan TCB. */
export const SIM_SNP_PRODUCT: SnpProduct = 'Milan';
export const SIM_SNP_TCB: TcbParts = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
const CHIP_ID_BYTES = 64;
const PLATFORM_SCHEMA = 'sevsup.sim-snp-platform/v1';

export interface SnpPlatformIdentity {
  readonly dir: string;
  readonly product: SnpProduct;
  readonly tcb: TcbParts;
  readonly chipId: Buffer;
  /** PEM text of each certificate, as snpguest writes ark.pem, ask.pem, vcek.pem. */
  readonly pem: { readonly ark: string; readonly ask: string; readonly vcek: string };
  readonly vcekKey: KeyObject;
}

/**
 * The sim's state directory: `--sim-state-dir`, else $SEVSUP_SIM_STATE_DIR, else
 * $XDG_STATE_HOME/sevsup-sim (default ~/.local/state/sevsup-sim).
 */
export function simStateDir(given: string | null, env: NodeJS.ProcessEnv = process.env): string {
  if (given !== null) return given;
  const fromEnv = env['SEVSUP_SIM_STATE_DIR'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const xdg = env['XDG_STATE_HOME'];
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.local', 'state'), 'sevsup-sim');
}

const FILES = { ark: 'ark.pem', ask: 'ask.pem', vcek: 'vcek.pem', key: 'vcek-key.pem', platform: 'platform.json' } as const;

async function load(snpDir: string, stateDir: string): Promise<SnpPlatformIdentity> {
  const read = (name: string): Promise<string> => readFile(join(snpDir, name), 'utf8');
  const [ark, ask, vcek, key, platformText] = await Promise.all([
    read(FILES.ark),
    read(FILES.ask),
    read(FILES.vcek),
    read(FILES.key),
    read(FILES.platform),
  ]);
  const platform: unknown = JSON.parse(platformText);
  if (
    !isRecord(platform) ||
    platform['schema'] !== PLATFORM_SCHEMA ||
    typeof platform['chipId'] !== 'string' ||
    !isRecord(platform['tcb'])
  ) {
    throw new Error(`${join(snpDir, FILES.platform)} is not a ${PLATFORM_SCHEMA} file`);
  }
  const chipId = Buffer.from(platform['chipId'], 'hex');
  if (chipId.length !== CHIP_ID_BYTES || splitPem(ark).length !== 1 || splitPem(ask).length !== 1 || splitPem(vcek).length !== 1) {
    throw new Error(`${snpDir} does not hold one simulated chain (remove the directory to make a new one)`);
  }
  return {
    dir: stateDir,
    product: SIM_SNP_PRODUCT,
    tcb: platform['tcb'] as unknown as TcbParts,
    chipId,
    pem: { ark, ask, vcek },
    vcekKey: createPrivateKey(key),
  };
}

const generate = promisify(generateKeyPair);

/** Fresh ARK, ASK (RSA-4096) and VCEK (P-384) keys, made off the event loop (tens of seconds on a busy host). */
async function chainKeys(): Promise<ChainKeys> {
  const rsa = async (): Promise<KeyObject> => (await generate('rsa', { modulusLength: 4096 })).privateKey;
  const [ark, intermediate, leaf] = await Promise.all([rsa(), rsa(), generate('ec', { namedCurve: 'secp384r1' })]);
  return { ark, intermediate, leaf: leaf.privateKey };
}

/** Make the chain in a private temporary directory next to `snpDir`, then rename it into place. */
async function create(stateDir: string, snpDir: string): Promise<void> {
  const chipId = randomBytes(CHIP_ID_BYTES);
  const chain = buildSimulatedChain({ product: SIM_SNP_PRODUCT, tcb: SIM_SNP_TCB, chipId, keys: await chainKeys() });
  const temp = join(stateDir, `.snp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(temp, { mode: 0o700 });
  try {
    const write = (name: string, text: string): Promise<void> => writeFile(join(temp, name), text, { mode: 0o600, flag: 'wx' });
    await write(FILES.ark, derToPem(chain.ark));
    await write(FILES.ask, derToPem(chain.intermediate));
    await write(FILES.vcek, derToPem(chain.leaf));
    await write(FILES.key, chain.leafKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    const platform = {
      schema: PLATFORM_SCHEMA,
      product: SIM_SNP_PRODUCT,
      tcb: SIM_SNP_TCB,
      chipId: chipId.toString('hex'),
      note: 'SIMULATED platform: not AMD',
    };
    await write(FILES.platform, `${JSON.stringify(platform, null, 2)}\n`);
    await rename(temp, snpDir);
  } catch (error: unknown) {
    await rm(temp, { recursive: true, force: true });
    // Another sim renamed its chain into place first: use that one.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
  }
}

/** The platform identity in `stateDir`, read only. @throws ENOENT when none was made yet. */
export function loadSnpPlatform(stateDir: string): Promise<SnpPlatformIdentity> {
  return load(join(stateDir, 'snp'), stateDir);
}

/**
 * The platform identity in `stateDir`, made there first if absent (two RSA-4096 keys: up to a minute).
 * @throws Error with the path when the directory cannot be made or holds something else.
 */
export async function loadOrCreateSnpPlatform(stateDir: string): Promise<SnpPlatformIdentity> {
  const snpDir = join(stateDir, 'snp');
  try {
    return await load(snpDir, stateDir);
  } catch (error: unknown) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await create(stateDir, snpDir);
  return load(snpDir, stateDir);
}
