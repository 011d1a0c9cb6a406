// `sevsup demo`: runs the narrated demo (demo/demo.ts owns its steps, processes and clean-up).
// Must not: hold any of the demo's logic.
import { runDemo } from '../../demo/demo.js';
import type { DemoCliOptions } from '../commands/demo.js';

export async function runDemoCommand(opts: DemoCliOptions): Promise<void> {
  await runDemo(opts);
}
