// Test helper: what /proc says about this process's inotify watches, to prove a file watcher was let go
// (which processes mention a text is processesMentioning, in it-env.ts). Must not: change anything.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';

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
