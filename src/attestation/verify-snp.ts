// The guest owner's offline verification of an SEV-SNP attestation report. Pure: no I/O.
//
// Trust model:
//  - The only root of trust is a pinned ARK: AMD's (built in, sev/snp-amd-roots.ts) or the one the
//    owner gives (--ark). An ARK that travels with the evidence is used only if it is byte-equal to
//    a pinned one; the AS(V)K and the V(C|L)EK come from the evidence, the cache or the key server
//    and are believed only because the pinned ARK's signatures chain to them.
//  - The report is the platform's word, signed by the V(C|L)EK: every field in it is believed only
//    after the signature verifies under a certificate of that chain whose AMD extensions (TCB,
//    hwID, product) match the report.
//  - What the report must say comes from the owner, never from the host: the expected measurement
//    (given, or computed from the owner's own launch inputs), host data, the nonce in report data,
//    ID/author key digests, policy limits, minimum TCB, guest SVN and VMPL. With none of them given,
//    only the evidence is checked, and the outcome says so: a genuine report of some guest on some
//    AMD chip proves nothing about *your* guest.
// A valid report proves that an AMD SEV-SNP platform at that TCB launched a guest with that
// measurement and policy, and that the guest asked for this report data; it says nothing about what
// the guest did next. Owns: that decision and every check's verdict and wording.
// Must not: read files, log, or fetch certificates (callers hand them over).
import { X509Certificate } from 'node:crypto';
import { SupervisorError } from '../errors.js';
import { AMD_ARK_PEM } from '../sev/snp-amd-roots.js';
import {
  amdExtensions,
  certTcb,
  issuedBy,
  loadCert,
  productOfName,
  shapeProblems,
  validAt,
  type AmdExtensions,
  type LoadedCert,
} from '../sev/snp-certs.js';
import { DerError } from '../sev/snp-der.js';
import { decodeSnpPolicy, snpPolicyView } from '../sev/snp-policy.js';
import {
  decodeTcb,
  formatTcb,
  parseSnpReport,
  productFromCpuid,
  SNP_PRODUCTS,
  signingKeyOf,
  structureProblems,
  tcbAtLeast,
  tcbLayoutOf,
  tcbUnusedBytes,
  verifySnpReportSignature,
  type SnpProduct,
  type SnpReport,
  type TcbLayout,
  type TcbParts,
} from '../sev/snp-report.js';

/** The certificates that came with (or were found for) the report; PEM or DER each. */
export interface SnpCertificates {
  readonly ark?: Buffer;
  /** ASK (VCEK chain) or ASVK (VLEK chain). */
  readonly intermediate?: Buffer;
  /** VCEK or VLEK. */
  readonly leaf?: Buffer;
}

/** A pinned root: AMD's built-in ones, or the owner's --ark. */
export interface PinnedArk {
  readonly der: Buffer;
  /** The product line it roots, when known (AMD's: always). */
  readonly product: SnpProduct | null;
  readonly source: 'amd' | 'owner';
}

export interface SnpPolicyLimits {
  readonly allowDebug?: boolean;
  readonly allowMigrationAgent?: boolean;
  /** 'allowed': SMT must be allowed by the policy; 'forbidden': must not be. Unset: either. */
  readonly smt?: 'allowed' | 'forbidden';
  readonly minAbi?: { readonly major: number; readonly minor: number };
  /** The exact 64-bit policy. */
  readonly exact?: bigint;
}

/** The owner's expectations. Everything optional; none given means "evidence only". */
export interface SnpExpectations {
  readonly measurement?: Buffer;
  readonly hostData?: Buffer;
  readonly reportData?: Buffer;
  readonly idKeyDigest?: Buffer;
  readonly authorKeyDigest?: Buffer;
  readonly policy?: SnpPolicyLimits;
  readonly minTcb?: Partial<TcbParts>;
  readonly minGuestSvn?: number;
  readonly vmpl?: number;
  /** Force the product line (else: the pinned ARK the chain roots in, then the report's CPUID). */
  readonly product?: SnpProduct;
}

