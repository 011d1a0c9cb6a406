// What every step of `sevsup demo` shares: the narrator, the work paths, the abort signal, the
// supervisors it started, and the two ways it runs a short command (shown and checked, or raw).
// Owns: those helpers. Must not: decide the steps (demo/demo.ts, demo/snp.ts do).
import { isErrorCode, SupervisorError } from '../errors.js';
import type { Narrator } from './narrator.js';
import { runToCompletion, type Background, type Completed } from './processes.js';
import type { DemoPaths, DemoSupervisor } from './supervisor.js';
import { DEMO_PATHS } from './paths.js';

/** Each of sevsup attest / qmp / verify / the validator answers in well under a second. */
export const COMMAND_TIMEOUT_MS = 60_000;

export interface Ctx {
  readonly say: Narrator;
  readonly paths: DemoPaths;
  readonly signal: AbortSignal;
  readonly via: 'daemon' | 'run';
  /** The SEV guest's supervisor. */
  supervisor: DemoSupervisor | undefined;
  /** The SNP guest's `sevsup run`, while it runs (cleanUp stops it). */
  snpSupervisor: DemoSupervisor | undefined;
  /** `sevsup owner serve`, when the daemon relays (cleanUp stops it). */
  ownerService: Background | undefined;
}

/** The environment every sevsup the demo starts gets: the simulated SNP platform's chain. */
export function demoEnv(): NodeJS.ProcessEnv {
  return { ...process.env, SEVSUP_SIM_STATE_DIR: DEMO_PATHS.simState };
}

export async function command(ctx: Ctx, cmd: string, args: readonly string[]): Promise<Completed> {
  const result = await runToCompletion(cmd, args, { signal: ctx.signal, timeoutMs: COMMAND_TIMEOUT_MS, env: demoEnv() });
  if (ctx.signal.aborted) throw new SupervisorError('SUP_ERR_USAGE', 'interrupted');
  return result;
}

/** Run `sevsup <args>` (not shown); resolves with its exit and output. */
export function sevsup(ctx: Ctx, args: readonly string[]): Promise<Completed> {
  return command(ctx, process.execPath, [DEMO_PATHS.sevsup, ...args]);
}

/** The error for a sevsup command that failed, keeping its own code (printed as "[SUP_ERR_…]"). */
export function commandFailed(args: readonly string[], result: Completed): SupervisorError {
  const code = /\[(SUP_ERR_[A-Z_]+)\]\s*$/.exec(result.stderr)?.[1];
  return new SupervisorError(
    isErrorCode(code) ? code : 'SUP_ERR_INTERNAL',
    `\`sevsup ${args[0] ?? ''}\` failed (exit ${result.code ?? result.signal ?? '?'}): ${result.stderr.trim()}`,
  );
}

/** Show and run `sevsup <args>`; it must succeed. Its output is shown unless `quiet`. */
export async function sevsupStep(ctx: Ctx, args: readonly string[], o: { quiet?: boolean } = {}): Promise<Completed> {
  ctx.say.command(['sevsup', ...args]);
  const result = await sevsup(ctx, args);
  if (o.quiet !== true || result.code !== 0) ctx.say.output(`${result.stdout}${result.stderr}`);
  if (result.code !== 0) throw commandFailed(args, result);
  return result;
}
