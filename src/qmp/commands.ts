// Typed wrappers for the QMP commands sevsup uses, in libvirt's three beats: make the command,
// send it, check the reply's shape. Each JSDoc quotes the wire exchange (QEMU 7.2 unless noted).
// Owns: the shapes of these replies (query-sev as a union of the 7.2 flat struct and 9.1+'s SEV
// and SEV-SNP branches). Must not: decide what a reply means for a VM (vm/ does), or log secrets.
// A `return` of the wrong shape is SUP_ERR_QMP_PROTOCOL; a QMP error reply is SUP_ERR_QMP_EXECUTE.
import { SupervisorError } from '../errors.js';
import type { QmpCallOptions } from './client.js';
import { isRecord } from '../util/is-record.js';

/** What the wrappers need: QmpClient, or anything with its `execute`. */
export interface QmpExecutor {
  execute(name: string, args?: Record<string, unknown>, options?: QmpCallOptions): Promise<unknown>;
}

export type SevType = 'sev' | 'sev-snp';

/** What every `query-sev` shape carries. */
interface SevInfoCommon {
  readonly enabled: boolean;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
  /** SevState: uninit, launch-update, launch-secret, running, send-update, receive-update. */
  readonly state: string;
}

/** QEMU 7.2's flat reply: always SEV/SEV-ES (7.2 knows no SNP). */
export interface SevInfoLegacy extends SevInfoCommon {
  readonly sevType: null;
  /** SEV/SEV-ES guest policy (uint32). */
  readonly policy: number;
  /** Firmware guest handle. */
  readonly handle: number;
}

/** QEMU ≥ 9.1, `sev-type: sev` (SEV and SEV-ES alike). */
export interface SevInfoSev extends SevInfoCommon {
  readonly sevType: 'sev';
  readonly policy: number;
  readonly handle: number;
}

/** QEMU ≥ 9.1, `sev-type: sev-snp`: a 64-bit policy, no handle (snp-facts §1.4). */
export interface SevInfoSnp extends SevInfoCommon {
  readonly sevType: 'sev-snp';
  /** `snp-policy`: the sev-snp-guest object's 64-bit policy, exactly. */
  readonly snpPolicy: bigint;
}

/** `query-sev`: a union discriminated on `sevType` (null: the 7.2 flat reply). */
export type SevInfo = SevInfoLegacy | SevInfoSev | SevInfoSnp;

export interface QemuVersion {
  readonly qemu: { readonly major: number; readonly minor: number; readonly micro: number };
  readonly package: string;
}

export interface SevCapabilities {
  readonly pdh: string;
  readonly certChain: string;
  /** Since QEMU 7.1. */
  readonly cpu0Id: string | null;
  readonly cbitpos: number;
  readonly reducedPhysBits: number;
}

export interface LaunchSecret {
  /** base64 packet header, from the guest owner. */
  readonly packetHeader: string;
  /** base64 encrypted secret, from the guest owner. */
  readonly secret: string;
  /** Guest physical address; omitted, QEMU uses the firmware's SEV secret area. */
  readonly gpa?: number;
}

type Obj = Readonly<Record<string, unknown>>;

function isUint(value: unknown, max = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max;
}

const UINT8_MAX = 0xff;
const UINT32_MAX = 0xffff_ffff;

function badReply(command: string, what: string): SupervisorError {
  return new SupervisorError('SUP_ERR_QMP_PROTOCOL', `QMP command '${command}' returned an unexpected reply: ${what}`, {
    details: { command },
  });
}

/** Shape checker bound to one command, so every failure names it. */
function reader(command: string, value: unknown): Obj {
  if (!isRecord(value)) throw badReply(command, 'not an object');
  return value;
}

function str(command: string, o: Obj, key: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw badReply(command, `'${key}' is not a string`);
  return v;
}

function uint(command: string, o: Obj, key: string, max?: number): number {
  const v = o[key];
  if (!isUint(v, max)) throw badReply(command, `'${key}' is not an unsigned integer${max === undefined ? '' : ` ≤ ${max}`}`);
  return v;
}

function bool(command: string, o: Obj, key: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') throw badReply(command, `'${key}' is not a boolean`);
  return v;
}

