// The commands scripts and monitoring poll (`sevsup status <vm>`, `sevsup list`), in their plain
// forms, and `sevsup --version` (-V) alone, run without commander or the command table: start-up
// stays close to `node -e ''`.
// Anything else on their command line (--help, an unknown option, a missing argument) goes the
// normal way through commander, which then prints the usual help and usage errors.
// Must not: import anything at load time, or accept anything commander would refuse.
import type { GuestCliOptions } from './guests.js';

export interface LightInvocation {
  readonly command: 'status' | 'list' | 'version';
  readonly vm: string | null;
  readonly options: GuestCliOptions;
}

/** `argv` (process.argv form) as a light invocation, or null to use the full command table. */
export function parseLight(argv: readonly string[]): LightInvocation | null {
  const [command, ...rest] = argv.slice(2);
  if ((command === '--version' || command === '-V') && rest.length === 0) return { command: 'version', vm: null, options: {} };
  if (command !== 'status' && command !== 'list') return null;
  const positional: string[] = [];
  let socket: string | undefined;
  let json = false;
  for (let i = 0; i < rest.length; i += 1) {
    const arg = rest[i] ?? '';
    if (arg === '--json') json = true;
    else if (arg === '--socket' && i + 1 < rest.length && !(rest[i + 1] ?? '').startsWith('-')) socket = rest[++i];
    else if (arg.startsWith('--socket=') && arg.length > '--socket='.length) socket = arg.slice('--socket='.length);
    else if (arg.startsWith('-')) return null;
    else positional.push(arg);
  }
  const want = command === 'status' ? 1 : 0;
  if (positional.length !== want) return null;
  const options: GuestCliOptions = { ...(socket === undefined ? {} : { socket }), ...(json ? { json } : {}) };
  return { command, vm: positional[0] ?? null, options };
}

/** Run a light invocation (its action module is the only thing loaded). */
export async function runLight(light: LightInvocation): Promise<void> {
  if (light.command === 'version') {
    // As commander prints it (`.version()` in cli/main.ts).
    (await import('../epipe.js')).writeOut(`${(await import('../../version.js')).VERSION}\n`);
    return;
  }
  const actions = await import('../actions/guests.js');
  if (light.command === 'list') await actions.runList(light.options);
  else await actions.runStatus(light.vm ?? '', light.options);
}
