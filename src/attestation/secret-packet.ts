// The guest owner's launch-secret packet, built one way for `sevsup secret build` and for the
// owner's service (`sevsup owner serve`): secret specs (`GUID:FILE`, `ALIAS:FILE`), the packet under
// the owner's TEK/TIK bound to one launch's measurement, the firmware-area fit, and the self-check
// as the secure processor runs it. Pure: no I/O (callers read keys and secret files).
// Must not: put key or secret bytes in any message or detail.
import { SupervisorError } from '../errors.js';
import { buildLaunchSecret, resolveSecretGuid, SECRET_ALIASES, verifyLaunchSecret, type LaunchSecretPacket } from '../sev/launch-secret.js';
import { describeSecretAreaProblem, hex, type OvmfTable } from '../sev/ovmf-table.js';
import { decodeReportedMeasurement } from './verify.js';

export interface SecretSpec {
  readonly guid: string;
  readonly path: string;
}

/**
 * `GUID:FILE` or `ALIAS:FILE`, split at the first colon (GUIDs and aliases have none; paths may).
 * `what` names the option or config line in messages (default `--secret`).
 * @throws SUP_ERR_USAGE for a missing colon or path, or an unknown alias.
 */
export function parseSecretSpec(spec: string, what = '--secret'): SecretSpec {
  const at = spec.indexOf(':');
  const name = at < 0 ? spec : spec.slice(0, at);
  const path = at < 0 ? '' : spec.slice(at + 1);
  if (path === '') throw new SupervisorError('SUP_ERR_USAGE', `${what} ${JSON.stringify(spec)}: expected GUID-OR-ALIAS:FILE`);
  const guid = resolveSecretGuid(name);
  if (guid === null) {
    throw new SupervisorError(
      'SUP_ERR_USAGE',
      `${what}: ${JSON.stringify(name)} is neither a GUID nor a known alias (${Object.keys(SECRET_ALIASES).join(', ')})`,
    );
  }
  return { guid, path };
}

export interface SealedSecret {
  readonly packet: LaunchSecretPacket;
  /** Notes for people (a firmware without a usable secret area); never secret. */
  readonly notes: readonly string[];
}

/**
 * The packet for `measurement` (base64 of 48 bytes), checked as the platform will check it.
 * With `firmware` (its footer table), a table larger than the launch-secret area is refused.
 * @throws SUP_ERR_VERIFY_UNSUPPORTED (malformed measurement, key sizes), SUP_ERR_USAGE (secret
 * sizes, a table that does not fit), SUP_ERR_INTERNAL (a packet the platform would refuse).
 */
export function sealLaunchSecret(i: {
  tik: Buffer;
  tek: Buffer;
  measurement: string;
  secrets: readonly { guid: string; data: Buffer }[];
  firmware?: { path: string; table: OvmfTable } | null;
  iv?: Buffer;
}): SealedSecret {
  const { mac } = decodeReportedMeasurement(i.measurement);
  const packet = buildLaunchSecret({
    tik: i.tik,
    tek: i.tek,
    measurementMac: mac,
    secrets: i.secrets,
    ...(i.iv === undefined ? {} : { iv: i.iv }),
  });
  const notes: string[] = [];
  if (i.firmware != null) {
    const area = i.firmware.table.secretArea;
    const problem = describeSecretAreaProblem(area);
    if (problem !== '' || area === null) {
      notes.push(`${i.firmware.path}: ${problem}`);
    } else if (packet.payload.length > area.size) {
      throw new SupervisorError(
        'SUP_ERR_USAGE',
        `the secret table is ${packet.payload.length} bytes but ${i.firmware.path} declares a launch-secret area of ${hex(area.size)} bytes at ${hex(area.base)}: ` +
          'QEMU would write past it',
        { details: { tableBytes: packet.payload.length, areaSize: area.size } },
      );
    }
  }
  // Check the packet as the secure processor will, before anyone carries it to the host.
  const check = verifyLaunchSecret({ tik: i.tik, tek: i.tek, measurementMac: mac, header: packet.header, payload: packet.payload });
  if (!check.ok) throw new SupervisorError('SUP_ERR_INTERNAL', `built a launch secret the platform would refuse: ${check.reason}`);
  return { packet, notes };
}
