// Helpers shared by the benchmarks: timing a child process, medians, and synthetic firmware images
// with an OVMF footer table (GUID byte order written out here, independent of src/sev/).
import { execFile } from 'node:child_process';

const MIB = 1024 * 1024;

/** GUID text → the little-endian bytes firmware tables store. */
export function guidLe(guid) {
  const h = guid.replaceAll('-', '');
  const swap = (s) => s.match(/../g).reverse().join('');
  return Buffer.from(swap(h.slice(0, 8)) + swap(h.slice(8, 12)) + swap(h.slice(12, 16)) + h.slice(16), 'hex');
}

export const u32s = (...v) => Buffer.from(new Uint32Array(v).buffer);

/** Write a footer table of `entries` ([guid, data], the first nearest the footer) at the end of `image`. */
export function writeFooterTable(image, entries) {
  const parts = [];
  for (const [guid, data] of [...entries].reverse()) {
    const len = Buffer.alloc(2);
    len.writeUInt16LE(data.length + 18);
    parts.push(data, len, guidLe(guid));
  }
  const body = Buffer.concat(parts);
  const total = Buffer.alloc(2);
  total.writeUInt16LE(body.length + 18);
  const table = Buffer.concat([body, total, guidLe('96b582de-1fb2-45f7-baea-a366c55a082d')]);
  table.copy(image, image.length - 32 - table.length);
  return image;
}

/** Run a command; resolves to its wall time and stdout, rejects with its stderr. */
export function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    execFile(cmd, args, { maxBuffer: 64 * MIB }, (error, stdout, stderr) => {
      const ms = performance.now() - t0;
      if (error) reject(new Error(`${cmd} ${args.slice(0, 3).join(' ')} … failed (${error.code}): ${stderr}`));
      else resolve({ ms, stdout });
    });
  });
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
