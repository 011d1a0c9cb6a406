// Test helper: end a child process a test started, as a supervisor would: SIGTERM (it may clean
// up), SIGKILL if it lingers past a grace. Must not: look for processes by name; only `child`.
import type { ChildProcess } from 'node:child_process';

/** SIGTERM `child`, SIGKILL it after `graceMs`, and wait for `ended` (its exit or close). */
export async function terminate(child: ChildProcess, ended: Promise<unknown>, graceMs: number): Promise<void> {
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  try {
    await ended;
  } finally {
    clearTimeout(timer);
  }
}