async function expectEmpty(c: QmpExecutor, command: string, args?: Record<string, unknown>, options?: QmpCallOptions): Promise<void> {
  const ret = reader(command, await c.execute(command, args, options));
  if (Object.keys(ret).length !== 0) throw badReply(command, 'expected {}');
}

/**
 * Negotiate capabilities. QmpClient already did this during connect; a second call is refused by
 * QEMU (CommandNotFound "Capabilities negotiation is already complete, command ignored").
 * ```
 * -> {"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}
 * <- {"return":{}}
 * ```
 */
export async function qmpCapabilities(c: QmpExecutor, enable: readonly string[] = []): Promise<void> {
  await expectEmpty(c, 'qmp_capabilities', enable.length > 0 ? { enable: [...enable] } : undefined);
}

/**
 * ```
 * -> {"execute":"query-version"}
 * <- {"return":{"qemu":{"micro":22,"minor":2,"major":7},"package":"Debian 1:7.2+dfsg-7+deb12u18+b3"}}
 * ```
 */
export async function queryVersion(c: QmpExecutor): Promise<QemuVersion> {
  const cmd = 'query-version';
  const ret = reader(cmd, await c.execute(cmd));
  const qemu = ret['qemu'];
  if (!isRecord(qemu)) throw badReply(cmd, "'qemu' is not an object");
  return {
    qemu: { major: uint(cmd, qemu, 'major'), minor: uint(cmd, qemu, 'minor'), micro: uint(cmd, qemu, 'micro') },
    package: str(cmd, ret, 'package'),
  };
}

/**
 * ```
 * -> {"execute":"query-status"}
 * <- {"return":{"status":"prelaunch","singlestep":false,"running":false}}
 * ```
 */
export async function queryStatus(c: QmpExecutor): Promise<{ status: string; running: boolean }> {
  const cmd = 'query-status';
  const ret = reader(cmd, await c.execute(cmd));
  return { status: str(cmd, ret, 'status'), running: bool(cmd, ret, 'running') };
}

/**
 * The names of the commands this QEMU offers.
 * ```
 * -> {"execute":"query-commands"}
 * <- {"return":[{"name":"qom-list-types"},{"name":"query-sev"},…]}
 * ```
 */
export async function queryCommands(c: QmpExecutor): Promise<string[]> {
  const cmd = 'query-commands';
  const ret = await c.execute(cmd);
  if (!Array.isArray(ret)) throw badReply(cmd, 'not an array');
  return ret.map((entry: unknown) => str(cmd, reader(cmd, entry), 'name'));
}

/**
 * SEV state of the guest, as a union on `sevType`. `enabled:false` is a successful reply (SEV off or
 * an unlinked sev-guest object), not an error.
 * ```
 * QEMU 7.2 (flat):
 * -> {"execute":"query-sev"}
 * <- {"return":{"enabled":true,"api-major":1,"api-minor":55,"build-id":21,"policy":7,
 *               "state":"launch-secret","handle":1}}
 * QEMU ≥ 9.1 (union on sev-type), SEV / SEV-ES:
 * <- {"return":{"enabled":true,"api-major":1,"api-minor":55,"build-id":21,"state":"launch-secret",
 *               "sev-type":"sev","policy":7,"handle":1}}
 * QEMU ≥ 9.1, SEV-SNP (no policy, no handle; launch-update until the first run, then running):
 * <- {"return":{"enabled":true,"api-major":1,"api-minor":55,"build-id":21,"state":"launch-update",
 *               "sev-type":"sev-snp","snp-policy":196608}}
 * ```
 * @throws SUP_ERR_QMP_PROTOCOL for any other shape or an unknown `sev-type`.
 */
export async function querySev(c: QmpExecutor): Promise<SevInfo> {
  return parseSevInfo(await c.execute('query-sev'));
}

/**
 * The parsing of {@link querySev}, for replies obtained otherwise (the proxy, records).
 * `snp-policy` is a QAPI uint64 but arrives as a JSON number: only a safe integer is accepted, so a
 * value JSON.parse rounded (above 2^53) is refused, never compared inexactly. Every policy a
 * firmware accepts fits (bits 63:26 are reserved).
 */