export type SnpCheckName =
  | 'structure'
  | 'ark'
  | 'chain'
  | 'product'
  | 'signature'
  | 'certificate-tcb'
  | 'chip-id'
  | 'policy-debug'
  | 'policy-migration-agent'
  | 'policy-smt'
  | 'policy-abi'
  | 'policy'
  | 'measurement'
  | 'host-data'
  | 'report-data'
  | 'id-key-digest'
  | 'author-key-digest'
  | 'min-tcb'
  | 'guest-svn'
  | 'vmpl';

export interface SnpCheck {
  readonly name: SnpCheckName;
  readonly ok: boolean;
  readonly message: string;
}

export interface SnpVerifyOutcome {
  /** True only when every check passed. */
  readonly valid: boolean;
  /** 0 valid, 1 not trustworthy (as `sevsup verify`). */
  readonly exitCode: 0 | 1;
  readonly checks: readonly SnpCheck[];
  /** No owner expectation was given: only the evidence was checked. */
  readonly evidenceOnly: boolean;
  readonly product: SnpProduct | null;
  readonly tcbLayout: TcbLayout;
  readonly signingKey: 'vcek' | 'vlek' | 'none' | null;
  readonly report: SnpReport;
}

/** AMD's ARKs as pinned roots. */
export function amdPinnedArks(): PinnedArk[] {
  return SNP_PRODUCTS.map((product) => ({ der: new X509Certificate(AMD_ARK_PEM[product]).raw, product, source: 'amd' as const }));
}

/**
 * Parse a report file's bytes.
 * @throws SUP_ERR_VERIFY_CONFIG when it is not 0x4A0 bytes (not an SNP report at all).
 */
