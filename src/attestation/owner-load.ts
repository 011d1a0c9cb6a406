// Loading the owner service's config and everything it names: TLS material, host tokens, and per
// guest the owner's keys, secrets and expected launch digest (computed once, at start, with
// `sevsup measure`'s code). Owns: that I/O and turning its failures into config errors that name
// file:line and key. Must not: put key, token or secret bytes in any message, detail or log.
import { readFile, stat } from 'node:fs/promises';
import { SupervisorError, isSupervisorError } from '../errors.js';
import { TEK_BYTES } from '../sev/launch-secret.js';
import { TIK_BYTES } from '../sev/measurement.js';
import { buildSecretTable } from '../sev/launch-secret.js';
import { describeIoError } from '../util/io-error.js';
import { computeExpectedDigest, readBounded, readSecretFile } from './inputs.js';
import { parseOwnerConfig, type GuestConfig, type OwnerServiceConfig, type SevGuestConfig } from './owner-config.js';
import type { LoadedGuest, LoadedSevGuest } from './owner-decide.js';
import { maxSecretTableBytes } from './relay-protocol.js';

export interface LoadedOwnerService {
  readonly config: OwnerServiceConfig;
  readonly tls: { readonly cert: Buffer; readonly key: Buffer; readonly ca: Buffer | null };
  /** token → host id. */
  readonly tokens: ReadonlyMap<string, string>;
  /** The scraper's bearer token (`metrics-token`), never a host's. */
  readonly metricsToken: string | null;
  /** `${host}/${vm}` → guest. */
  readonly guests: ReadonlyMap<string, LoadedGuest>;
}

/** Bearer tokens shorter than this are guessable. */
export const MIN_TOKEN_CHARS = 16;
const MAX_SMALL_FILE = 1024 * 1024;

/** The key of the guests map. */
export function guestKey(host: string, vm: string): string {
  return `${host}/${vm}`;
}

/**
 * Read and check `file` and everything it names.
 * @throws SUP_ERR_CONFIG_READ (the config), SUP_ERR_CONFIG_* (its contents, and files it names that
 * are missing or wrong), SUP_ERR_FIRMWARE_* / SUP_ERR_KERNEL_READ (reference inputs).
 */
export async function loadOwnerService(file: string): Promise<LoadedOwnerService> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_CONFIG_READ', `cannot read the owner config ${file}: ${describeIoError(error)}`, {
      details: { file },
      cause: error,
    });
  }
  const config = parseOwnerConfig(text, file);
  const small = async (path: string, line: number, key: string, secret = false): Promise<Buffer> => {
    if (secret) await refuseOpenToOthers(path, config.file, line, key);
    return readBounded(path, MAX_SMALL_FILE, 'SUP_ERR_CONFIG_BAD_VALUE', `${key} file`).catch((error: unknown) => {
      throw rewrap(error, config.file, line, key);
    });
  };
  const keyLine = (k: string): number => lineOfServiceKey(text, k);
  const [cert, key, ca] = await Promise.all([
    small(config.tlsCert, keyLine('tls-cert'), 'tls-cert'),
    small(config.tlsKey, keyLine('tls-key'), 'tls-key', true),
    config.clientCa === null ? Promise.resolve(null) : small(config.clientCa, keyLine('client-ca'), 'client-ca'),
  ]);
  const readToken = async (path: string, line: number, key: string): Promise<string> => {
    const token = (await small(path, line, key, true)).toString('utf8').trim();
    if (token.length < MIN_TOKEN_CHARS || !/^[\x21-\x7e]+$/.test(token)) {
      throw bad(config.file, line, key, `the token file ${path} must hold one token of at least ${MIN_TOKEN_CHARS} printable characters`);
    }
    return token;
  };
  const tokens = new Map<string, string>();
  for (const t of config.tokens) {
    const token = await readToken(t.file, t.line, 'token');
    if (tokens.has(token)) throw bad(config.file, t.line, 'token', `host ${t.host} has the same token as host ${tokens.get(token) ?? ''}`);
    tokens.set(token, t.host);
  }
  const metricsFile = config.metrics?.tokenFile ?? null;
  const metricsToken = metricsFile === null ? null : await readToken(metricsFile, keyLine('metrics-token'), 'metrics-token');
  if (metricsToken !== null && tokens.has(metricsToken)) {
    throw bad(
      config.file,
      keyLine('metrics-token'),
      'metrics-token',
      `it is host ${tokens.get(metricsToken) ?? ''}'s token; a scraper needs its own`,
    );
  }
  const guests = new Map<string, LoadedGuest>();
  for (const g of config.guests) guests.set(guestKey(g.host, g.vm), await loadGuest(config.file, g));
  return { config, tls: { cert, key, ca }, tokens, metricsToken, guests };
}