export function parseSevInfo(value: unknown): SevInfo {
  const cmd = 'query-sev';
  const ret = reader(cmd, value);
  const common: SevInfoCommon = {
    enabled: bool(cmd, ret, 'enabled'),
    apiMajor: uint(cmd, ret, 'api-major', UINT8_MAX),
    apiMinor: uint(cmd, ret, 'api-minor', UINT8_MAX),
    buildId: uint(cmd, ret, 'build-id', UINT8_MAX),
    state: str(cmd, ret, 'state'),
  };
  const sevType = ret['sev-type'];
  if (sevType === undefined || sevType === 'sev') {
    const policy = uint(cmd, ret, 'policy', UINT32_MAX);
    const handle = uint(cmd, ret, 'handle', UINT32_MAX);
    return sevType === undefined ? { ...common, sevType: null, policy, handle } : { ...common, sevType: 'sev', policy, handle };
  }
  if (sevType === 'sev-snp') {
    const snpPolicy = ret['snp-policy'];
    if (typeof snpPolicy === 'number' && Number.isInteger(snpPolicy) && snpPolicy >= 0 && !Number.isSafeInteger(snpPolicy)) {
      throw badReply(cmd, "'snp-policy' is above 2^53 and cannot be read exactly from JSON");
    }
    return { ...common, sevType: 'sev-snp', snpPolicy: BigInt(uint(cmd, ret, 'snp-policy')) };
  }
  throw badReply(cmd, `unknown 'sev-type' ${JSON.stringify(sevType)}`);
}

/**
 * The launch measurement: base64 of 48 bytes (HMAC ‖ mnonce). Available from state launch-secret.
 * SEV / SEV-ES only: on an SEV-SNP guest it always fails with the error below (the measurement
 * exists only inside the guest's attestation report), so sevsup never sends it for SNP.
 * ```
 * -> {"execute":"query-sev-launch-measure"}
 * <- {"return":{"data":"4l8LXeNlSPUDlXPJG5966/8%YZ…"}}
 * <- {"error":{"class":"GenericError","desc":"SEV launch measurement is not available"}}
 * ```
 * @throws SUP_ERR_QMP_EXECUTE when not available; SUP_ERR_QMP_PROTOCOL for another shape.
 */
export async function querySevLaunchMeasure(c: QmpExecutor): Promise<string> {
  const cmd = 'query-sev-launch-measure';
  const data = str(cmd, reader(cmd, await c.execute(cmd)), 'data');
  if (data.length === 0) throw badReply(cmd, "'data' is empty");
  return data;
}

/**
 * The platform's SEV capabilities (needs KVM and /dev/sev).
 * ```
 * -> {"execute":"query-sev-capabilities"}
 * <- {"return":{"pdh":"…","cert-chain":"…","cpu0-id":"…","cbitpos":47,"reduced-phys-bits":1}}
 * <- {"error":{"class":"GenericError","desc":"SEV is not enabled in KVM"}}
 * ```
 */
export async function querySevCapabilities(c: QmpExecutor, options?: QmpCallOptions): Promise<SevCapabilities> {
  const cmd = 'query-sev-capabilities';
  const ret = reader(cmd, await c.execute(cmd, undefined, options));
  const cpu0Id = ret['cpu0-id'];
  if (cpu0Id !== undefined && typeof cpu0Id !== 'string') throw badReply(cmd, "'cpu0-id' is not a string");
  return {
    pdh: str(cmd, ret, 'pdh'),
    certChain: str(cmd, ret, 'cert-chain'),
    cpu0Id: cpu0Id ?? null,
    cbitpos: uint(cmd, ret, 'cbitpos'),
    reducedPhysBits: uint(cmd, ret, 'reduced-phys-bits'),
  };
}

/**
 * Inject the guest owner's launch secret (state launch-secret only). Arguments are redacted from
 * the client's trace log.
 * ```
 * -> {"execute":"sev-inject-launch-secret",
 *     "arguments":{"packet-header":"<base64>","secret":"<base64>","gpa":8433664}}
 * <- {"return":{}}
 * <- {"error":{"class":"GenericError","desc":"SEV: Not in correct state. (LSECRET) 3"}}
 * ```
 */
