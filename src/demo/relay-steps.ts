// The demo's relayed SEV steps: the owner's service verified the launch and sent the secret, the
// guest runs with nobody typing, and a launch with a changed command line is refused by the owner.
// Also the demo SEV guest's names and timeouts, which demo.ts shares. Owns: what these steps do and
// say. Must not: start or stop the supervisor or the owner's service (demo.ts does), or print
// secret bytes (the audit has none; the simulator's status gives lengths).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SupervisorError } from '../errors.js';
import { auditPathFor } from '../relay/relay.js';
import { isRecord } from '../util/is-record.js';
import { sevsupStep, type Ctx } from './context.js';
import { pollUntil } from './processes.js';
import { waitForState, type DemoPaths, type DemoSupervisor } from './supervisor.js';

export const VM = 'demo-sev';
/** With the relay: the owner's second guest, which the host starts with a changed command line. */
export const VM_CHANGED = 'demo-sev-changed';
/** Launch to held: spawn, QMP, checks, measurement, record; about a second here, generous for busy hosts. */
export const HELD_TIMEOUT_MS = 90_000;
/** Approve to running: one `cont`. */
export const RUNNING_TIMEOUT_MS = 30_000;
export const CMDLINE = 'console=ttyS0 panic=-1';
/** What a host that wants a root shell in the guest would boot it with instead. */
export const CHANGED_CMDLINE = `${CMDLINE} init=/bin/sh`;

export async function relayed(ctx: Ctx, supervisor: DemoSupervisor, recordPath: string | null): Promise<void> {
  const { say, paths } = ctx;
  say.step("The owner's service verified the launch and sent the secret");
  say.say(
    "While the guest was held, the daemon POSTed its measurement record to the owner's service over TLS (trusting only " +
      "the owner's CA) and waited. The service checked the measurement with the same code as `sevsup verify` against " +
      "the owner's own inputs and TIK, built the launch secret (a disk passphrase) with the same code as `sevsup secret " +
      "build`, bound to this launch's measurement, and answered `inject`. The daemon injected it, then resumed the guest. " +
      'Every exchange is appended to an audit file beside the record (what was sent, its digest, the answer, the TLS peer).',
  );
  const running = await waitForState(supervisor, 'running', RUNNING_TIMEOUT_MS, ctx.signal);
  const audit = auditPath(running.record ?? recordPath);
  say.line(`${audit}:`);
  say.output(await auditSummary(audit));
  const accepted = await simInjected(paths);
  if (accepted !== null) say.line(`the simulated secure processor verified the packet against this launch and holds ${accepted}`);

  say.step('The guest runs, with nobody typing');
  say.say('Only after the secret was in place did the daemon send `cont`. Nobody ran `sevsup attest`; nobody else can.');
  say.line(`${VM}: running (QEMU pid ${running.pid ?? '?'}), ${running.secretsInjected ?? 0} secret injected by the relay`);
  if (supervisor.daemonTarget !== null) await sevsupStep(ctx, ['status', VM, ...supervisor.daemonTarget]);
}

/** The relay's audit file beside the record it relayed. */
function auditPath(recordPath: string | null): string {
  if (recordPath === null) throw new SupervisorError('SUP_ERR_INTERNAL', 'the daemon reported no record path for the relayed guest');
  return auditPathFor(recordPath);
}

/** One line per audit entry: its event and the facts a reader needs (never secret bytes: the audit has none). */
async function auditSummary(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const e: unknown = JSON.parse(l);
      if (!isRecord(e)) return l;
      const facts = ['status', 'decision', 'reason', 'code', 'injected']
        .filter((k) => e[k] !== undefined)
        .map((k) => `${k} ${typeof e[k] === 'string' ? (e[k] as string) : JSON.stringify(e[k])}`);
      const event = e['event'] === 'attempt' ? `attempt ${String(e['attempt'])}` : String(e['event']);
      return `${event}${facts.length === 0 ? '' : `: ${facts.join(', ')}`}`;
    })
    .join('\n');
}

/** With the relay: the same guest relaunched with a changed command line; the owner's service rejects it. */
export async function changedLaunchRefused(ctx: Ctx, supervisor: DemoSupervisor, conf: string): Promise<void> {
  const { say, paths } = ctx;
  say.step("The host changes the command line: the owner's service refuses the launch");
  say.say(
    `The host now starts ${VM_CHANGED}, another guest of this owner with the same image, with \`${CHANGED_CMDLINE}\` ` +
      "(a root shell instead of the guest's own init). " +
      "The launch measurement differs from the one the owner's inputs give, so the service answers `reject`; the " +
      'guest is stopped without ever running, and the reason is in its status and audit.',
  );
  say.line(`${conf}: cmdline: ${CHANGED_CMDLINE}`);
  await sevsupStep(ctx, ['start', VM_CHANGED, ...(supervisor.daemonTarget ?? [])]);
  const failed = await pollUntil(
    async () => {
      const s = await supervisor.status(VM_CHANGED);
      return s !== null && s.state === 'failed' ? s : s?.state === 'running' ? s : undefined;
    },
    { timeoutMs: HELD_TIMEOUT_MS, intervalMs: 100, signal: ctx.signal },
  );
  if (failed === undefined) throw new SupervisorError('SUP_ERR_LAUNCH_TIMEOUT', 'the changed launch neither failed nor ran in time');
  if (failed.state === 'running') throw new SupervisorError('SUP_ERR_INTERNAL', 'the launch with a changed command line was NOT refused');
  say.line(`${VM_CHANGED}: state failed: ${failed.error?.message ?? '?'} [${failed.error?.code ?? '?'}]`);
  const audit = auditPath(failed.record);
  say.line(`${audit}:`);
  say.output(await auditSummary(audit));
  const status: unknown = JSON.parse(
    await readFile(join(paths.runDir, VM_CHANGED, 'private', 'sim-status.json'), 'utf8').catch(() => '{}'),
  );
  const conts = isRecord(status) && typeof status['contCount'] === 'number' ? status['contCount'] : null;
  if (conts !== 0 && conts !== null) throw new SupervisorError('SUP_ERR_INTERNAL', `the refused guest was resumed (${conts} cont)`);
  say.line("→ refused by the owner's service: the guest never ran (the simulated platform saw no `cont`)");
}

/** What the simulator says it accepted (sim-status.json, next to its monitor socket); null if unreadable. */
export async function simInjected(paths: DemoPaths): Promise<string | null> {
  try {
    const status: unknown = JSON.parse(await readFile(join(paths.runDir, VM, 'private', 'sim-status.json'), 'utf8'));
    const injected = isRecord(status) && Array.isArray(status['injectedSecrets']) ? status['injectedSecrets'] : [];
    const secrets = injected.flatMap((i: unknown) => (isRecord(i) && Array.isArray(i['secrets']) ? (i['secrets'] as unknown[]) : []));
    const described = secrets.filter(isRecord).map((s) => `${String(s['guid'])} (${String(s['length'])} bytes)`);
    return described.length === 0 ? null : `${described.length} secret${described.length === 1 ? '' : 's'}: ${described.join(', ')}`;
  } catch {
    return null;
  }
}
