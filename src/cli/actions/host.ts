// Implementation of `sevsup host`: resolve (or probe) the host's capabilities, print them, and
// optionally write the seed-compatible file.
// Owns: the human and JSON shapes of this command's output. Must not: contain probing or file
// parsing (host/probe.ts, host/caps-file.ts, host/resolve.ts do).
import { join } from 'node:path';
import { HOST_CERTS_STATUS_FILE, readStatusFile, type HostCertStatus } from '../../attestation/host-certs.js';
import { SupervisorError } from '../../errors.js';
import { writeCapsFile } from '../../host/caps-file.js';
import type { FeatureSupport, HostCaps } from '../../host/host-caps.js';
import type { QemuSevProbe } from '../../host/decide-caps.js';
import { probeHostReport } from '../../host/probe.js';
import { DEFAULT_QEMU_BINARY } from '../../host/qemu-probe.js';
import { resolveHostCaps } from '../../host/resolve.js';
import { DEFAULT_RUN_DIR } from '../../paths.js';
import type { HostCliOptions } from '../commands/host.js';
import { printJson } from '../output.js';

export async function runHost(opts: HostCliOptions): Promise<void> {
  const { caps, qemu } = await hostCaps(opts);
  if (opts.write !== undefined) await writeCapsFile(opts.write, caps);
  const snpCerts = await readStatusFile(join(opts.runDir ?? DEFAULT_RUN_DIR, HOST_CERTS_STATUS_FILE));
  if (opts.json === true) {
    printJson(snpCerts === null ? caps : { ...caps, snpCerts });
    return;
  }
  process.stdout.write(formatHostCaps(caps));
  if (snpCerts !== null) process.stdout.write(formatSnpCerts(snpCerts));
  if (qemu !== null) {
    const said = qemu.ok ? `cbitpos ${qemu.cbitpos}, reduced-phys-bits ${qemu.reducedPhysBits}` : qemu.reason;
    process.stdout.write(`${'QEMU says:'.padEnd(19)}${said}\n`);
  }
  if (opts.write !== undefined) process.stdout.write(`wrote ${opts.write}\n`);
}

/** The capabilities, and QEMU's own answer when this run asked it. */
async function hostCaps(opts: HostCliOptions): Promise<{ caps: HostCaps; qemu: QemuSevProbe | null }> {
  if (opts.live === true && (opts.hostCaps !== undefined || !opts.probe)) {
    throw new SupervisorError('SUP_ERR_USAGE', '--live cannot be combined with --host-caps or --no-probe');
  }
  const qemu = opts.qemu ?? DEFAULT_QEMU_BINARY;
  if (opts.hostCaps !== undefined) return { caps: await resolveHostCaps({ file: opts.hostCaps }), qemu: null };
  // A boot-time --write must not copy the very file it is about to replace.
  if (opts.live === true || (opts.write !== undefined && opts.probe)) {
    const report = await probeHostReport({ qemu, forceQemu: opts.live === true });
    return { caps: report.caps, qemu: report.qemu };
  }
  const caps = await resolveHostCaps({ qemu, probe: opts.probe, ...(opts.cache === undefined ? {} : { cacheFile: opts.cache }) });
  return { caps, qemu: null };
}

/** The human form: one line per feature and per value, each with its source. */
export function formatHostCaps(caps: HostCaps): string {
  const feature = (name: string, f: FeatureSupport): string =>
    `${name.padEnd(19)}${f.supported ? 'yes' : 'no '}  ${f.reason}  [${f.source}]`;
  const value = (name: string, v: number | null, source: string): string =>
    `${name.padEnd(19)}${v === null ? 'unknown' : String(v)}  [${source}]`;
  return [
    feature('SEV:', caps.sev),
    feature('SEV-ES:', caps.sevEs),
    feature('SEV-SNP:', caps.sevSnp),
    value('cbitpos:', caps.cbitpos, caps.cbitposSource),
    value('reduced-phys-bits:', caps.reducedPhysBits, caps.reducedPhysBitsSource),
    '',
  ].join('\n');
}

/** The daemon's SNP certificate state, a few lines. */
export function formatSnpCerts(s: HostCertStatus): string {
  const p = s.platform;
  const lines = [
    `${'SNP platform:'.padEnd(19)}${p === null ? `unknown: ${s.platformProblem ?? 'not read yet'}` : `${p.product} chip ${p.chipId.slice(0, 16)}… TCB ${p.reportedTcb} (${p.tcb})`}  [${s.source}]`,
    `${'SNP certificates:'.padEnd(19)}${s.tables}${s.vcek === null ? '' : `, VCEK cached ${s.vcek.cachedAt} (${s.vcek.ageSeconds} s ago)`}${s.offline ? ', offline' : ''}  [${s.cacheDir}]`,
  ];
  if (s.lastError !== null) lines.push(`${'SNP certs error:'.padEnd(19)}${s.lastError.code}: ${s.lastError.message}`);
  return `${lines.join('\n')}\n`;
}