export async function sevInjectLaunchSecret(c: QmpExecutor, secret: LaunchSecret): Promise<void> {
  const args: Record<string, unknown> = { 'packet-header': secret.packetHeader, secret: secret.secret };
  if (secret.gpa !== undefined) args['gpa'] = secret.gpa;
  await expectEmpty(c, 'sev-inject-launch-secret', args);
}

/** The x86 CPU signature of a vCPU (CPUID 1 EAX), as QEMU puts it in each SEV-ES VMSA (EDX at reset). */
export interface VcpuSignature {
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
}

/**
 * The CPU signature of the first vCPU: its QOM path from `query-cpus-fast`, then the x86 CPU
 * object's `family`, `model` and `stepping` properties (every vCPU of a guest has the same).
 * ```
 * -> {"execute":"query-cpus-fast"}
 * <- {"return":[{"thread-id":4242,"props":{"core-id":0,"thread-id":0,"node-id":0,"socket-id":0},
 *                "qom-path":"/machine/unattached/device[0]","cpu-index":0,"target":"x86_64"}]}
 * -> {"execute":"qom-get","arguments":{"path":"/machine/unattached/device[0]","property":"family"}}
 * <- {"return":23}
 * (the same for "model" and "stepping")
 * ```
 * @throws SUP_ERR_QMP_PROTOCOL when there is no vCPU or a property is not an unsigned integer.
 */
export async function queryCpuSignature(c: QmpExecutor): Promise<VcpuSignature> {
  const cpus = await c.execute('query-cpus-fast');
  if (!Array.isArray(cpus) || cpus.length === 0) throw badReply('query-cpus-fast', 'no vCPU');
  const path = str('query-cpus-fast', reader('query-cpus-fast', cpus[0]), 'qom-path');
  const prop = async (property: string): Promise<number> => {
    const value = await c.execute('qom-get', { path, property });
    if (!isUint(value)) throw badReply('qom-get', `${path} ${property} is not an unsigned integer`);
    return value;
  };
  return { family: await prop('family'), model: await prop('model'), stepping: await prop('stepping') };
}

/**
 * Resume the guest; for SEV this is LAUNCH_FINISH.
 * ```
 * -> {"execute":"cont"}
 * <- {"return":{}}
 * ```
 */
export async function cont(c: QmpExecutor): Promise<void> {
  await expectEmpty(c, 'cont');
}

/**
 * ```
 * -> {"execute":"stop"}
 * <- {"return":{}}
 * ```
 */
export async function stop(c: QmpExecutor): Promise<void> {
  await expectEmpty(c, 'stop');
}

/**
 * Ask the guest to power off (ACPI); QEMU answers at once, the guest may ignore it.
 * ```
 * -> {"execute":"system_powerdown"}
 * <- {"return":{}}
 * ```
 */
export async function systemPowerdown(c: QmpExecutor): Promise<void> {
  await expectEmpty(c, 'system_powerdown');
}

/**
 * Make QEMU exit. The reply comes first, then EOF; QmpClient treats that EOF as a clean end.
 * ```
 * -> {"execute":"quit"}
 * <- {"return":{}}
 * <- {"event":"SHUTDOWN","data":{"guest":false,"reason":"host-qmp-quit"},"timestamp":{…}}
 * ```
 */
export async function quit(c: QmpExecutor): Promise<void> {
  await expectEmpty(c, 'quit');
}

/**
 * Take an internal snapshot named `name` on every block node in `devices` at once: one
 * `transaction`, so QEMU snapshots all of them or none.
 * ```
 * -> {"execute":"transaction","arguments":{"actions":[{"type":"blockdev-snapshot-internal-sync",
 *        "data":{"device":"disk0","name":"before-upgrade"}}]}}
 * <- {"return":{}}
 * <- {"error":{"class":"GenericError","desc":"Device 'disk0' is writable but does not support snapshots"}}
 * ```
 * @throws SUP_ERR_QMP_EXECUTE when QEMU refuses (nothing was taken).
 */
export async function snapshotInternalTransaction(c: QmpExecutor, devices: readonly string[], name: string): Promise<void> {
  const actions = devices.map((device) => ({ type: 'blockdev-snapshot-internal-sync', data: { device, name } }));
  await expectEmpty(c, 'transaction', { actions });
}
