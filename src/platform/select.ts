// Selecting the platform guests run on, in one place: real QEMU on the host (hardware), or the
// simulated SEV platform (`sevsup-sim-qemu` wrapping QEMU), with the host capabilities guests are
// built for. `sevsup run` and the daemon both call it; nothing else names the simulator's binary.
// Owns: the binary, its leading arguments and the caps per platform. Must not: use the simulator
// unless asked for it by name (`sim`), or fail because the host lacks SEV (that is a caps answer).
import { fileURLToPath } from 'node:url';
import type { HostCaps } from '../host/host-caps.js';
import { SIMULATED_HOST_CAPS } from '../host/simulated.js';
import { hardwareTcbSource, type PlatformTcbSource } from '../host/snp-platform.js';
import type { Logger } from '../log.js';
import type { RecordPlatform } from '../vm/record.js';
import { simArgs, type SimOptions } from './sim/options.js';
import { simulatedSnpSource } from './sim/snp-identity.js';

export { SIM_FAULTS, type SimFault, type SimOptions } from './sim/options.js';

/** The simulator executable shipped next to bin/sevsup. */
const SIM_BINARY = fileURLToPath(new URL('../../bin/sevsup-sim-qemu', import.meta.url));
/** QEMU from PATH. */
export const DEFAULT_QEMU = 'qemu-system-x86_64';

export interface PlatformRequest {
  readonly platform: 'hardware' | 'sim';
  /** QEMU (hardware), or the QEMU the simulator runs underneath. @default qemu-system-x86_64 */
  readonly qemu?: string;
  /** An explicit host-capabilities file. Hardware default: the usual lookup; sim: its simulated caps. */
  readonly hostCaps?: string;
  /** The simulator's options (its `qemu` is taken from `qemu`). */
  readonly sim?: Omit<SimOptions, 'qemu'>;
  readonly logger: Logger;
}

export interface Platform {
  /** What records, events and logs call it. */
  readonly platform: RecordPlatform;
  /** QEMU, or the simulator executable. */
  readonly binary: string;
  /** Arguments before QEMU's argv (the simulator's `--sim-*` options). */
  readonly binaryArgs: readonly string[];
  readonly caps: HostCaps;
  /** Where the host's SEV-SNP identity (chip, REPORTED_TCB) comes from when no facts file is given. */
  readonly snpIdentity: PlatformTcbSource;
}

export async function selectPlatform(r: PlatformRequest): Promise<Platform> {
  // Loaded only when needed: probing pulls in QEMU-probe code the simulated platform never uses.
  const { resolveHostCaps } = await import('../host/resolve.js');
  if (r.platform === 'sim') {
    return {
      platform: 'simulated',
      binary: SIM_BINARY,
      binaryArgs: simArgs({ ...r.sim, ...(r.qemu === undefined ? {} : { qemu: r.qemu }) }),
      caps: r.hostCaps === undefined ? SIMULATED_HOST_CAPS : await resolveHostCaps({ file: r.hostCaps, logger: r.logger }),
      snpIdentity: simulatedSnpSource(r.sim?.stateDir),
    };
  }
  const binary = r.qemu ?? DEFAULT_QEMU;
  // A host without SEV is an answer (guests needing it fail at start with the seed's words), not a crash.
  const caps = await resolveHostCaps({ ...(r.hostCaps === undefined ? {} : { file: r.hostCaps }), qemu: binary, logger: r.logger });
  return { platform: 'hardware', binary, binaryArgs: [], caps, snpIdentity: hardwareTcbSource() };
}
