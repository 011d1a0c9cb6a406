// The argv the simulated platform gives the real QEMU: the caller's argv with the SEV machine link
// removed, the accelerator swapped, -pidfile dropped and the QMP monitor moved to a private socket.
// Owns: those edits only; every other argument reaches QEMU byte for byte. Pure: no I/O.
// Must not: drop a sev-guest object: left unlinked it is inert (a plain VM, facts §2.3), and
// QEMU still validates its properties with its own exact messages. sev-snp-guest objects are
// dropped (QEMU 7.2 has no such type; the sim judged them as QEMU 10 does).
import { escapeOptionValue } from '../../qemu/escape.js';
import type { QemuArgvModel } from './argv-model.js';
import type { SimAccel } from './options.js';
import { parseObjectOption, parseQemuOpts } from './qemu-opts.js';

export interface RewriteOptions {
  /** Id of the linked sev-guest object whose machine link is removed; null leaves -machine alone. */
  readonly sevObjectId: string | null;
  /** The private socket QEMU's monitor listens on instead of the caller's path. */
  readonly monitorPath: string;
  readonly accel: SimAccel;
}

function rewriteMachine(value: string, o: RewriteOptions): string | null {
  const kept: string[] = [];
  for (const part of parseQemuOpts(value)) {
    if ((part.key === 'confidential-guest-support' || part.key === 'memory-encryption') && part.value === o.sevObjectId) continue;
    if (part.key === 'accel' && o.accel === 'tcg') kept.push('accel=tcg');
    else kept.push(part.raw);
  }
  return kept.length === 0 ? null : kept.join(',');
}

function rewriteChardev(value: string, chardevId: string, path: string): string {
  const parts = parseQemuOpts(value);
  if (!parts.some((p) => p.key === 'id' && p.value === chardevId)) return value;
  return parts.map((p) => (p.key === 'path' ? `path=${escapeOptionValue(path)}` : p.raw)).join(',');
}

function rewriteQmp(value: string, path: string): string {
  const parts = parseQemuOpts(value.slice('unix:'.length));
  return [`unix:${escapeOptionValue(path)}`, ...parts.slice(1).map((p) => p.raw)].join(',');
}

/**
 * The real QEMU's argv. Under TCG, `-cpu host` (KVM only) becomes `-cpu max` with the same
 * feature flags, the closest TCG model.
 */
export function rewriteQemuArgv(argv: readonly string[], model: QemuArgvModel, o: RewriteOptions): string[] {
  const out: string[] = [];
  let accelWritten = false;
  const monitor = model.monitor;
  for (const option of model.options) {
    const tokens = argv.slice(option.index, option.index + option.span);
    const value = option.value;
    switch (option.name) {
      case 'pidfile':
        continue;
      case 'object': {
        const props = value === null ? null : parseObjectOption(value, 'qom-type');
        if (props?.['qom-type'] === 'sev-snp-guest') continue;
        break;
      }
      case 'machine':
      case 'M': {
        if (value === null) break;
        const machine = rewriteMachine(value, o);
        if (machine !== null) out.push(tokens[0] as string, machine);
        continue;
      }
      case 'accel':
      case 'enable-kvm':
        if (o.accel === 'kvm') break;
        if (!accelWritten) out.push('-accel', 'tcg');
        accelWritten = true;
        continue;
      case 'cpu':
        if (o.accel === 'tcg' && value !== null && (value === 'host' || value.startsWith('host,'))) {
          out.push(tokens[0] as string, `max${value.slice('host'.length)}`);
          continue;
        }
        break;
      case 'chardev':
        if (monitor?.kind === 'chardev' && monitor.chardevId !== null && value !== null) {
          out.push(tokens[0] as string, rewriteChardev(value, monitor.chardevId, o.monitorPath));
          continue;
        }
        break;
      case 'qmp':
        if (
          monitor?.kind === 'qmp' &&
          value !== null &&
          value.startsWith('unix:') &&
          parseQemuOpts(value.slice(5))[0]?.value === monitor.path
        ) {
          out.push(tokens[0] as string, rewriteQmp(value, o.monitorPath));
          continue;
        }
        break;
      default:
        break;
    }
    out.push(...tokens);
  }
  return out;
}
