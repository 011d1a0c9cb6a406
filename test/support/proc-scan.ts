// Test helper: what /proc says about processes, to prove no test leaves a QEMU (or anything) behind.
// Must not: kill anything; tests end only the processes they started, by pid.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
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

/**
 * How many inotify watches this process holds on `path`'s inode, as the kernel accounts them
 * (/proc/self/fdinfo of every inotify fd): a file watcher left open after its owner let go shows here.
 */
export function inotifyWatchesOn(path: string): number {
  const ino = statSync(path).ino.toString(16);
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    let info: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target !== 'anon_inode:inotify') continue;
      info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    count += info.split('\n').filter((line) => line.startsWith('inotify ') && line.includes(` ino:${ino} `)).length;
  }
  return count;
}
