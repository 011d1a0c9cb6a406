// Test helper: what /proc says about processes, to prove no test leaves a QEMU (or anything) behind.
// Must not: kill anything; tests end only the processes they started, by pid.
import { readdirSync, readFileSync } from 'node:fs';
import { readProcStat } from '../../src/process/pid.js';

/** Pids of live (non-zombie) processes whose command line contains `needle`. */
export function livePidsWithArg(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!cmdline.split('\0').some((arg) => arg.includes(needle))) continue;
    const stat = readProcStat(pid);
    if (stat !== null && stat.state !== 'Z' && stat.state !== 'X') found.push(pid);
  }
  return found;
}
