// The daemon's client commands: one request each over the control socket, printed for people
// (or verbatim with --json). Kept light: loads only the API client and the output helpers, so
// `sevsup status` starts almost as fast as `node -e ''`.
// Must not: retry anything (a start or stop is not idempotent), or decide anything itself.
import { callControl, daemonSocketPath } from '../../api/client.js';
import type { GuestCliOptions, MeasurementCliOptions, SnapshotCliOptions, StopCliOptions } from '../commands/guests.js';
import { isRecord } from '../../util/is-record.js';
import { writeOut } from '../epipe.js';

/** A start returns once the guest is held or running; a loaded host's launch takes seconds. */
const START_TIMEOUT_MS = 120_000;
/** A graceful stop: powerdown (10 s), quit (3 s), SIGTERM (3 s), SIGKILL; with room to spare. */
const STOP_TIMEOUT_MS = 60_000;
/** An offline copy of a guest's disks takes as long as the disks are large. */
const MIGRATE_TIMEOUT_MS = 3_600_000;

type Json = Readonly<Record<string, unknown>>;

/** As cli/output.ts's printJson, through writeOut (no process.stdout stream for `sevsup status --json`). */
function printJson(value: unknown): void {
  writeOut(`${JSON.stringify(value, null, 2)}\n`);
}

const vmPath = (vm: string, sub = ''): string => `/v1/vms/${encodeURIComponent(vm)}${sub}`;

function call(opts: GuestCliOptions, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs?: number): Promise<unknown> {
  return callControl({
    socketPath: daemonSocketPath(opts.socket),
    method,
    path,
    ...(body === undefined ? {} : { body }),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
}

function out(opts: GuestCliOptions, reply: unknown, human: (r: Json) => string): void {
  if (opts.json === true) printJson(reply);
  else writeOut(human(asObject(reply)));
}

export async function runList(opts: GuestCliOptions): Promise<void> {
  out(opts, await call(opts, 'GET', '/v1/vms'), (r) => {
    const vms = Array.isArray(r['vms']) ? r['vms'].map(asObject) : [];
    const rows = [
      ['VM', 'STATE', 'SEV', 'PID', 'NOTE'],
      ...vms.map((s) => [text(s['vm']), text(s['state']), s['sev'] === true ? 'yes' : 'no', text(s['pid'] ?? '-'), note(s)]),
    ];
    const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
    const lines = rows.map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    );
    const problems = Array.isArray(r['configErrors']) ? r['configErrors'].map(asObject) : [];
    for (const p of problems) lines.push(`bad config: ${text(p['message'])} [${text(p['code'])}]`);
    return `${lines.join('\n')}\n`;
  });
}

export async function runStatus(vm: string, opts: GuestCliOptions): Promise<void> {
  out(opts, await call(opts, 'GET', vmPath(vm)), statusText);
}

export async function runStart(vm: string, opts: GuestCliOptions): Promise<void> {
  out(opts, await call(opts, 'POST', vmPath(vm, '/start'), {}, START_TIMEOUT_MS), statusText);
}

export async function runStop(vm: string, opts: StopCliOptions): Promise<void> {
  out(opts, await call(opts, 'POST', vmPath(vm, '/stop'), { force: opts.force === true }, STOP_TIMEOUT_MS), statusText);
}

export async function runMeasurement(vm: string, opts: MeasurementCliOptions): Promise<void> {
  if (opts.all === true && opts.record !== undefined) {
    const { SupervisorError } = await import('../../errors.js');
    throw new SupervisorError('SUP_ERR_USAGE', 'give --all or --record NAME, not both');
  }
  if (opts.all === true) {
    out(opts, await call(opts, 'GET', vmPath(vm, '/measurements')), (r) => {
      const records = Array.isArray(r['records']) ? r['records'].map(asObject) : [];
      return records.length === 0
        ? `${vm}: no measurement records\n`
        : records.map((x) => `${text(x['name'])}  ${text(x['path'])}\n`).join('');
    });
    return;
  }
  const path = opts.record === undefined ? vmPath(vm, '/measurement') : vmPath(vm, `/measurements/${encodeURIComponent(opts.record)}`);
  // A record is the contract with attestation scripts: printed whole, as stored.
  printJson(await call(opts, 'GET', path));
}

export async function runSnapshot(vm: string, name: string, opts: SnapshotCliOptions): Promise<void> {
  out(opts, await call(opts, 'POST', vmPath(vm, '/snapshot'), { name, vmstate: opts.vmstate === true }, STOP_TIMEOUT_MS), (r) => {
    const disks = Array.isArray(r['disks']) ? r['disks'].map(text) : [];
    return `${vm}: disk snapshot '${text(r['name'])}' taken (${text(r['via'])}) on ${disks.join(', ')}\n`;
  });
}

export async function runMigrate(vm: string, target: string, opts: GuestCliOptions): Promise<void> {
  out(opts, await call(opts, 'POST', vmPath(vm, '/migrate'), { target }, MIGRATE_TIMEOUT_MS), (r) => {
    const next = Array.isArray(r['next']) ? r['next'].map(text) : [];
    return [
      `${vm}: copied to ${text(r['target'])} (config ${text(r['config'])})`,
      'next:',
      ...next.map((n, i) => `  ${i + 1}. ${n}`),
      '',
    ].join('\n');
  });
}

function statusText(s: Json): string {
  const lines = [`${text(s['vm'])}: ${text(s['state'])}${s['pid'] === null || s['pid'] === undefined ? '' : ` (pid ${text(s['pid'])})`}`];
  lines.push(`  platform ${text(s['platform'])}, ${s['sev'] === true ? 'SEV guest' : 'no SEV'}`);
  if (typeof s['holdDeadline'] === 'string')
    lines.push(`  held for attestation until ${s['holdDeadline']}; secrets injected: ${text(s['secretsInjected'])}`);
  if (typeof s['record'] === 'string') lines.push(`  measurement record ${s['record']}`);
  const error = s['error'] === null || s['error'] === undefined ? null : asObject(s['error']);
  if (error !== null) lines.push(`  error: ${text(error['message'])} [${text(error['code'])}]`);
  return `${lines.join('\n')}\n`;
}

function note(s: Json): string {
  if (typeof s['holdDeadline'] === 'string') return `held until ${s['holdDeadline']}`;
  const error = s['error'] === null || s['error'] === undefined ? null : asObject(s['error']);
  return error === null ? '' : text(error['code']);
}

function asObject(value: unknown): Json {
  return isRecord(value) ? { ...value } : {};
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
}
