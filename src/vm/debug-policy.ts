// The debug-policy rule for every SEV type: a policy that lets the host debug the guest (SEV/SEV-ES
// without NODBG, SEV-SNP with DEBUG — Proxmox's default for both) is warned about at every start,
// and refused when the daemon config says `refuse-debug-policy: 1`.
// Owns: that rule and its texts. Pure: no I/O. Must not: log (the caller logs the warning).
import type { VmSpec } from '../config/vm-spec.js';
import { SupervisorError } from '../errors.js';
import { encodePolicy, formatPolicy } from '../sev/policy.js';
import { formatSnpPolicy, snpPolicyAllowsDebug, snpPolicyFromConfig } from '../sev/snp-policy.js';

/**
 * The warning to log for `spec` (null when its policy forbids debugging or it has no SEV).
 * @throws SUP_ERR_SEV_DEBUG_POLICY when the policy allows debugging and `refuse` is set.
 */
export function checkDebugPolicy(spec: VmSpec, refuse: boolean): string | null {
  const sev = spec.sev;
  if (sev === undefined) return null;
  let policy: string;
  let how: string;
  if (sev.type === 'snp') {
    const value = snpPolicyFromConfig(sev);
    if (!snpPolicyAllowsDebug(value)) return null;
    policy = formatSnpPolicy(value);
    how = 'SNP policy bit 19 (DEBUG) is set';
  } else {
    const value = encodePolicy(sev);
    if (sev.nodbg) return null;
    policy = formatPolicy(value);
    how = 'SEV policy bit 0 (NODBG) is clear';
  }
  const fix = `add no-debug=1 to the ${sev.key} line`;
  if (refuse) {
    throw new SupervisorError(
      'SUP_ERR_SEV_DEBUG_POLICY',
      `${spec.source}: ${sev.key}: policy ${policy} allows debugging (${how}), and the daemon config says ` +
        `refuse-debug-policy: 1; ${fix}`,
      { details: { file: spec.source, key: sev.key, policy } },
    );
  }
  return `guest policy ${policy} allows debugging (${how}): the host can read and write the guest's memory through the secure processor; ${fix}`;
}
