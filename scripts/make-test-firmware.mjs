#!/usr/bin/env node
// make-test-firmware.mjs SRC DST [--hashes BASE:SIZE] [--secret BASE:SIZE] [--snp SECTIONS] [--snp-version N]
//
// Writes DST: a copy of the OVMF image SRC whose footer table declares a kernel-hashes area and a
// launch-secret area. Only the eight data bytes (u32 base, u32 size) of those two entries change;
// the write is atomic (temp file, fsync, rename). SRC must already have both entries (Debian's
// OVMF images do, with base 0 size 0, which QEMU refuses for kernel-hashes). Test use only: real
// SEV hosts need the OVMF AmdSev build (OvmfPkg/AmdSev/AmdSevX64.dsc). Uses dist/ (npm run build).
//
// Defaults: secret 0x80F000:0xC00, hashes 0x80FC00:0x400 — the layout the OVMF AmdSev build of
// that era uses, in a page of OVMF's MEMFD scratch range (0x800000-0x900000) that this image does
// not use. Checked against Debian bookworm ovmf 2022.11 (/usr/share/ovmf/OVMF.fd; its SNP metadata
// and a TCG boot with efi=debug): the obvious alternatives are taken — 0x80A000 is the GHCB
// bookkeeping page (SEV-ES) and 0x80B000 is OVMF's work area (written on every boot; the SEV-ES AP
// reset vector 0x80B004 lies in it), so a secret injected there would clobber it. QEMU without
// SEV writes nothing into these areas, so a patched image boots exactly like the original under
// plain QEMU TCG (checked: OVMF, then a -kernel bzImage to its root-fs panic).
//
// --snp SECTIONS also replaces the image's SEV-SNP metadata (the `ASEV` header its footer entry
// points at; sev/snp-metadata.ts withSnpMetadata): `kernel-hashes` (Debian's OvmfPkg sections with
// a KERNEL_HASHES page at the hashes area, like the AmdSev build), `all` (that plus an SVSM_CAA page
// and a page of unknown type 0x20), or a list TYPE:GPA:SIZE,… (TYPE: SEC_MEM, SECRETS, CPUID,
// SVSM_CAA, KERNEL_HASHES or a number). --snp-version writes another header version (QEMU 10 does
// not check it; sevsup refuses it). The new header goes over the old one when it fits, else into
// zero padding near the end; such images are for measuring and inspecting, not verified to boot.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DIST = new URL('../dist/', import.meta.url);
const USAGE =
  'usage: make-test-firmware.mjs SRC DST [--hashes BASE:SIZE] [--secret BASE:SIZE] [--snp kernel-hashes|all|TYPE:GPA:SIZE,…] [--snp-version N]';
/** Debian OVMF.fd's sections with SEC_MEM 0x80f000:0x11000 split around a KERNEL_HASHES page. */
const SNP_PRESETS = {
  'kernel-hashes':
    'SEC_MEM:0x800000:0x9000,SEC_MEM:0x80a000:0x3000,SECRETS:0x80d000:0x1000,CPUID:0x80e000:0x1000,KERNEL_HASHES:0x80f000:0x1000,SEC_MEM:0x810000:0x10000',
  all: 'SEC_MEM:0x800000:0x9000,SEC_MEM:0x80a000:0x3000,SECRETS:0x80d000:0x1000,CPUID:0x80e000:0x1000,KERNEL_HASHES:0x80f000:0x1000,SVSM_CAA:0x810000:0x1000,0x20:0x811000:0x1000,SEC_MEM:0x812000:0xe000',
};
const DEFAULTS = { hashes: { base: 0x80fc00, size: 0x400 }, secret: { base: 0x80f000, size: 0xc00 } };

function fail(message, code = 2) {
  process.stderr.write(`make-test-firmware: ${message}\n`);
  process.exit(code);
}

function parseArea(flag, text) {
  const match = /^(0x[0-9a-f]+|\d+):(0x[0-9a-f]+|\d+)$/i.exec(text ?? '');
  if (!match) fail(`${flag} takes BASE:SIZE (decimal or 0x hex), got ${JSON.stringify(text)}`);
  const base = Number(match[1]);
  const size = Number(match[2]);
  if (base > 0xffffffff || size > 0xffffffff) fail(`${flag}: base and size are u32`);
  return { base, size };
}

