// The host's SEV-SNP platform identity: which product line, which chip (CHIP_ID) and which
// REPORTED_TCB — what the host's VCEK is keyed by at AMD's key server and in the certificate cache.
// Sources behind one seam (PlatformTcbSource):
//   - an operator's facts file (`snp-platform:` in the daemon config), re-read at every refresh, so a
//     firmware update procedure that rewrites it (e.g. from `snphost show tcb`) is picked up;
//   - the hardware itself: SNP_PLATFORM_STATUS and GET_ID are /dev/sev ioctls (SEV_ISSUE_CMD) that
//     Node cannot issue without a native addon, and sysfs has only the PSP's bootloader_version and
//     tee_version (firmware versions, not the SPLs of REPORTED_TCB; drivers/crypto/ccp, Linux 6.4+),
//     so on hardware without the file the identity is "unknown" with a reason saying what to give;
//   - the simulated platform's chain in the sim's state directory (platform/select.ts hands that
//     source out; platform/sim/snp-identity.ts owns it).
// Owns: the facts file's grammar and the "unknown" answers. Must not: throw from read() (an unknown
// identity is an answer, never a daemon failure), fetch certificates, or decide what to do about a
// change (attestation/host-certs.ts does).
import { readFile, stat } from 'node:fs/promises';
import { indexKeyValueLines, quoteForMessage, readKeyValueLines } from '../config/kv-file.js';
import { SupervisorError } from '../errors.js';
import { SNP_PRODUCTS, type SnpProduct } from '../sev/snp-report.js';
import { describeIoError } from '../util/io-error.js';

export interface SnpPlatformIdentity {
  readonly product: SnpProduct;
  /** CHIP_ID, 64 bytes (KDS keys a Turin chip by its first 8). */
  readonly chipId: Buffer;
  /** REPORTED_TCB: what reports carry and what the VCEK is issued for. */
  readonly reportedTcb: bigint;
}

export type SnpPlatformReading =
  | { readonly known: true; readonly identity: SnpPlatformIdentity; readonly source: string }
  | { readonly known: false; readonly reason: string; readonly source: string };

export interface PlatformTcbSource {
  /** `file:<path>`, `simulated` or `hardware`: for logs, metrics-free status and messages. */
  readonly name: string;
  /** Never throws. */
  read(): Promise<SnpPlatformReading>;
}

/** The facts file's keys. */
export const SNP_PLATFORM_KEYS = ['product', 'chip-id', 'reported-tcb'] as const;
/** A facts file is three lines; anything larger is the wrong file. */
const MAX_FACTS_BYTES = 16 * 1024;

/**
 * Parse a facts file:
 *   product: Milan|Genoa|Turin
 *   chip-id: <128 hex digits>           (CHIP_ID as `snphost show identifier` prints it)
 *   reported-tcb: <u64: 0x… or decimal> (REPORTED_TCB as SNP_PLATFORM_STATUS gives it)
 * @throws SUP_ERR_SNP_PLATFORM naming file, line and key.
 */
export function parseSnpPlatformFacts(text: string, file: string): SnpPlatformIdentity {
  let byKey: ReturnType<typeof indexKeyValueLines>;
  try {
    byKey = indexKeyValueLines(readKeyValueLines(text, file), file);
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_SNP_PLATFORM', error instanceof Error ? error.message : String(error), { cause: error });
  }
  for (const entry of byKey.values()) {
    if (!(SNP_PLATFORM_KEYS as readonly string[]).includes(entry.key)) {
      throw bad(file, entry.line, entry.key, `unknown key (the keys are ${SNP_PLATFORM_KEYS.join(', ')})`);
    }
  }
  const need = (key: (typeof SNP_PLATFORM_KEYS)[number]): { value: string; line: number } => {
    const entry = byKey.get(key);
    if (entry === undefined) {
      throw new SupervisorError('SUP_ERR_SNP_PLATFORM', `${file}: no '${key}:' line (give ${SNP_PLATFORM_KEYS.join(', ')})`, {
        details: { file, key },
      });
    }
    return entry;
  };
  const p = need('product');
  const product = SNP_PRODUCTS.find((name) => name.toLowerCase() === p.value.toLowerCase());
  if (product === undefined) throw bad(file, p.line, 'product', `${quoteForMessage(p.value)} is not one of ${SNP_PRODUCTS.join(', ')}`);
  const c = need('chip-id');
  const hex = c.value.replace(/^0x/i, '');
  if (!/^[0-9a-fA-F]{128}$/.test(hex)) throw bad(file, c.line, 'chip-id', 'must be the 64-byte CHIP_ID as 128 hex digits');
  const t = need('reported-tcb');
  let reportedTcb: bigint;
  try {
    if (!/^(?:0x[0-9a-fA-F]{1,16}|\d{1,20})$/.test(t.value)) throw new RangeError('syntax');
    reportedTcb = BigInt(t.value);
    if (reportedTcb >= 1n << 64n) throw new RangeError('too big');
  } catch {
    throw bad(file, t.line, 'reported-tcb', `${quoteForMessage(t.value)} is not a 64-bit value (0x… or decimal)`);
  }
  return { product, chipId: Buffer.from(hex, 'hex'), reportedTcb };
}

function bad(file: string, line: number, key: string, why: string): SupervisorError {
  return new SupervisorError('SUP_ERR_SNP_PLATFORM', `${file}:${line}: ${key}: ${why}`, { details: { file, line, key } });
}

/** The operator's facts file, read afresh at every call. */
export function fileTcbSource(path: string): PlatformTcbSource {
  const name = `file:${path}`;
  return {
    name,
    async read() {
      try {
        const info = await stat(path);
        if (info.size > MAX_FACTS_BYTES) return { known: false, source: name, reason: `${path} is ${info.size} bytes: not a facts file` };
        const identity = parseSnpPlatformFacts(await readFile(path, 'utf8'), path);
        return { known: true, identity, source: name };
      } catch (error: unknown) {
        const reason = error instanceof SupervisorError ? error.message : `cannot read ${path}: ${describeIoError(error)}`;
        return { known: false, source: name, reason };
      }
    },
  };
}

/** What can honestly be read on hardware without the facts file: nothing but a reason. */
export function hardwareTcbSource(): PlatformTcbSource {
  return {
    name: 'hardware',
    read: () =>
      Promise.resolve({
        known: false,
        source: 'hardware',
        reason:
          "sevsup cannot read the platform's CHIP_ID and REPORTED_TCB itself (they come from /dev/sev ioctls, GET_ID and SNP_PLATFORM_STATUS, " +
          'and sysfs does not expose them): give `snp-platform: FILE` in the daemon config, with product, chip-id and reported-tcb lines ' +
          '(docs/snp-attestation.md), rewritten whenever the firmware or its configured TCB changes',
      }),
  };
}

/** Same chip, product and TCB. */
export function sameIdentity(a: SnpPlatformIdentity | null, b: SnpPlatformIdentity | null): boolean {
  if (a === null || b === null) return a === b;
  return a.product === b.product && a.reportedTcb === b.reportedTcb && a.chipId.equals(b.chipId);
}
