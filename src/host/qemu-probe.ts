// Asking QEMU itself: query-sev-capabilities on a throwaway, paused `-machine none -accel kvm`
// QEMU (libvirt's probing, trimmed to the one command that answers "SEV in KVM?").
// Owns: that QEMU's whole life, its temp dir, and turning every outcome into an answer.
// Must not: throw, or leave the QEMU or its socket behind on any path.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasCode, isSupervisorError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { launchQemu, type QemuProcess } from '../process/launcher.js';
import { errorLines } from '../process/stderr-tail.js';
import { QmpClient } from '../qmp/client.js';
import { querySevCapabilities } from '../qmp/commands.js';
import type { QemuSevProbe } from './decide-caps.js';

/** QEMU installed the usual way. */
export const DEFAULT_QEMU_BINARY = 'qemu-system-x86_64';
/** Start + one command takes ~100 ms; a loaded 2-core host gets plenty of slack. */
export const QEMU_PROBE_TIMEOUT_MS = 15_000;
/** A probe QEMU has no guest to shut down: quit, then signals, quickly. */
const PROBE_QUIT_TIMEOUT_MS = 2_000;
const PROBE_TERM_TIMEOUT_MS = 2_000;
const READY_BACKSTOP_MS = 1_000;

export interface QemuProbeOptions {
  /** @default DEFAULT_QEMU_BINARY */
  readonly qemu?: string;
  /** @default QEMU_PROBE_TIMEOUT_MS */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
}

/** The probe's command line (without the binary): no guest, no devices, paused, KVM. */
export function qemuProbeArgv(socketPath: string): string[] {
  return [
    '-machine',
    'none',
    '-accel',
    'kvm',
    '-nodefaults',
    '-display',
    'none',
    '-S',
    '-chardev',
    `socket,id=m,path=${socketPath},server=on,wait=off`,
    '-mon',
    'chardev=m,mode=control',
  ];
}

/**
 * Start a throwaway QEMU and ask query-sev-capabilities. An error reply is "not supported,
 * because <QEMU's desc>"; a QEMU that cannot start is "not supported, because <its message>".
 * Never throws; the QEMU is gone when this resolves.
 */
export async function probeQemuSevCapabilities(options: QemuProbeOptions = {}): Promise<QemuSevProbe> {
  const binary = options.qemu ?? DEFAULT_QEMU_BINARY;
  const timeoutMs = options.timeoutMs ?? QEMU_PROBE_TIMEOUT_MS;
  const logger = (options.logger ?? silentLogger()).child({ component: 'host-probe' });
  const deadline = Date.now() + timeoutMs;
  let dir: string | undefined;
  let proc: QemuProcess | undefined;
  let client: QmpClient | undefined;
  try {
    dir = await mkdtemp(join(tmpdir(), 'sevsup-probe-'));
    const path = join(dir, 'qmp.sock');
    proc = await launchQemu({
      binary,
      argv: qemuProbeArgv(path),
      logger,
      // Only a backstop: QMP's own connect timeout below should speak first, with the better message.
      readyTimeoutMs: timeoutMs + READY_BACKSTOP_MS,
      ready: async (started) => {
        client = await QmpClient.connect({
          path,
          connectTimeoutMs: timeoutMs,
          isAlive: () => started.isAlive(),
          exited: started.exited,
          logger,
        });
      },
    });
    if (client === undefined) return { ok: false, reason: 'QEMU started but its QMP monitor did not answer' };
    const caps = await querySevCapabilities(client, { timeoutMs: Math.max(1, deadline - Date.now()) });
    return { ok: true, cbitpos: caps.cbitpos, reducedPhysBits: caps.reducedPhysBits };
  } catch (error: unknown) {
    return { ok: false, reason: reasonOf(error) };
  } finally {
    const qmp = client;
    if (proc !== undefined) {
      const stopping = proc;
      await stopping
        .stop({
          ...(qmp === undefined ? {} : { qmp }),
          powerdownTimeoutMs: 0,
          quitTimeoutMs: PROBE_QUIT_TIMEOUT_MS,
          termTimeoutMs: PROBE_TERM_TIMEOUT_MS,
        })
        .catch((error: unknown) => logger.error({ err: error }, 'probe QEMU did not stop'));
    }
    await qmp?.close().catch(() => undefined);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function reasonOf(error: unknown): string {
  if (hasCode(error, 'SUP_ERR_QMP_EXECUTE')) {
    const desc = error.details['desc'];
    if (typeof desc === 'string' && desc !== '') return desc;
  }
  if (hasCode(error, 'SUP_ERR_LAUNCH_FAILED', 'SUP_ERR_LAUNCH_TIMEOUT')) {
    const tail = error.details['stderrTail'];
    const lines = typeof tail === 'string' ? errorLines(tail) : [];
    if (lines.length > 0) return lines.join('; ');
  }
  if (isSupervisorError(error)) return `the QEMU probe failed: ${error.message}`;
  return `the QEMU probe failed: ${error instanceof Error ? error.message : String(error)}`;
}
