// Implementation of `sevsup certs fetch|import|show|verify`. Owns: resolving what to fetch from a
// report or a chip id, the import checks (an imported chain must root in a pinned ARK and its leaf
// be signed by its intermediate), and the output shapes. Must not: speak HTTP (kds-fetch.ts) or
// decide a report's validity (verify-snp.ts).
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { certTableFromCache } from '../../attestation/cert-table.js';
import { chainPath, listCache, vcekPath, vlekPath, writeCached } from '../../attestation/kds-cache.js';
import { checkChain, fetchChain, fetchCrl, fetchVcek, type Fetched, type KdsOptions } from '../../attestation/kds-fetch.js';
import { loadPinnedArks, readCertDir } from '../../attestation/snp-cert-files.js';
import { verifySnpChain, type PinnedArk } from '../../attestation/verify-snp.js';
import { errorTable, SupervisorError, type ErrorCode } from '../../errors.js';
import { DEFAULT_SNP_CERT_CACHE } from '../../paths.js';
import { amdExtensions, certTcbRaw, isAmdPss, issuedBy, loadCert, productOfName, splitPem, type LoadedCert } from '../../sev/snp-certs.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { parseSnpReport, productFromCpuid, signingKeyOf, tcbLayoutOf, type SnpProduct, type SnpReport } from '../../sev/snp-report.js';
import { describeIoError } from '../../util/io-error.js';
import type {
  CertsCommonOptions,
  CertsFetchOptions,
  CertsImportOptions,
  CertsTableOptions,
  CertsVerifyOptions,
} from '../commands/certs.js';
import { printJson } from '../output.js';
import { runVerifyWith, verifyExitCode } from './verify-output.js';

async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_CERTS_INPUT', `${what} ${path}: ${describeIoError(error)}`, { cause: error });
  }
}

// Section: fetch ----------------------------------------------------------------------------------

interface ChipQuery {
  readonly product: SnpProduct;
  readonly chip: { chipId: Buffer; reportedTcb: bigint } | null;
  readonly vlek: boolean;
}

