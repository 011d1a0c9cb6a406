// A policy that allows debugging: a warning at every start, a refusal with refuse-debug-policy: 1,
// for SEV, SEV-ES and SEV-SNP alike.
import { describe, expect, it } from 'vitest';
import { parseVmConfig } from '../../../src/config/vm-config.js';
import { isSupervisorError } from '../../../src/errors.js';
import { checkDebugPolicy } from '../../../src/vm/debug-policy.js';

const spec = (line: string) => parseVmConfig(`${line}\n`, '/vms/d.conf');

describe('checkDebugPolicy', () => {
  it.each([
    ['amd_sev: std', '0x8', 'SEV policy bit 0 (NODBG) is clear'],
    ['amd-sev: type=es', '0xc', 'SEV policy bit 0 (NODBG) is clear'],
    ['amd-sev: type=snp', '0xb0000', 'SNP policy bit 19 (DEBUG) is set'],
  ])('%s: warns, or refuses when the daemon says so', (line, policy, how) => {
    const s = spec(line);
    const key = line.split(':')[0];
    expect(checkDebugPolicy(s, false)).toBe(
      `guest policy ${policy} allows debugging (${how}): the host can read and write the guest's memory through the secure processor; add no-debug=1 to the ${key} line`,
    );
    let caught: unknown;
    try {
      checkDebugPolicy(s, true);
    } catch (error) {
      caught = error;
    }
    expect(isSupervisorError(caught) && caught.code).toBe('SUP_ERR_SEV_DEBUG_POLICY');
    expect(isSupervisorError(caught) && caught.message).toBe(
      `/vms/d.conf: ${key}: policy ${policy} allows debugging (${how}), and the daemon config says refuse-debug-policy: 1; add no-debug=1 to the ${key} line`,
    );
  });

  it.each(['amd_sev: std,nodbg=1', 'amd-sev: type=es,no-debug=1', 'amd-sev: type=snp,no-debug=1', 'memory: 512'])(
    '%s: nothing to say',
    (line) => {
      expect(checkDebugPolicy(spec(line), true)).toBeNull();
    },
  );
});
