// Helpers shared by the benchmarks: timing a child process, rounds of several commands in turn,
// medians, a `sevsup daemon` on the simulated platform, and synthetic firmware images with an OVMF
// footer table (GUID byte order written out here, independent of src/sev/).
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bin/sevsup of this checkout. */
export const SEVSUP = fileURLToPath(new URL('../bin/sevsup', import.meta.url));

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

/** Run a command (`env`: its whole environment, else this one's); resolves to its wall time and stdout, rejects with its stderr. */
export function run(cmd, args, env = undefined) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    execFile(cmd, args, { maxBuffer: 64 * MIB, ...(env === undefined ? {} : { env }) }, (error, stdout, stderr) => {
      const ms = performance.now() - t0;
      if (error) reject(new Error(`${cmd} ${args.slice(0, 3).join(' ')} … failed (${error.code}): ${stderr}`));
      else resolve({ ms, stdout });
    });
  });
}

/** Call `onMessage` with each JSON line `stream` carries (`sevsup run --json`'s events, QMP replies). */
export function onJsonLines(stream, onMessage) {
  let buf = '';
  stream.on('data', (chunk) => {
    buf += chunk;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      onMessage(JSON.parse(line));
    }
  });
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Wall time of one `node <argv>` process from spawn to exit, in ms; rejects unless it exits with
 * one of `okCodes` (an error path, such as `status` without a daemon, is timed with its code).
 */
export function timeNode(argv, okCodes = [0]) {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) =>
      okCodes.includes(code) ? resolve(performance.now() - start) : reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr}`)),
    );
  });
}

/**
 * `runs` rounds of `measure(name)` for every name of `names`, in turn within each round (so a
 * shared machine's noise hits each alike), after one warm-up call each. Returns name → samples.
 */
export async function rounds(names, runs, measure) {
  for (const name of names) await measure(name);
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let i = 0; i < runs; i += 1) for (const name of names) samples[name].push(await measure(name));
  return samples;
}

/**
 * `sevsup daemon --platform sim` with its directories under `root` (vms/ must hold the configs) and
 * its socket at `socket`; `extra` more arguments. Returns the child and a promise of its exit.
 */
export function spawnSimDaemon(root, socket, extra = []) {
  const child = spawn(
    process.execPath,
    [
      SEVSUP,
      'daemon',
      '--platform',
      'sim',
      '--vm-dir',
      join(root, 'vms'),
      '--run-dir',
      join(root, 'run'),
      '--state-dir',
      join(root, 'state'),
      '--socket',
      socket,
      '--log-level',
      'warn',
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return { child, exited: new Promise((resolve) => child.once('close', resolve)) };
}