/** The product and chip/TCB from --report or --product/--chip-id/--tcb (the same rules for fetch and table). */
async function chipQuery(o: { report?: string; chipId?: Buffer; tcb?: bigint; product?: SnpProduct }): Promise<ChipQuery> {
  if (o.report !== undefined && (o.chipId !== undefined || o.tcb !== undefined)) {
    throw new SupervisorError('SUP_ERR_USAGE', '--report and --chip-id/--tcb exclude each other');
  }
  if ((o.chipId === undefined) !== (o.tcb === undefined)) throw new SupervisorError('SUP_ERR_USAGE', '--chip-id and --tcb go together');
  if (o.report !== undefined) {
    let r: SnpReport;
    try {
      r = parseSnpReport(await readInput(o.report, '--report'));
    } catch (error: unknown) {
      if (error instanceof SupervisorError) throw error;
      throw new SupervisorError('SUP_ERR_CERTS_INPUT', `--report ${o.report}: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    }
    const product = o.product ?? productFromCpuid(r.cpuid);
    if (product === null)
      throw new SupervisorError(
        'SUP_ERR_USAGE',
        `the report (version ${r.version}) does not name its product: give --product Milan|Genoa|Turin`,
      );
    return { product, chip: { chipId: r.chipId, reportedTcb: r.reportedTcb }, vlek: signingKeyOf(r.signingKeyCode) === 'vlek' };
  }
  if (o.product === undefined)
    throw new SupervisorError('SUP_ERR_USAGE', 'give --product (and --chip-id with --tcb for a VCEK), or --report');
  return {
    product: o.product,
    chip: o.chipId !== undefined && o.tcb !== undefined ? { chipId: o.chipId, reportedTcb: o.tcb } : null,
    vlek: false,
  };
}

interface FetchPlan {
  readonly product: SnpProduct;
  readonly vcek: { chipId: Buffer; reportedTcb: bigint } | null;
  readonly vlekChain: boolean;
  readonly notes: string[];
}

async function planFetch(o: CertsFetchOptions): Promise<FetchPlan> {
  const q = await chipQuery(o);
  if (q.vlek) {
    const notes = [
      "the report is signed with a VLEK: AMD's key server serves only its chain; import the VLEK from your cloud provider (sevsup certs import)",
    ];
    return { product: q.product, vcek: null, vlekChain: true, notes };
  }
  return { product: q.product, vcek: q.chip, vlekChain: o.vlek === true, notes: [] };
}

export async function runCertsFetch(o: CertsFetchOptions): Promise<void> {
  const plan = await planFetch(o);
  const opts: KdsOptions = {
    cacheDir: o.cache ?? DEFAULT_SNP_CERT_CACHE,
    ...(o.offline === true ? { offline: true } : {}),
    ...(o.refresh === true ? { refresh: true } : {}),
    ...(o.kdsUrl === undefined ? {} : { baseUrl: o.kdsUrl.replace(/\/+$/, '') }),
    ...(o.maxWait === undefined ? {} : { maxRetryAfterMs: o.maxWait * 1000 }),
    onWait: (w) => process.stderr.write(`sevsup: waiting ${Math.ceil(w.ms / 1000)} s before retrying ${w.url} (${w.reason})\n`),
  };
  const done: { what: string; result: Fetched }[] = [];
  const step = async (what: string, f: () => Promise<Fetched>): Promise<void> => {
    done.push({ what, result: await f() });
  };
  // The chain first: a VCEK fetched afterwards is checked against it before it is cached.
  await step(`${plan.product} VCEK cert_chain (ASK, ARK)`, () => fetchChain(plan.product, 'vcek', opts));
  if (plan.vlekChain) await step(`${plan.product} VLEK cert_chain (ASVK, ARK)`, () => fetchChain(plan.product, 'vlek', opts));
  if (plan.vcek !== null) {
    const k = { product: plan.product, ...plan.vcek };
    await step(`VCEK for chip ${plan.vcek.chipId.toString('hex').slice(0, 16)}… TCB 0x${plan.vcek.reportedTcb.toString(16)}`, () =>
      fetchVcek(k, opts),
    );
  }
  if (o.crl === true) await step(`${plan.product} CRL`, () => fetchCrl(plan.product, opts));
  if (o.json === true) {
    printJson({
      product: plan.product,
      items: done.map((d) => ({ what: d.what, path: d.result.path, source: d.result.source })),
      notes: plan.notes,
    });
    return;
  }
  for (const d of done) process.stdout.write(`${d.result.source === 'cache' ? 'cached ' : 'fetched'} ${d.what}: ${d.result.path}\n`);
  for (const n of plan.notes) process.stderr.write(`sevsup: note: ${n}\n`);
}

// Section: table ------------------------------------------------------------------------------------

/** The GHCB certificate table for a chip and TCB, from the cache only (a miss says what to fetch). */
export async function runCertsTable(o: CertsTableOptions): Promise<void> {
  const q = await chipQuery(o);
  if (q.chip === null) throw new SupervisorError('SUP_ERR_USAGE', 'give --report, or --chip-id with --tcb');
  if (q.vlek)
    throw new SupervisorError('SUP_ERR_USAGE', 'the report is signed with a VLEK: the table is built for VCEK-signing chips only');
  const cacheDir = o.cache ?? DEFAULT_SNP_CERT_CACHE;
  const built = await certTableFromCache(cacheDir, { product: q.product, chipId: q.chip.chipId, reportedTcb: q.chip.reportedTcb });
  if (built === null) {
    throw new SupervisorError(
      'SUP_ERR_CERTS_OFFLINE',
      `the cache ${cacheDir} has no VCEK (or no cert_chain) for this chip and TCB: run \`sevsup certs fetch\` with the same arguments first`,
    );
  }
  const { table, hit } = built;
  try {
    await writeFileAtomic(o.out, table, { overwrite: true, mode: 0o644 });
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_CERTS_CACHE', `cannot write ${o.out}: ${describeIoError(error)}`, { cause: error });
  }
  if (o.json === true) printJson({ out: o.out, bytes: table.length, product: hit.product, from: hit.paths });
  else process.stdout.write(`wrote ${o.out} (${table.length} bytes: ARK, ASK, VCEK)\n`);
}

// Section: import -----------------------------------------------------------------------------------

function pem(c: LoadedCert): string {
  return c.x509.toString();
}

export async function runCertsImport(dir: string, o: CertsImportOptions): Promise<void> {
  const cacheDir = o.cache ?? DEFAULT_SNP_CERT_CACHE;
  const found = await readCertDir(dir, 'import');
  const bad = (why: string): SupervisorError => new SupervisorError('SUP_ERR_KDS_BAD_CERT', `${dir}: ${why}`);
  if (found.intermediate === undefined)
    throw new SupervisorError('SUP_ERR_CERTS_INPUT', `${dir} has no ask.pem, asvk.pem or cert_chain.pem`);
  const kind = found.intermediateRole === 'asvk' || found.leafRole === 'vlek' ? 'vlek' : 'vcek';
  const load = (role: LoadedCert['role'], data: Buffer): LoadedCert => {
    try {
      return loadCert(role, data);
    } catch {
      throw bad(`its ${role} is not a certificate`);
    }
  };
  const intermediate = load(kind === 'vcek' ? 'ask' : 'asvk', found.intermediate);
  let pinned: PinnedArk[];
  try {
    pinned = await loadPinnedArks(o.ark);
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_CERTS_INPUT', error instanceof Error ? error.message : String(error), { cause: error });
  }
  const pins = pinned.map((p) => ({ pin: p, cert: loadCert('ark', p.der) }));
  const root =
    found.ark === undefined
      ? pins.find((p) => issuedBy(intermediate, p.cert))
      : pins.find((p) => p.cert.x509.raw.equals(load('ark', found.ark ?? Buffer.alloc(0)).x509.raw));
  if (root === undefined)
    throw bad(
      `its ARK is not ${o.ark === undefined ? "one of AMD's" : `the one in ${o.ark}`}, or does not sign its ${intermediate.role.toUpperCase()} (give --ark for a root of your own)`,
    );
  const chainText = pem(intermediate) + pem(root.cert);
  checkChain(chainText, dir, kind);
  const leaf = found.leaf === undefined ? null : load(kind, found.leaf);
  let ext = null;
  if (leaf !== null) {
    if (!issuedBy(leaf, intermediate) || !isAmdPss(leaf.parts.signatureAlgorithm))
      throw bad(`its ${kind.toUpperCase()} is not signed by its ${intermediate.role.toUpperCase()}`);
    try {
      ext = amdExtensions(leaf.parts);
    } catch (error: unknown) {
      throw bad(`its ${kind.toUpperCase()}'s AMD extensions are malformed (${error instanceof Error ? error.message : String(error)})`);
    }
  }
  const product =
    root.pin.product ??
    productOfName(ext?.productName ?? null) ??
    productOfName(/CN=(?:.* )?ARK-(\w+)/.exec(root.cert.x509.subject)?.[1] ?? null);
  if (product === null) throw bad('its product line (Milan, Genoa, Turin) cannot be told from the ARK or the leaf');
  const written: string[] = [];
  const path = chainPath(cacheDir, product, kind);
  await writeCached(path, chainText);
  written.push(path);
  if (leaf !== null && ext !== null) {
    const tcb = certTcbRaw(ext, tcbLayoutOf(product));
    if (tcb === null) throw bad(`its ${kind.toUpperCase()} lacks a TCB SPL extension`);
    if (kind === 'vcek') {
      if (ext.hwId === null) throw bad('its VCEK has no hwID');
      const p = vcekPath(cacheDir, { product, chipId: ext.hwId, reportedTcb: tcb });
      await writeCached(p, leaf.x509.raw);
      written.push(p);
    } else {
      const p = vlekPath(cacheDir, product, tcb);
      await writeCached(p, pem(leaf));
      written.push(p);
    }
  }
  if (o.json === true) printJson({ product, kind, imported: written });
  else for (const w of written) process.stdout.write(`imported ${w}\n`);
}

// Section: show -------------------------------------------------------------------------------------

function describeCert(x: X509Certificate): Record<string, unknown> {
  const parts = loadCert('vcek', Buffer.from(x.raw)).parts;
  let amd: Record<string, unknown> | string;
  try {
    const e = amdExtensions(parts);
    amd = Object.fromEntries(Object.entries({ ...e, hwId: e.hwId?.toString('hex') ?? null }).filter(([, v]) => v !== null));
  } catch (error: unknown) {
    amd = `malformed: ${error instanceof Error ? error.message : String(error)}`;
  }
  const key = x.publicKey;
  const d = key.asymmetricKeyDetails ?? {};
  return {
    subject: x.subject.split('\n').join(', '),
    issuer: x.issuer.split('\n').join(', '),
    serial: x.serialNumber,
    validFrom: x.validFrom,
    validTo: x.validTo,
    key: key.asymmetricKeyType === 'rsa' ? `RSA-${d.modulusLength ?? '?'}` : `${key.asymmetricKeyType ?? '?'} ${d.namedCurve ?? ''}`.trim(),
    signature: isAmdPss(parts.signatureAlgorithm) ? 'RSASSA-PSS SHA-384 salt 48 (AMD)' : "not AMD's RSASSA-PSS SHA-384 salt 48",
    ca: x.ca,
    selfSigned: x.checkIssued(x) && x.verify(x.publicKey),
    sha256: x.fingerprint256,
    amdExtensions: amd,
  };
}

export async function runCertsShow(files: string[], o: CertsCommonOptions): Promise<void> {
  if (files.length === 0) {
    const dir = o.cache ?? DEFAULT_SNP_CERT_CACHE;
    const list = await listCache(dir);
    if (o.json === true) printJson({ cache: dir, files: list });
    else process.stdout.write(list.length === 0 ? `${dir}: empty\n` : `${list.map((f) => `${dir}/${f}`).join('\n')}\n`);
    return;
  }
  const shown: Record<string, unknown>[] = [];
  for (const file of files) {
    const data = await readInput(file, 'certificate');
    const text = data.toString('latin1');
    const blobs = text.includes('-----BEGIN CERTIFICATE-----') ? splitPem(text).map((p) => Buffer.from(p)) : [data];
    for (const blob of blobs) {
      try {
        shown.push({ file, ...describeCert(new X509Certificate(blob)) });
      } catch (error: unknown) {
        throw new SupervisorError(
          'SUP_ERR_CERTS_INPUT',
          `${file}: not a certificate (${error instanceof Error ? error.message : String(error)})`,
          { cause: error },
        );
      }
    }
  }
  if (o.json === true) {
    printJson(shown);
    return;
  }
  for (const s of shown) {
    for (const [k, v] of Object.entries(s))
      process.stdout.write(`${k}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}\n`);
    process.stdout.write('\n');
  }
}

// Section: verify -----------------------------------------------------------------------------------

/** A chain on its own, with verify's exit codes (0 ok, 1 not trustworthy, 4 missing/unreadable). */
export async function runCertsVerify(dir: string, o: CertsVerifyOptions): Promise<void> {
  const exitOf = (code: ErrorCode): number | null =>
    code === 'SUP_ERR_CERTS_INPUT' ? errorTable().SUP_ERR_VERIFY_CONFIG.exit : verifyExitCode(code);
  await runVerifyWith(
    o,
    async () => {
      const [found, pinned] = await Promise.all([readCertDir(dir, 'verify'), loadPinnedArks(o.ark)]);
      const kind = found.leafRole === 'vlek' || found.intermediateRole === 'asvk' ? 'vlek' : 'vcek';
      const out = verifySnpChain({ certs: found, pinned, kind });
      const lines = out.checks.map((c) => `${c.ok ? 'OK' : 'ERROR'}: ${c.message}`);
      return {
        exitCode: out.valid ? 0 : 1,
        lines: out.valid ? lines : [],
        problems: out.valid ? [] : lines,
        json: { valid: out.valid, exitCode: out.valid ? 0 : 1, kind, files: found.files, checks: out.checks },
      };
    },
    exitOf,
  );
}
