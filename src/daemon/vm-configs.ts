// Reading every VM config in the daemon's vm-dir (`*.conf`), at start and on each SIGHUP.
// Owns: the directory scan, and turning each bad file into a reported problem (its coded error),
// never a failure of the whole scan. Must not: start, stop or forget guests (guests.ts decides).
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConfigProblem } from '../api/types.js';
import { loadVmConfig, VM_CONFIG_SUFFIX } from '../config/vm-config.js';
import type { VmSpec } from '../config/vm-spec.js';
import { SupervisorError, isSupervisorError } from '../errors.js';
import { describeIoError, errnoOf } from '../util/io-error.js';

/** Configs a daemon will read; past this the directory is something else (and a scan stays cheap). */
export const MAX_VM_CONFIGS = 4096;

export interface VmConfigScan {
  /** Valid configs by VM name. */
  readonly specs: ReadonlyMap<string, VmSpec>;
  /** Files that were skipped, each with its coded error. */
  readonly problems: readonly ConfigProblem[];
}

/**
 * Load every `<vm-dir>/*.conf` (sorted: problems are reported in a stable order). A missing
 * vm-dir is an empty one (a fresh host). Never throws for a file's content.
 * @throws SUP_ERR_CONFIG_READ when vm-dir exists but cannot be listed.
 */
export async function scanVmConfigs(vmDir: string): Promise<VmConfigScan> {
  let names: string[];
  try {
    names = await readdir(vmDir);
  } catch (error: unknown) {
    if (errnoOf(error) === 'ENOENT') return { specs: new Map(), problems: [] };
    throw new SupervisorError('SUP_ERR_CONFIG_READ', `cannot list the VM config directory ${vmDir}: ${describeIoError(error)}`, {
      details: { file: vmDir },
      cause: error,
    });
  }
  const files = names.filter((n) => n.endsWith(VM_CONFIG_SUFFIX) && !n.startsWith('.')).sort();
  const specs = new Map<string, VmSpec>();
  const problems: ConfigProblem[] = [];
  for (const [index, name] of files.entries()) {
    const file = join(vmDir, name);
    if (index >= MAX_VM_CONFIGS) {
      problems.push({ file, code: 'SUP_ERR_CONFIG_READ', message: `${file}: skipped: more than ${MAX_VM_CONFIGS} VM configs in ${vmDir}` });
      continue;
    }
    try {
      // A config's name is its file name (vm-config.ts refuses a mismatch), so names are unique.
      const spec = await loadVmConfig(file);
      specs.set(spec.name, spec);
    } catch (error: unknown) {
      problems.push({
        file,
        code: isSupervisorError(error) ? error.code : 'SUP_ERR_INTERNAL',
        message: error instanceof Error ? error.message : String(error),
      });
    }
  }
  return { specs, problems };
}