export function readSnpReport(bytes: Buffer, name: string): SnpReport {
  try {
    return parseSnpReport(bytes);
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_VERIFY_CONFIG', `${name}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
}

/**
 * Run every check on `report` with `certs` against `pinned` roots and the owner's expectations.
 * @throws SUP_ERR_VERIFY_CONFIG when a certificate given is not a certificate, or the leaf
 * certificate is missing (nothing can be verified without it).
 */
export function verifySnpReport(i: {
  report: SnpReport;
  certs: SnpCertificates;
  pinned: readonly PinnedArk[];
  expect?: SnpExpectations;
  now?: Date;
}): SnpVerifyOutcome {
  const r = i.report;
  const expect = i.expect ?? {};
  const now = i.now ?? new Date();
  const checks: SnpCheck[] = [];
  const add = (name: SnpCheckName, ok: boolean, message: string): void => {
    checks.push({ name, ok, message });
  };

  const problems = structureProblems(r);
  add(
    'structure',
    problems.length === 0,
    problems.length === 0 ? `report version ${r.version} is well-formed` : `the report is malformed: ${problems.join('; ')}`,
  );
  const signingKey = signingKeyOf(r.signingKeyCode);
  const kind = signingKey === 'vlek' ? 'vlek' : 'vcek';

  const chain = verifySnpChain({ certs: i.certs, pinned: i.pinned, kind, now });
  checks.push(...chain.checks);
  const { leaf, exts, root } = chain;

  // Which product (and so which TCB layout): the owner's word, the pinned root's, the report's CPUID.
  const fromCpuid = productFromCpuid(r.cpuid);
  const fromCert = productOfName(exts.productName);
  const product = expect.product ?? root?.pin.product ?? fromCert ?? fromCpuid;
  const productProblems: string[] = [];
  if (product === null) productProblems.push('the product line is unknown (give --product)');
  else {
    if (fromCert !== product)
      productProblems.push(`the ${kind.toUpperCase()} says product ${JSON.stringify(exts.productName)}, not ${product}`);
    if (fromCpuid !== null && fromCpuid !== product)
      productProblems.push(
        `the report's CPUID (family 0x${r.cpuid?.family.toString(16) ?? ''} model 0x${r.cpuid?.model.toString(16) ?? ''}) is ${fromCpuid}, not ${product}`,
      );
    if (root?.pin.product != null && root.pin.product !== product)
      productProblems.push(`the pinned ARK is ${root.pin.product}'s, not ${product}'s`);
  }
  add(
    'product',
    productProblems.length === 0,
    productProblems.length === 0 ? `product ${product ?? ''} (${exts.productName ?? ''})` : productProblems.join('; '),
  );
  const layout = tcbLayoutOf(product ?? 'Milan');

  // The signature.
  const sigOk = signingKey !== 'none' && verifySnpReportSignature(r, leaf.x509.publicKey);
  add(
    'signature',
    sigOk,
    signingKey === 'none'
      ? 'the report says it is not signed (SIGNING_KEY 7)'
      : sigOk
        ? `the ${kind.toUpperCase()} signature over bytes 0–0x29f verifies (ECDSA P-384, SHA-384)`
        : `the ${kind.toUpperCase()} signature does not verify: the report was altered or signed by another key`,
  );

  // The certificate's TCB is the report's REPORTED_TCB.
  const reported = decodeTcb(r.reportedTcb, layout);
  const certT = certTcb(exts, layout);
  const unused = tcbUnusedBytes(r.reportedTcb, layout);
  const tcbOk = certT !== null && sameTcb(certT, reported) && unused.length === 0;
  add(
    'certificate-tcb',
    tcbOk,
    certT === null
      ? `the ${kind.toUpperCase()} lacks a TCB SPL extension the ${layout} layout needs`
      : tcbOk
        ? `the ${kind.toUpperCase()} endorses the reported TCB (${formatTcb(reported)}, ${layout} layout)`
        : `the ${kind.toUpperCase()} endorses TCB ${formatTcb(certT)}, the report says ${formatTcb(reported)}${unused.length > 0 ? ` (bytes ${unused.join(', ')} set outside the ${layout} layout)` : ''}`,
  );

  // CHIP_ID is the VCEK's hwID unless masked (VLEKs have none).
  if (kind === 'vcek') {
    if (r.maskChipKey) add('chip-id', true, 'CHIP_ID is masked by the guest policy (MASK_CHIP_KEY): not compared');
    else {
      const hw = exts.hwId;
      const want = product === 'Turin' ? 8 : 64;
      const ok = hw !== null && hw.length === want && r.chipId.subarray(0, want).equals(hw);
      add(
        'chip-id',
        ok,
        ok
          ? "CHIP_ID equals the VCEK's hwID"
          : `CHIP_ID ${r.chipId.toString('hex').slice(0, 16)}… is not the VCEK's hwID ${hw?.toString('hex').slice(0, 16) ?? '(none)'}… (${want} bytes on ${product ?? 'this product'})`,
      );
    }
  }

  checks.push(...policyChecks(r.policy, expect.policy ?? {}));
  checks.push(...ownerChecks(r, expect, layout));
  const valid = checks.every((c) => c.ok);
  return {
    valid,
    exitCode: valid ? 0 : 1,
    checks,
    evidenceOnly: !hasExpectations(expect),
    product,
    tcbLayout: layout,
    signingKey,
    report: r,
  };
}

export interface SnpChainOutcome {
  /** The 'ark' and 'chain' verdicts. */
  readonly checks: readonly SnpCheck[];
  readonly valid: boolean;
  readonly leaf: LoadedCert;
  readonly intermediate: LoadedCert | null;
  readonly exts: AmdExtensions;
  /** The pinned root the chain reached, if any. */
  readonly root: { readonly pin: PinnedArk; readonly cert: LoadedCert } | null;
}

/**
 * The certificate chain alone (also `sevsup certs verify`): a pinned ARK → AS(V)K → V(C|L)EK, AMD's
 * shapes, validity at `now`; an evidence ARK counts only if byte-equal to a pinned one.
 * @throws SUP_ERR_VERIFY_CONFIG when the leaf is missing or a certificate cannot be read.
 */
export function verifySnpChain(i: {
  certs: SnpCertificates;
  pinned: readonly PinnedArk[];
  kind: 'vcek' | 'vlek';
  now?: Date;
}): SnpChainOutcome {
  const { kind } = i;
  const now = i.now ?? new Date();
  const checks: SnpCheck[] = [];
  const add = (name: SnpCheckName, ok: boolean, message: string): void => {
    checks.push({ name, ok, message });
  };
  const leaf = load(kind, i.certs.leaf, kind === 'vcek' ? 'VCEK' : 'VLEK');
  if (leaf === null) {
    throw new SupervisorError(
      'SUP_ERR_VERIFY_CONFIG',
      `no ${kind.toUpperCase()} certificate: give --certs DIR with ${kind}.pem, or fetch it first (sevsup certs fetch --report)`,
    );
  }
  const intermediate = load(kind === 'vcek' ? 'ask' : 'asvk', i.certs.intermediate, kind === 'vcek' ? 'ASK' : 'ASVK');
  const evidenceArk = load('ark', i.certs.ark, 'ARK');
  const exts = extensionsOf(leaf);

  // Trust anchor: the pinned ARK that issued the intermediate. An evidence ARK must equal one.
  const pinned = i.pinned.map((p) => ({ pin: p, cert: loadCert('ark', p.der) }));
  let root: (typeof pinned)[number] | null = null;
  if (evidenceArk !== null) {
    root = pinned.find((p) => p.cert.x509.raw.equals(evidenceArk.x509.raw)) ?? null;
    add(
      'ark',
      root !== null,
      root !== null
        ? `the evidence's ARK is the pinned ${describePin(root.pin)}`
        : `the evidence's ARK (${evidenceArk.x509.subject.split('\n').pop() ?? ''}) is not a pinned root: it is ignored and nothing chains to a trusted key`,
    );
  } else if (intermediate !== null) {
    root = pinned.find((p) => issuedBy(intermediate, p.cert)) ?? null;
    add(
      'ark',
      root !== null,
      root !== null
        ? `the chain roots in the pinned ${describePin(root.pin)}`
        : "no pinned ARK issued the evidence's intermediate certificate",
    );
  } else {
    add('ark', false, `no ${kind === 'vcek' ? 'ASK' : 'ASVK'} certificate to connect the ${kind.toUpperCase()} to a pinned ARK`);
  }

  // The chain: root self-signed, intermediate ← root, leaf ← intermediate; AMD's shapes; validity.
  const chainProblems: string[] = [];
  if (root !== null && intermediate !== null) {
    if (!issuedBy(root.cert, root.cert)) chainProblems.push('the pinned ARK is not self-signed');
    if (!issuedBy(intermediate, root.cert)) chainProblems.push(`the ${intermediate.role.toUpperCase()} is not signed by the pinned ARK`);
    if (!issuedBy(leaf, intermediate))
      chainProblems.push(`the ${kind.toUpperCase()} is not signed by the ${intermediate.role.toUpperCase()}`);
    for (const c of [root.cert, intermediate, leaf]) {
      chainProblems.push(...shapeProblems(c));
      if (!validAt(c, now))
        chainProblems.push(`the ${c.role.toUpperCase()} is not valid at ${now.toISOString()} (${c.x509.validFrom} to ${c.x509.validTo})`);
    }
    if (kind === 'vcek' && exts.cspId !== null) chainProblems.push('the VCEK carries a CSP id (a VLEK extension)');
    if (kind === 'vlek' && exts.hwId !== null) chainProblems.push('the VLEK carries a hwID (a VCEK extension)');
  } else {
    chainProblems.push('the chain is incomplete or does not reach a pinned ARK');
  }
  add(
    'chain',
    chainProblems.length === 0,
    chainProblems.length === 0
      ? `ARK → ${intermediate?.role.toUpperCase() ?? ''} → ${kind.toUpperCase()} verifies (RSASSA-PSS SHA-384, salt 48; ${kind.toUpperCase()} ECDSA P-384)`
      : `the certificate chain does not verify: ${chainProblems.join('; ')}`,
  );

  return { checks, valid: checks.every((c) => c.ok), leaf, intermediate, exts, root };
}

function load(role: LoadedCert['role'], data: Buffer | undefined, what: string): LoadedCert | null {
  if (data === undefined) return null;
  try {
    return loadCert(role, data);
  } catch (error: unknown) {
    throw new SupervisorError(
      'SUP_ERR_VERIFY_CONFIG',
      `the ${what} certificate cannot be read: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
}

function extensionsOf(c: LoadedCert): AmdExtensions {
  try {
    return amdExtensions(c.parts);
  } catch (error: unknown) {
    if (!(error instanceof DerError)) throw error;
    throw new SupervisorError('SUP_ERR_VERIFY_CONFIG', `the ${c.role.toUpperCase()}'s AMD extensions are malformed: ${error.message}`, {
      cause: error,
    });
  }
}

