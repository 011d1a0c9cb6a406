// The SEV-SNP half of the `amd_sev`/`amd-sev` line: parsed properties → SnpSpec, and back to
// properties for the canonical config text. Owns: SNP's defaults (Proxmox's: allow-smt 1,
// no-debug 0), the byte values (host data, workarounds) in canonical base64, `abi=MAJOR.MINOR`, and
// the refusals of properties that belong to the other type. Must not: read the files it names
// (id-block, id-auth, host-data-file: preflight reads them) or know policy bits (sev/snp-policy.ts).
import type { SupervisorError } from '../errors.js';
import type { PropertyValues } from './propstring.js';
import type { InlineOrFile, SnpSpec } from './vm-spec.js';
import { LEGACY_ONLY_PROPERTIES, type SEV_SCHEMA, SNP_ONLY_PROPERTIES } from './vm-keys.js';

export type SevProperties = PropertyValues<typeof SEV_SCHEMA>;

/** Makes the line's error (`file:line: key: problem`); vm-values.ts supplies it. */
export type LineError = (code: 'SUP_ERR_CONFIG_CONFLICT' | 'SUP_ERR_CONFIG_BAD_VALUE', problem: string) => SupervisorError;

/**
 * Bytes from hex or base64 text whose length the schema fixed: 64 or 32 characters are hex digits
 * (base64 of 32 or 16 bytes is 44 or 24 characters), anything else is base64.
 */
export function bytesFromText(text: string): Buffer {
  return text.length === 64 || text.length === 32 ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
}

/**
 * Refuse SNP-only properties on a `std`/`es` line.
 * @throws SUP_ERR_CONFIG_CONFLICT naming the property.
 */
export function refuseSnpOnly(p: SevProperties, type: string, fail: LineError): void {
  const given = SNP_ONLY_PROPERTIES.find((name) => Object.hasOwn(p, name));
  if (given !== undefined) {
    throw fail(
      'SUP_ERR_CONFIG_CONFLICT',
      `property '${given}' applies only to type=snp (AMD SEV-SNP), not type=${type}; remove it or use type=snp`,
    );
  }
}

/**
 * The SNP spec from the line's properties (`type` already known to be `snp`).
 * @throws SUP_ERR_CONFIG_CONFLICT (a property of SEV/SEV-ES, host-data and host-data-file together,
 *   id-block without id-auth or the reverse, author-key without an ID block),
 *   SUP_ERR_CONFIG_BAD_VALUE (abi outside 0..255 or bytes that are not what they claim).
 */
export function snpSpecFromProperties(p: SevProperties, key: SnpSpec['key'], resolve: (value: string) => string, fail: LineError): SnpSpec {
  const conflict = (problem: string): never => {
    throw fail('SUP_ERR_CONFIG_CONFLICT', problem);
  };
  for (const [name, why] of Object.entries(LEGACY_ONLY_PROPERTIES)) {
    if (Object.hasOwn(p, name))
      conflict(`property '${name === 'noks' ? 'no-key-sharing' : name}' is refused with type=snp: ${why}; remove it`);
  }
  if (p['host-data'] !== undefined && p['host-data-file'] !== undefined) {
    conflict('give host-data or host-data-file, not both');
  }
  if ((p['id-block'] === undefined) !== (p['id-auth'] === undefined)) {
    conflict('id-block and id-auth go together (QEMU needs both; `sevsup id-block` writes both files)');
  }
  if (p['author-key'] === true && p['id-block'] === undefined) {
    conflict('author-key=1 needs id-block and id-auth: the author key is part of the ID auth');
  }
  let abi: SnpSpec['abi'];
  if (p.abi !== undefined) {
    const [major, minor] = p.abi.split('.').map(Number);
    if (major === undefined || minor === undefined || major > 255 || minor > 255) {
      throw fail('SUP_ERR_CONFIG_BAD_VALUE', `property 'abi' has invalid value '${p.abi}'; allowed: MAJOR.MINOR, each 0 to 255`);
    }
    abi = { major, minor };
  }
  let hostData: InlineOrFile | undefined;
  if (p['host-data'] !== undefined) hostData = { kind: 'value', base64: bytesFromText(p['host-data']).toString('base64') };
  if (p['host-data-file'] !== undefined) hostData = { kind: 'file', path: resolve(p['host-data-file']) };
  return {
    type: 'snp',
    key,
    kernelHashes: p['kernel-hashes'] ?? false,
    ...(p.cbitpos === undefined ? {} : { cbitpos: p.cbitpos }),
    ...(p['reduced-phys-bits'] === undefined ? {} : { reducedPhysBits: p['reduced-phys-bits'] }),
    nodbg: p.nodbg ?? false,
    allowSmt: p['allow-smt'] ?? true,
    singleSocket: p['single-socket'] ?? false,
    cxlAllow: p['cxl-allow'] ?? false,
    aes256Xts: p['aes-256-xts'] ?? false,
    raplDis: p['rapl-dis'] ?? false,
    ciphertextHiding: p['ciphertext-hiding'] ?? false,
    pageSwapDisable: p['page-swap-disable'] ?? false,
    ...(abi === undefined ? {} : { abi }),
    ...(hostData === undefined ? {} : { hostData }),
    ...(p['id-block'] === undefined ? {} : { idBlock: resolve(p['id-block']) }),
    ...(p['id-auth'] === undefined ? {} : { idAuth: resolve(p['id-auth']) }),
    authorKey: p['author-key'] ?? false,
    vcek: p.vcek ?? true,
    ...(p['guest-visible-workarounds'] === undefined
      ? {}
      : { guestVisibleWorkarounds: bytesFromText(p['guest-visible-workarounds']).toString('base64') }),
  };
}

/** Properties for the canonical text: defaults left out, booleans that differ from them written. */
export function snpSpecToProperties(s: SnpSpec): SevProperties {
  return {
    type: 'snp',
    ...(s.nodbg ? { nodbg: true } : {}),
    ...(s.kernelHashes ? { 'kernel-hashes': true } : {}),
    ...(s.cbitpos === undefined ? {} : { cbitpos: s.cbitpos }),
    ...(s.reducedPhysBits === undefined ? {} : { 'reduced-phys-bits': s.reducedPhysBits }),
    ...(s.allowSmt ? {} : { 'allow-smt': false }),
    ...(s.singleSocket ? { 'single-socket': true } : {}),
    ...(s.cxlAllow ? { 'cxl-allow': true } : {}),
    ...(s.aes256Xts ? { 'aes-256-xts': true } : {}),
    ...(s.raplDis ? { 'rapl-dis': true } : {}),
    ...(s.ciphertextHiding ? { 'ciphertext-hiding': true } : {}),
    ...(s.pageSwapDisable ? { 'page-swap-disable': true } : {}),
    ...(s.abi === undefined ? {} : { abi: `${s.abi.major}.${s.abi.minor}` }),
    ...(s.hostData?.kind === 'value' ? { 'host-data': s.hostData.base64 } : {}),
    ...(s.hostData?.kind === 'file' ? { 'host-data-file': s.hostData.path } : {}),
    ...(s.idBlock === undefined ? {} : { 'id-block': s.idBlock }),
    ...(s.idAuth === undefined ? {} : { 'id-auth': s.idAuth }),
    ...(s.authorKey ? { 'author-key': true } : {}),
    ...(s.vcek ? {} : { vcek: false }),
    ...(s.guestVisibleWorkarounds === undefined ? {} : { 'guest-visible-workarounds': s.guestVisibleWorkarounds }),
  };
}
