#!/usr/bin/env node
// make-test-firmware.mjs SRC DST [--hashes BASE:SIZE] [--secret BASE:SIZE]
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
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DIST = new URL('../dist/', import.meta.url);
const USAGE = 'usage: make-test-firmware.mjs SRC DST [--hashes BASE:SIZE] [--secret BASE:SIZE]';
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

function parseArgs(argv) {
  const positional = [];
  const areas = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--hashes' || arg === '--secret') areas[arg.slice(2)] = parseArea(arg, argv[++i]);
    else if (arg === '-h' || arg === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (arg.startsWith('-')) fail(`unknown option ${arg}\n${USAGE}`);
    else positional.push(arg);
  }
  if (positional.length !== 2) fail(USAGE);
  return { src: positional[0], dst: positional[1], areas };
}

async function main() {
  const { src, dst, areas } = parseArgs(process.argv.slice(2));
  let ovmf;
  let atomic;
  try {
    ovmf = await import(new URL('sev/ovmf-table.js', DIST));
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
  for (const [name, guid] of [['hashes', SEV_HASH_TABLE_RV_GUID], ['secret', SEV_SECRET_GUID]]) {
    const entry = parsed.entries.find((e) => e.guid === guid);
    if (entry === undefined) fail(`${src} has no ${name} area entry (${guid}) to rewrite`, 1);
    if (entry.length < 8) fail(`${src}: the ${name} area entry has ${entry.length} data bytes, expected 8`, 1);
    image.writeUInt32LE(areas[name].base, entry.offset);
    image.writeUInt32LE(areas[name].size, entry.offset + 4);
  }
  // Firmware images are world-readable data, like the packaged originals.
  try {
    await atomic.writeFileAtomic(dst, image, { mode: 0o644, overwrite: true });
  } catch (error) {
    fail(`cannot write ${dst}: ${error.code ?? error.message}`, 1);
  }
  const hex = (n) => `0x${n.toString(16)}`;
  process.stdout.write(
    `wrote ${dst}: hashes area ${hex(areas.hashes.base)}:${hex(areas.hashes.size)}, secret area ${hex(areas.secret.base)}:${hex(areas.secret.size)}\n`,
  );
}

await main();