function describePin(p: PinnedArk): string {
  return p.source === 'amd' ? `AMD ARK-${p.product ?? ''}` : 'ARK given with --ark';
}

function sameTcb(a: TcbParts, b: TcbParts): boolean {
  return (
    a.bootloader === b.bootloader && a.tee === b.tee && a.snp === b.snp && a.microcode === b.microcode && (a.fmc ?? 0) === (b.fmc ?? 0)
  );
}

/** Debug and the migration agent are refused unless allowed, even with no other expectation. */
function policyChecks(policy: bigint, p: SnpPolicyLimits): SnpCheck[] {
  const out: SnpCheck[] = [];
  const view = decodeSnpPolicy(policy);
  const { debug } = view;
  out.push({
    name: 'policy-debug',
    ok: !debug || p.allowDebug === true,
    message: debug
      ? `the policy allows debugging (bit 19): the host can read guest memory${p.allowDebug === true ? ' (allowed by --allow-debug)' : ''}`
      : 'debugging is off',
  });
  const ma = view.migrateMa;
  out.push({
    name: 'policy-migration-agent',
    ok: !ma || p.allowMigrationAgent === true,
    message: ma
      ? `the policy allows a migration agent (bit 18)${p.allowMigrationAgent === true ? ' (allowed by --allow-migration-agent)' : ''}`
      : 'no migration agent',
  });
  if (p.smt !== undefined) {
    const { smt } = view;
    const ok = p.smt === 'allowed' ? smt : !smt;
    out.push({
      name: 'policy-smt',
      ok,
      message: `the policy ${smt ? 'allows' : 'forbids'} SMT; ${p.smt === 'allowed' ? 'allowed' : 'forbidden'} was wanted`,
    });
  }
  if (p.minAbi !== undefined) {
    const { major, minor } = p.minAbi;
    const ok = view.abiMajor > major || (view.abiMajor === major && view.abiMinor >= minor);
    out.push({
      name: 'policy-abi',
      ok,
      message: `the policy's minimum ABI ${view.abiMajor}.${view.abiMinor} ${ok ? 'is at least' : 'is below'} ${major}.${minor}`,
    });
  }
  if (p.exact !== undefined) {
    const ok = policy === p.exact;
    out.push({ name: 'policy', ok, message: `policy ${view.hex} ${ok ? 'is' : 'is not'} the expected 0x${p.exact.toString(16)}` });
  }
  return out;
}