function parseSections(text, types) {
  const spec = SNP_PRESETS[text] ?? text ?? '';
  return spec.split(',').map((part) => {
    const match = /^([A-Z_]+|0x[0-9a-f]+|\d+):(0x[0-9a-f]+|\d+):(0x[0-9a-f]+|\d+)$/i.exec(part);
    const type = match === null ? undefined : (types[match[1]] ?? (/^[A-Z_]+$/.test(match[1]) ? undefined : Number(match[1])));
    if (match === null || type === undefined) fail(`--snp takes kernel-hashes, all, or TYPE:GPA:SIZE,… (got ${JSON.stringify(part)})`);
    return { type, gpa: Number(match[2]), size: Number(match[3]) };
  });
}

function parseArgs(argv) {
  const positional = [];
  const areas = { ...DEFAULTS };
  let snp = null;
  let snpVersion = 1;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--hashes' || arg === '--secret') areas[arg.slice(2)] = parseArea(arg, argv[++i]);
    else if (arg === '--snp') snp = argv[++i] ?? fail('--snp needs a value');
    else if (arg === '--snp-version') snpVersion = Number(argv[++i]);
    else if (arg === '-h' || arg === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (arg.startsWith('-')) fail(`unknown option ${arg}\n${USAGE}`);
    else positional.push(arg);
  }
  if (positional.length !== 2) fail(USAGE);
  if (!Number.isInteger(snpVersion) || snpVersion < 0 || snpVersion > 0xffffffff) fail('--snp-version takes a u32');
  return { src: positional[0], dst: positional[1], areas, snp, snpVersion };
}

async function main() {
  const { src, dst, areas, snp, snpVersion } = parseArgs(process.argv.slice(2));
  let ovmf;
  let atomic;
  let snpMeta;
  try {
    ovmf = await import(new URL('sev/ovmf-table.js', DIST));
    snpMeta = await import(new URL('sev/snp-metadata.js', DIST));
    atomic = await import(new URL('util/atomic-write.js', DIST));
  } catch (error) {
    fail(`cannot load ${fileURLToPath(DIST)} (run npm run build): ${error.message}`, 70);
  }
  const { parseOvmfTable, SEV_HASH_TABLE_RV_GUID, SEV_SECRET_GUID } = ovmf;

  let image;
  try {
    image = readFileSync(src);
  } catch (error) {
    fail(`cannot read ${src}: ${error.code ?? error.message}`, 1);
  }
  let parsed;
  try {
    parsed = parseOvmfTable(image);
  } catch (error) {
    fail(`${src}: ${error.message}`, 1);
  }
  if (!parsed.found) fail(`${src} has no OVMF footer table`, 1);
  for (const [name, guid] of [
    ['hashes', SEV_HASH_TABLE_RV_GUID],
    ['secret', SEV_SECRET_GUID],
  ]) {
    const entry = parsed.entries.find((e) => e.guid === guid);
    if (entry === undefined) fail(`${src} has no ${name} area entry (${guid}) to rewrite`, 1);
    if (entry.length < 8) fail(`${src}: the ${name} area entry has ${entry.length} data bytes, expected 8`, 1);
    image.writeUInt32LE(areas[name].base, entry.offset);
    image.writeUInt32LE(areas[name].size, entry.offset + 4);
  }
  let sections = null;
  if (snp !== null) {
    sections = parseSections(snp, snpMeta.SNP_SECTION);
    try {
      image = snpMeta.withSnpMetadata(image, parsed, sections, snpVersion);
    } catch (error) {
      fail(`${src}: ${error.message}`, 1);
    }
  }
  // Firmware images are world-readable data, like the packaged originals.
  try {
    await atomic.writeFileAtomic(dst, image, { mode: 0o644, overwrite: true });
  } catch (error) {
    fail(`cannot write ${dst}: ${error.code ?? error.message}`, 1);
  }
  const hex = (n) => `0x${n.toString(16)}`;
  process.stdout.write(
    `wrote ${dst}: hashes area ${hex(areas.hashes.base)}:${hex(areas.hashes.size)}, secret area ${hex(areas.secret.base)}:${hex(areas.secret.size)}` +
      `${sections === null ? '' : `, SNP metadata v${snpVersion} with ${sections.length} sections`}\n`,
  );
}

await main();
