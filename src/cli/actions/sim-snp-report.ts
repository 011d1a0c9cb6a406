// Implementation of `sevsup sim snp-report`: asks the simulated platform, through the guest's QMP
// socket, for the report the guest would get, and writes it and the SIMULATED chain to files.
// Owns: the request, checking the answer's shape, atomic writes. Must not: exist for hardware
// (a real QEMU answers CommandNotFound, turned into SUP_ERR_SIM_ONLY), or import platform/sim/.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SupervisorError } from '../../errors.js';
import { QmpRelay } from '../../qmp/relay.js';
import { splitPem } from '../../sev/snp-certs.js';
import { SNP_REPORT_SIZE } from '../../sev/snp-report.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { isRecord } from '../../util/is-record.js';
import type { SimSnpReportCliOptions } from '../commands/sim.js';

/** The sim-only QMP request (platform/sim/snp-guest-report.ts answers it). */
const COMMAND = 'x-sevsup-sim-snp-report';
const CHAIN = ['ark', 'ask', 'vcek'] as const;

export async function runSimSnpReport(vm: string, opts: SimSnpReportCliOptions): Promise<void> {
  if (!/^[0-9a-fA-F]{128}$/.test(opts.reportData)) {
    throw new SupervisorError(
      'SUP_ERR_USAGE',
      `--report-data must be 64 bytes as 128 hex digits, got ${opts.reportData.length} characters`,
    );
  }
  const timeoutMs = Number(opts.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
    throw new SupervisorError('SUP_ERR_USAGE', `--timeout must be a positive integer, got ${opts.timeout}`);
  const socket = opts.socket ?? join(opts.runDir, vm, 'qmp.sock');
  const peer = await QmpRelay.open(socket);
  let timer: NodeJS.Timeout | undefined;
  let reply: Record<string, unknown>;
  try {
    reply = await Promise.race([
      peer.send({ execute: COMMAND, arguments: { 'report-data': opts.reportData.toLowerCase() } }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new SupervisorError('SUP_ERR_QMP_TIMEOUT', `no reply to ${COMMAND} within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    peer.close();
  }
  const error = reply['error'];
  if (isRecord(error)) {
    const desc = String(error['desc']);
    if (error['class'] === 'CommandNotFound') {
      throw new SupervisorError(
        'SUP_ERR_SIM_ONLY',
        `${vm} does not run on the simulated platform: ${COMMAND} exists only there (on SNP hardware the guest asks its PSP, e.g. snpguest report)`,
      );
    }
    if (desc.includes('refused by sevsup')) {
      // The proxy refuses x- commands unless the VM's qmp-allow names them (default deny).
      throw new SupervisorError(
        'SUP_ERR_PROXY_REFUSED',
        `${desc}; on the simulated platform, add "qmp-allow: ${COMMAND}" to the VM's config to let it through the proxy`,
      );
    }
    throw new SupervisorError('SUP_ERR_QMP_EXECUTE', `${COMMAND} failed: ${desc}`);
  }
  const ret = reply['return'];
  const report = isRecord(ret) && typeof ret['data'] === 'string' ? Buffer.from(ret['data'], 'base64') : null;
  const pems = CHAIN.map((name) => (isRecord(ret) && typeof ret[name] === 'string' ? (ret[name] as string) : ''));
  if (report === null || report.length !== SNP_REPORT_SIZE || pems.some((pem) => splitPem(pem).length !== 1)) {
    throw new SupervisorError(
      'SUP_ERR_QMP_PROTOCOL',
      `${COMMAND}: the answer is not a ${SNP_REPORT_SIZE}-byte report with ark, ask and vcek certificates`,
    );
  }
  const write = async (path: string, data: string | Buffer, what: string): Promise<void> => {
    try {
      await writeFileAtomic(path, data, { overwrite: true });
    } catch (e: unknown) {
      throw new SupervisorError('SUP_ERR_USAGE', `cannot write ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  };
  await write(opts.out, report, '--out');
  let certs = '';
  if (opts.certsOut !== undefined) {
    await mkdir(opts.certsOut, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
      throw new SupervisorError('SUP_ERR_USAGE', `cannot make --certs-out ${opts.certsOut}: ${e.code ?? e.message}`);
    });
    for (const [i, name] of CHAIN.entries()) await write(join(opts.certsOut, `${name}.pem`), pems[i] as string, '--certs-out');
    certs = ` and ${CHAIN.map((n) => join(opts.certsOut as string, `${n}.pem`)).join(', ')}`;
  }
  process.stdout.write(`SIMULATED platform: wrote the report to ${opts.out}${certs}\n`);
}
