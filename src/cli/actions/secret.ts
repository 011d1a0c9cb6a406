// Implementation of `sevsup secret build`: read keys, measurement and secret files, build the
// packet with attestation/secret-packet.ts (as the owner service does), check it as the platform would, write header and payload in
// base64 (0600). Must not: print, log or put in errors any key or secret byte; load heavy modules.
import { loadRecord, loadTransportKeys, readSecretFile } from '../../attestation/inputs.js';
import { parseSecretSpec, sealLaunchSecret } from '../../attestation/secret-packet.js';
import { SupervisorError } from '../../errors.js';
import { inspectFirmwareFile } from '../../sev/firmware-file.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import type { SecretBuildCliOptions } from '../commands/secret.js';
import { printJson } from '../output.js';
import { errnoOf } from '../../util/io-error.js';

/**
 * @throws SUP_ERR_USAGE (secret specs, sizes, --measurement/--record), SUP_ERR_VERIFY_UNSUPPORTED
 * (keys, malformed measurement), SUP_ERR_VERIFY_CONFIG (bad record), SUP_ERR_VERIFY_STATE (record
 * not in launch-secret), SUP_ERR_FIRMWARE_READ / _TABLE_INVALID (--firmware).
 */
export async function runSecretBuild(o: SecretBuildCliOptions): Promise<void> {
  if ((o.measurement === undefined) === (o.record === undefined)) {
    throw new SupervisorError('SUP_ERR_USAGE', 'give the launch measurement with exactly one of --measurement and --record');
  }
  const specs = o.secret.map((spec) => parseSecretSpec(spec));
  const [keys, record, datas, firmware] = await Promise.all([
    loadTransportKeys(
      {
        ...(o.tik === undefined ? {} : { tik: o.tik }),
        ...(o.tek === undefined ? {} : { tek: o.tek }),
        ...(o.tk === undefined ? {} : { tk: o.tk }),
      },
      { needTek: true },
    ),
    o.record === undefined ? Promise.resolve(null) : loadRecord(o.record),
    Promise.all(specs.map((s) => readSecretFile(s.path))),
    o.firmware === undefined ? Promise.resolve(null) : inspectFirmwareFile(o.firmware),
  ]);
  if (record !== null && record.state !== 'launch-secret') {
    throw new SupervisorError(
      'SUP_ERR_VERIFY_STATE',
      `the record was captured in SEV state ${JSON.stringify(record.state)}: QEMU injects a launch secret only in launch-secret (before the first cont)`,
      { details: { state: record.state } },
    );
  }
  const tek = keys.tek;
  if (tek === null) throw new SupervisorError('SUP_ERR_INTERNAL', 'loadTransportKeys returned no TEK');
  const secrets = specs.map((s, i) => ({ guid: s.guid, data: datas[i] ?? Buffer.alloc(0) }));
  const { packet, notes } = sealLaunchSecret({
    tik: keys.tik,
    tek,
    measurement: record?.measurement ?? o.measurement ?? '',
    secrets,
    firmware,
  });

  await Promise.all([
    writeOut(o.headerOut, packet.header.toString('base64'), 'packet header'),
    writeOut(o.payloadOut, packet.payload.toString('base64'), 'secret payload'),
  ]);
  const listed = secrets.map((s) => ({ guid: s.guid, bytes: s.data.length }));
  if (o.json === true) {
    printJson({
      header: o.headerOut,
      payload: o.payloadOut,
      headerBytes: packet.header.length,
      payloadBytes: packet.payload.length,
      secrets: listed,
      measurementFrom: o.record ?? 'command line',
      notes,
    });
    return;
  }
  for (const n of notes) process.stderr.write(`sevsup: note: ${n}\n`);
  process.stdout.write(
    [
      `wrote the packet header (${packet.header.length} bytes) to ${o.headerOut}`,
      `wrote the encrypted secret table (${packet.payload.length} bytes, ${listed.length} secret${listed.length === 1 ? '' : 's'}) to ${o.payloadOut}`,
      `inject it while the guest is paused in launch-secret: sevsup attest <vm> --inject-secret ${o.headerOut} ${o.payloadOut}`,
      '',
    ].join('\n'),
  );
}

async function writeOut(path: string, text: string, what: string): Promise<void> {
  try {
    await writeFileAtomic(path, text, { mode: 0o600, overwrite: true });
  } catch (error: unknown) {
    const reason = errnoOf(error) ?? (error instanceof Error ? error.message : String(error));
    throw new SupervisorError('SUP_ERR_USAGE', `cannot write the ${what} to ${path}: ${reason}`, {
      details: { path, reason },
      cause: error,
    });
  }
}