function hasExpectations(e: SnpExpectations): boolean {
  return (
    e.measurement !== undefined ||
    e.hostData !== undefined ||
    e.reportData !== undefined ||
    e.idKeyDigest !== undefined ||
    e.authorKeyDigest !== undefined ||
    e.minTcb !== undefined ||
    e.minGuestSvn !== undefined ||
    e.vmpl !== undefined ||
    (e.policy !== undefined && (e.policy.smt !== undefined || e.policy.minAbi !== undefined || e.policy.exact !== undefined))
  );
}

function ownerChecks(r: SnpReport, e: SnpExpectations, layout: TcbLayout): SnpCheck[] {
  const out: SnpCheck[] = [];
  const bytes = (name: SnpCheckName, what: string, have: Buffer, want: Buffer | undefined): void => {
    if (want === undefined) return;
    const ok = want.length === have.length && want.equals(have);
    out.push({
      name,
      ok,
      message: ok ? `${what} is the expected ${short(want)}` : `${what} ${short(have)} is not the expected ${short(want)}`,
    });
  };
  bytes('measurement', 'the measurement', r.measurement, e.measurement);
  bytes('host-data', 'host data', r.hostData, e.hostData);
  bytes('report-data', 'report data (your nonce)', r.reportData, e.reportData);
  bytes('id-key-digest', 'the ID key digest', r.idKeyDigest, e.idKeyDigest);
  bytes('author-key-digest', 'the author key digest', r.authorKeyDigest, e.authorKeyDigest);
  if (e.minTcb !== undefined) {
    const reported = decodeTcb(r.reportedTcb, layout);
    const low = tcbAtLeast(reported, e.minTcb);
    out.push({
      name: 'min-tcb',
      ok: low.length === 0,
      message:
        low.length === 0
          ? `the reported TCB (${formatTcb(reported)}) meets the minimum`
          : `the reported TCB (${formatTcb(reported)}) is below the minimum in ${low.join(', ')}`,
    });
  }
  if (e.minGuestSvn !== undefined) {
    const ok = r.guestSvn >= e.minGuestSvn;
    out.push({ name: 'guest-svn', ok, message: `guest SVN ${r.guestSvn} ${ok ? 'is at least' : 'is below'} ${e.minGuestSvn}` });
  }
  if (e.vmpl !== undefined) {
    const ok = r.vmpl === e.vmpl;
    out.push({ name: 'vmpl', ok, message: `the report was requested at VMPL ${r.vmpl}${ok ? '' : `, not the expected ${e.vmpl}`}` });
  }
  return out;
}

