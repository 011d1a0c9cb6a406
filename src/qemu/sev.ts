// The SEV half of the command line: the seed's refusal rules and the `sev-guest` object.
// Owns: the order and texts of the seed's checks (bios, SEV support, SEV-ES support) and where
// cbitpos/reduced-phys-bits come from. Pure: no I/O. Must not: probe the host (caps are given).
import type { SnpSpec, VmSpec } from '../config/vm-spec.js';
import type { HostCaps } from '../host/host-caps.js';
import { SupervisorError } from '../errors.js';
import { encodePolicy } from '../sev/policy.js';
import { assertQemuSafe, type JsonOption } from './escape.js';

/** The `-object` id the machine's confidential-guest-support property links to. */
export const SEV_OBJECT_ID = 'sev0';

/** An SNP guest's line with the host's values filled in; qemu/snp.ts builds its object (with preflight's files). */
export interface SnpHostParams {
  readonly type: 'snp';
  readonly sev: SnpSpec;
  readonly cbitpos: number;
  readonly reducedPhysBits: number;
}

export interface SevLaunchParams {
  readonly type: 'std' | 'es';
  readonly policy: number;
  readonly cbitpos: number;
  readonly reducedPhysBits: number;
  readonly kernelHashes: boolean;
}

/**
 * Apply the seed's checks in its order and work out the guest's SEV parameters; null without SEV.
 * For SNP only the host's part (qemu/snp.ts builds the rest: its policy is 64-bit, its byte values
 * come from preflight).
 * cbitpos and reduced-phys-bits come from the config when it overrides them, else from host caps
 * (libvirt qemuProcessUpdateSEVInfo does the same autofill).
 * @throws SUP_ERR_SEV_BIOS_NOT_OVMF, SUP_ERR_SEV_UNSUPPORTED, SUP_ERR_SEV_ES_UNSUPPORTED (seed texts),
 *   SUP_ERR_SEV_SNP_UNSUPPORTED (the seed's style),
 *   SUP_ERR_SEV_HOST_PARAMS when a value is known neither from the config nor from the host.
 */
export function resolveSevParams(spec: VmSpec, caps: HostCaps): SevLaunchParams | SnpHostParams | null {
  const sev = spec.sev;
  if (sev === undefined) return null;
  const details = { file: spec.source, key: sev.key };
  if (spec.bios !== 'ovmf') {
    throw new SupervisorError('SUP_ERR_SEV_BIOS_NOT_OVMF', 'For using SEV you need to change your guest bios to ovmf.', {
      details: { ...details, bios: spec.bios },
    });
  }
  if (!caps.sev.supported) {
    throw new SupervisorError('SUP_ERR_SEV_UNSUPPORTED', 'Your CPU does not support AMD SEV!', {
      details: { ...details, reason: caps.sev.reason, source: caps.sev.source },
    });
  }
  if (sev.type === 'snp' && !caps.sevSnp.supported) {
    throw new SupervisorError('SUP_ERR_SEV_SNP_UNSUPPORTED', 'Your CPU does not support AMD SEV-SNP!', {
      details: { ...details, reason: caps.sevSnp.reason, source: caps.sevSnp.source },
    });
  }
  if (sev.type === 'es' && !caps.sevEs.supported) {
    throw new SupervisorError('SUP_ERR_SEV_ES_UNSUPPORTED', 'Your CPU does not support AMD SEV-ES!', {
      details: { ...details, reason: caps.sevEs.reason, source: caps.sevEs.source },
    });
  }
  const cbitpos = sev.cbitpos ?? caps.cbitpos;
  const reducedPhysBits = sev.reducedPhysBits ?? caps.reducedPhysBits;
  if (cbitpos === null || reducedPhysBits === null) {
    const missing = [
      ...(cbitpos === null ? [{ name: 'cbitpos', source: caps.cbitposSource }] : []),
      ...(reducedPhysBits === null ? [{ name: 'reduced-phys-bits', source: caps.reducedPhysBitsSource }] : []),
    ];
    const names = missing.map((m) => m.name).join(' and ');
    const sources = [...new Set(missing.map((m) => m.source))].join(', ');
    throw new SupervisorError(
      'SUP_ERR_SEV_HOST_PARAMS',
      `${spec.source}: ${sev.key}: ${names} ${missing.length > 1 ? 'are' : 'is'} unknown: the host capabilities ` +
        `(${sources}) do not give ${missing.length > 1 ? 'them' : 'it'}; add ${missing.map((m) => `${m.name}=N`).join(',')} ` +
        `to the ${sev.key} line, or give a host capabilities file that has them (\`sevsup host\` shows the host's values)`,
      { details: { ...details, missing: missing.map((m) => m.name) } },
    );
  }
  if (sev.type === 'snp') return { type: 'snp', sev, cbitpos, reducedPhysBits };
  return { type: sev.type, policy: encodePolicy(sev), cbitpos, reducedPhysBits, kernelHashes: sev.kernelHashes };
}

/**
 * The `sev-guest` object in JSON form, as libvirt emits it for QEMU ≥ 6.0:
 * `{"qom-type":"sev-guest","id":"sev0","cbitpos":47,"reduced-phys-bits":1,"policy":8[,"kernel-hashes":true][,"dh-cert-file":…,"session-file":…]}`.
 * Session file paths are the owner's files; JSON carries them without escaping.
 */
export function sevGuestObject(params: SevLaunchParams, spec: VmSpec): JsonOption {
  const object: Record<string, string | number | boolean> = {
    'qom-type': 'sev-guest',
    id: SEV_OBJECT_ID,
    cbitpos: params.cbitpos,
    'reduced-phys-bits': params.reducedPhysBits,
    policy: params.policy,
  };
  if (params.kernelHashes) object['kernel-hashes'] = true;
  if (spec.launch !== undefined) {
    object['dh-cert-file'] = assertQemuSafe(spec.launch.dhCert, { file: spec.source, key: 'launch dh-cert' });
    object['session-file'] = assertQemuSafe(spec.launch.session, { file: spec.source, key: 'launch session' });
  }
  return object;
}