async function loadGuest(file: string, g: GuestConfig): Promise<LoadedGuest> {
  if (g.type === 'snp')
    return { type: 'snp', host: g.host, vm: g.vm, digest: g.digest, policy: g.policy, hostData: g.hostData, idKeyDigest: g.idKeyDigest };
  return loadSevGuest(file, g);
}

async function loadSevGuest(file: string, g: SevGuestConfig): Promise<LoadedSevGuest> {
  const line = (k: string): number => g.lines[k] ?? g.line;
  const key = async (path: string, k: 'tik' | 'tek', bytes: number): Promise<Buffer> => {
    await refuseOpenToOthers(path, file, line(k), k);
    const data = await readBounded(path, 4096, 'SUP_ERR_CONFIG_BAD_VALUE', `${k} file`).catch((error: unknown) => {
      throw rewrap(error, file, line(k), k);
    });
    if (data.length !== bytes) throw bad(file, line(k), k, `expected ${bytes} bytes in ${path}, but got ${data.length}`);
    return data;
  };
  const tik = await key(g.tik, 'tik', TIK_BYTES);
  const tek = g.tek === null ? null : await key(g.tek, 'tek', TEK_BYTES);
  const secrets = await Promise.all(
    g.secrets.map(async (s, i) => {
      await refuseOpenToOthers(s.path, file, line(`secret#${i}`), 'secret');
      return {
        guid: s.guid,
        data: await readSecretFile(s.path).catch((error: unknown) => {
          throw rewrap(error, file, line(`secret#${i}`), 'secret');
        }),
      };
    }),
  );
  if (secrets.length > 0) {
    let table: Buffer;
    try {
      table = buildSecretTable(secrets);
    } catch (error: unknown) {
      throw rewrap(error, file, line('secret#0'), 'secret');
    }
    const max = maxSecretTableBytes();
    if (table.length > max)
      throw bad(file, line('secret#0'), 'secret', `the secret table is ${table.length} bytes; an answer carries at most ${max}`);
  }
  let digest: Buffer;
  let firmware: LoadedSevGuest['firmware'] = null;
  const ref = g.reference;
  if (ref.kind === 'digest') {
    digest = ref.digest;
  } else {
    try {
      const computed = await computeExpectedDigest({
        firmware: ref.firmware,
        ...(ref.kernel === null ? {} : { kernel: ref.kernel }),
        ...(ref.initrd === null ? {} : { initrd: ref.initrd }),
        ...(ref.cmdline === null ? {} : { cmdline: ref.cmdline }),
        ...(ref.vcpus !== null && ref.cpu !== null
          ? { sevEs: { vcpus: ref.vcpus, cpu: ref.cpu, vmsaInit: ref.vmsaInit, sevFeatures: ref.sevFeatures } }
          : {}),
      });
      digest = computed.digest;
      firmware = { path: computed.firmware.path, table: computed.firmware.table };
    } catch (error: unknown) {
      if (isSupervisorError(error)) {
        throw new SupervisorError(error.code, `${file}:${g.line}: [guest ${g.host}/${g.vm}]: ${error.message}`, {
          details: { ...error.details, file, line: g.line },
          cause: error,
        });
      }
      throw error;
    }
  }
  return {
    type: g.type,
    host: g.host,
    vm: g.vm,
    digest,
    policies: g.policies,
    minApi: g.minApi,
    buildIds: g.buildIds,
    tik,
    tek,
    secrets,
    firmware,
  };
}

/**
 * Refuse a key, token or secret file that users other than its owner and group may read or write,
 * as ssh refuses such private keys: the service would otherwise serve keys anyone on the machine
 * can copy (or swap). Group access stays allowed (root:sevsup-owner 0640 is a fair deployment).
 * A file that cannot be stat'ed is left to the read that follows, which names the reason.
 */
async function refuseOpenToOthers(path: string, file: string, line: number, key: string): Promise<void> {
  const mode = await stat(path).then(
    (st) => st.mode,
    () => null,
  );
  if (mode !== null && (mode & 0o007) !== 0) {
    throw bad(
      file,
      line,
      key,
      `${path} is open to other users (mode 0${(mode & 0o777).toString(8)}); it holds a key or secret: chmod o-rwx ${path} (e.g. chmod 600)`,
    );
  }
}

function bad(file: string, line: number, key: string, problem: string): SupervisorError {
  return new SupervisorError('SUP_ERR_CONFIG_BAD_VALUE', `${file}:${line}: ${key}: ${problem}`, { details: { file, line, key } });
}

function rewrap(error: unknown, file: string, line: number, key: string): SupervisorError {
  const message = isSupervisorError(error) || error instanceof Error ? error.message : String(error);
  return new SupervisorError('SUP_ERR_CONFIG_BAD_VALUE', `${file}:${line}: ${key}: ${message}`, {
    details: { file, line, key },
    cause: error,
  });
}

/** Line of a service-section key (they are unique there), for messages about the file it names. */
function lineOfServiceKey(text: string, key: string): number {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.trim().startsWith(`${key}:`));
  return at < 0 ? 1 : at + 1;
}