function short(b: Buffer): string {
  const hex = b.toString('hex');
  return hex.length > 32 ? `${hex.slice(0, 24)}…` : hex;
}

// Section: every field decoded, for --json ----------------------------------------------------------

/** The report as JSON: hex for bytes, 0x-hex for u64s, TCBs decoded in the layout used. */
export function reportToJson(r: SnpReport, layout: TcbLayout): Record<string, unknown> {
  const tcb = (raw: bigint): Record<string, unknown> => ({ raw: `0x${raw.toString(16).padStart(16, '0')}`, ...decodeTcb(raw, layout) });
  const pi = r.platformInfo;
  const bit = (n: number): boolean => (pi & (1n << BigInt(n))) !== 0n;
  return {
    version: r.version,
    guestSvn: r.guestSvn,
    policy: snpPolicyView(r.policy),
    familyId: r.familyId.toString('hex'),
    imageId: r.imageId.toString('hex'),
    vmpl: r.vmpl,
    signatureAlgo: r.signatureAlgo,
    currentTcb: tcb(r.currentTcb),
    platformInfo: {
      raw: `0x${pi.toString(16)}`,
      smtEnabled: bit(0),
      tsmeEnabled: bit(1),
      eccEnabled: bit(2),
      raplDisabled: bit(3),
      ciphertextHiding: bit(4),
      aliasCheckComplete: bit(5),
      tioEnabled: bit(7),
    },
    authorKeyEn: r.authorKeyEn,
    maskChipKey: r.maskChipKey,
    signingKey: signingKeyOf(r.signingKeyCode) ?? `reserved (${r.signingKeyCode})`,
    reportData: r.reportData.toString('hex'),
    measurement: r.measurement.toString('hex'),
    hostData: r.hostData.toString('hex'),
    idKeyDigest: r.idKeyDigest.toString('hex'),
    authorKeyDigest: r.authorKeyDigest.toString('hex'),
    reportId: r.reportId.toString('hex'),
    reportIdMa: r.reportIdMa.toString('hex'),
    reportedTcb: tcb(r.reportedTcb),
    cpuid: r.cpuid,
    chipId: r.chipId.toString('hex'),
    committedTcb: tcb(r.committedTcb),
    currentVersion: `${r.currentVersion.major}.${r.currentVersion.minor}.${r.currentVersion.build}`,
    committedVersion: `${r.committedVersion.major}.${r.committedVersion.minor}.${r.committedVersion.build}`,
    launchTcb: tcb(r.launchTcb),
    launchMitVector: r.launchMitVector === null ? null : `0x${r.launchMitVector.toString(16)}`,
    currentMitVector: r.currentMitVector === null ? null : `0x${r.currentMitVector.toString(16)}`,
    signature: { r: r.signatureR.toString('hex'), s: r.signatureS.toString('hex') },
  };
}
