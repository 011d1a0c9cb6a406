// Argument parsers the command files share (commander argParser functions): integers, byte strings,
// SNP TCB levels, products, MAJOR.MINOR. A module of its own so that a command loads only these,
// not another command's option table (`measure` used to load the SNP `verify` options for two parsers).
// Must not: import anything beyond commander's InvalidArgumentError.
import { InvalidArgumentError } from 'commander';

/** SNP TCB security patch levels by component, as `--min-tcb` gives them. */
export type TcbLevels = Readonly<Partial<Record<'fmc' | 'bootloader' | 'tee' | 'snp' | 'microcode', number>>>;

/** An unsigned integer argument, decimal or 0x-hex, at most `max`. */
export function uintArg(max: number): (value: string) => number {
  return (value: string): number => {
    const n = /^(?:0x[0-9a-f]+|[0-9]+)$/i.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n > max) throw new InvalidArgumentError(`expected an integer from 0 to ${max} (decimal or 0x-hex)`);
    return n;
  };
}

/** A u64 argument (VMSA SEV features), decimal or 0x-hex. */
export function u64Arg(value: string): bigint {
  if (!/^(?:0x[0-9a-f]{1,16}|[0-9]{1,20})$/i.test(value) || BigInt(value) > 0xffffffffffffffffn) {
    throw new InvalidArgumentError('expected a 64-bit unsigned integer (decimal or 0x-hex)');
  }
  return BigInt(value);
}

/** Collects a repeatable option's values. */
export function collect<T>(parse: (value: string) => T): (value: string, previous: T[] | undefined) => T[] {
  return (value, previous) => [...(previous ?? []), parse(value)];
}

/** Exactly `n` bytes as hex (or base64 when `base64` is allowed, as QEMU's host-data takes it). */
export function bytesArg(n: number, o: { pad?: boolean; base64?: boolean } = {}): (value: string) => Buffer {
  return (value: string): Buffer => {
    const text = value.trim().replace(/^0x/i, '');
    let bytes: Buffer | null = null;
    if (/^(?:[0-9a-f]{2})+$/i.test(text)) bytes = Buffer.from(text, 'hex');
    else if (o.base64 === true && /^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0) bytes = Buffer.from(text, 'base64');
    const shape = `${n} bytes as hex${o.base64 === true ? ' or base64' : ''}${o.pad === true ? ' (shorter is zero-padded)' : ''}`;
    if (bytes === null) throw new InvalidArgumentError(`expected ${shape}`);
    if (bytes.length === n) return bytes;
    if (o.pad === true && bytes.length < n) return Buffer.concat([bytes, Buffer.alloc(n - bytes.length)]);
    throw new InvalidArgumentError(`expected ${shape}, got ${bytes.length} bytes`);
  };
}

const TCB_NAMES: Readonly<Record<string, 'fmc' | 'bootloader' | 'tee' | 'snp' | 'microcode'>> = {
  fmc: 'fmc',
  bl: 'bootloader',
  bootloader: 'bootloader',
  tee: 'tee',
  snp: 'snp',
  ucode: 'microcode',
  microcode: 'microcode',
};

/** `bl=3,tee=0,snp=8,ucode=115[,fmc=1]`: any subset, each 0..255. */
export function tcbArg(value: string): TcbLevels {
  const out: Partial<Record<'fmc' | 'bootloader' | 'tee' | 'snp' | 'microcode', number>> = {};
  for (const part of value.split(',')) {
    const m = /^([a-z]+)=(\d{1,3})$/.exec(part.trim());
    const name = m?.[1] === undefined ? undefined : TCB_NAMES[m[1]];
    const n = Number(m?.[2]);
    if (name === undefined || !(n <= 0xff) || out[name] !== undefined) {
      throw new InvalidArgumentError('expected SPLs like bl=3,tee=0,snp=8,ucode=115 (Turin also fmc=N), each 0 to 255, each once');
    }
    out[name] = n;
  }
  return out;
}

export function productArg(value: string): 'Milan' | 'Genoa' | 'Turin' {
  const v = value.charAt(0).toUpperCase() + value.slice(1).toLowerCase();
  if (v !== 'Milan' && v !== 'Genoa' && v !== 'Turin') throw new InvalidArgumentError('expected Milan, Genoa or Turin');
  return v;
}

/** `MAJOR.MINOR`, each 0..255 (SEV's --min-api, SNP's --min-abi). */
export function majorMinorArg(example: string): (value: string) => { major: number; minor: number } {
  return (value: string) => {
    const m = /^(\d{1,3})\.(\d{1,3})$/.exec(value);
    const major = Number(m?.[1] ?? Number.NaN);
    const minor = Number(m?.[2] ?? Number.NaN);
    if (!(major <= 0xff && minor <= 0xff)) throw new InvalidArgumentError(`expected MAJOR.MINOR (each 0 to 255), e.g. ${example}`);
    return { major, minor };
  };
}
