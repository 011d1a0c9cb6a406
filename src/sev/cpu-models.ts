// QEMU's AMD EPYC CPU models and the CPUID signature (family, model, stepping) each gives a vCPU,
// which SEV-ES measures in every VMSA (RDX at reset). Names and values are those of QEMU's
// target/i386/cpu.c builtin_x86_defs and of sev-snp-measure's vcpu_types.py; QEMU's versioned
// names (-v1, -v2 …) change features and caches, never family/model/stepping.
// Owns: that table, model-name lookup, and decoding a raw CPUID signature. Pure: no I/O.
// Must not: guess a signature for a name it does not know ('host' depends on the machine).
import { SupervisorError } from '../errors.js';
import { cpuSignature } from './vmsa.js';

export interface CpuSignatureParts {
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
}

const sig = (family: number, model: number, stepping: number): CpuSignatureParts => ({ family, model, stepping });
const EPYC = sig(23, 1, 2); // Naples
const ROME = sig(23, 49, 0);
const MILAN = sig(25, 1, 1);
const GENOA = sig(25, 17, 0);
const TURIN = sig(26, 0, 0);

/** Every model name the established calculators accept, in their order. */
export const CPU_MODELS: ReadonlyMap<string, CpuSignatureParts> = new Map([
  ['EPYC', EPYC],
  ['EPYC-v1', EPYC],
  ['EPYC-v2', EPYC],
  ['EPYC-IBPB', EPYC], // alias of EPYC-v2
  ['EPYC-v3', EPYC],
  ['EPYC-v4', EPYC],
  ['EPYC-Rome', ROME],
  ['EPYC-Rome-v1', ROME],
  ['EPYC-Rome-v2', ROME],
  ['EPYC-Rome-v3', ROME],
  ['EPYC-Milan', MILAN],
  ['EPYC-Milan-v1', MILAN],
  ['EPYC-Milan-v2', MILAN],
  ['EPYC-Genoa', GENOA],
  ['EPYC-Genoa-v1', GENOA],
  ['EPYC-Turin', TURIN],
]);

/**
 * The signature of a QEMU `-cpu` value: the model name before any `,feature` list
 * (`EPYC-Milan,+x2apic` → EPYC-Milan). Null for unknown names, `host` and `max`.
 */
export function cpuModelSignature(cpuOption: string): CpuSignatureParts | null {
  const name = cpuOption.split(',', 1)[0] ?? '';
  return CPU_MODELS.get(name) ?? null;
}

/**
 * As cpuModelSignature, for a name the user typed.
 * @throws SUP_ERR_USAGE for an unknown name, listing the known ones (and the right spelling when
 * only the case differs: QEMU's names are case-sensitive).
 */
export function requireCpuModel(name: string): CpuSignatureParts {
  const found = cpuModelSignature(name);
  if (found !== null) return found;
  const near = [...CPU_MODELS.keys()].find((k) => k.toLowerCase() === name.toLowerCase());
  throw new SupervisorError(
    'SUP_ERR_USAGE',
    `unknown vCPU type ${JSON.stringify(name)}${near === undefined ? '' : ` (did you mean ${near}?)`}; ` +
      `known: ${[...CPU_MODELS.keys()].join(', ')}; or give --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping`,
    { details: { vcpuType: name } },
  );
}

/** CPUID 1 EAX bits that are neither family, model nor stepping (processor type, reserved). */
const NON_SIGNATURE_BITS = 0xf000f000;

/**
 * Family, model and stepping of a CPUID 1 EAX value, as AMD's CPUID specification composes them.
 * @throws SUP_ERR_USAGE when the value is not a u32, sets bits outside the signature fields, or is
 * not the canonical encoding of its own fields (then no family/model/stepping reproduces it, and
 * the VMSA would not match a calculator that uses the raw value).
 */
export function decodeCpuSignature(value: number): CpuSignatureParts {
  const bad = (why: string): never => {
    throw new SupervisorError('SUP_ERR_USAGE', `vCPU signature 0x${value.toString(16)} ${why}`, { details: { vcpuSig: value } });
  };
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) bad('is not a 32-bit value');
  if ((value & NON_SIGNATURE_BITS) !== 0) bad('sets bits outside family, model and stepping');
  const baseFamily = (value >>> 8) & 0xf;
  const parts = {
    family: baseFamily === 0xf ? 0xf + ((value >>> 20) & 0xff) : baseFamily,
    model: (((value >>> 16) & 0xf) << 4) | ((value >>> 4) & 0xf),
    stepping: value & 0xf,
  };
  if (cpuSignature(parts.family, parts.model, parts.stepping) !== value) bad('is not a canonical CPUID encoding');
  return parts;
}
