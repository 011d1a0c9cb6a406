// Per-client QMP decisions of the simulated platform: which requests go to the real QEMU as they
// are, whose replies are replaced by the simulated SEV answers, and which are answered here (the
// migration blocker after LAUNCH_FINISH). Pure: no sockets; the monitor server does the I/O.
// Everything QEMU validates first (negotiation, argument names and types) is left to QEMU: SEV
// commands are forwarded and only QEMU's "SEV is not enabled"-style answer is replaced, so error
// paths stay QEMU's own. Must not: forward anything that could start a real migration or snapshot
// once the simulated guest has run (QEMU on SEV would refuse it).
import { parseHmpCommandLine } from '../../qemu/hmp.js';
import { ATTESTATION_SIGNATURE_BYTES } from './platform-blobs.js';
import { formatQemuJson, parseQemuJson } from './qmp-json.js';
import { SIM_SNP_REPORT_COMMAND } from './snp-guest-report.js';
import type { InjectedSecret, QmpResult, SevGuestSim } from './sev-state.js';
import { isRecord } from '../../util/is-record.js';

/** A reply or event object from QEMU, members in QEMU's order. */
export type QmpObject = Record<string, unknown>;

export type Plan =
  /** Send `text` to QEMU; pass its reply through `transform` (null: unchanged). */
  | { readonly kind: 'forward'; readonly text: string; readonly transform: ((reply: QmpObject) => QmpObject | null) | null }
  /** exec-oob with an id: sent at once, outside the in-band queue; its reply is routed by id. */
  | { readonly kind: 'oob'; readonly text: string; readonly idKey: string }
  /** Answered here, as QEMU would answer it. */
  | { readonly kind: 'local'; readonly reply: QmpObject };

export interface InterceptorHooks {
  secretAccepted(injected: InjectedSecret): void;
  secretRefused(desc: string, reason: string | null): void;
  randomBytes(n: number): Buffer;
  /** The sim-only x-sevsup-sim-snp-report request (snp-guest-report.ts). */
  snpReport(args: Record<string, unknown>): QmpResult;
}

/** State shared by every client session of one guest. */
export interface SharedState {
  /** snapshot-save job ids started after LAUNCH_FINISH, which QEMU would fail with the blocker. */
  readonly blockedJobs: Set<string>;
}

/**
 * A node name no blockdev can have ('#' starts only QEMU's generated names), so a snapshot-save
 * sent with it fails in QEMU before touching any image or stopping the guest.
 */
const UNMATCHABLE_VMSTATE_NODE = '#sevsup-sim-migration-blocked';

type ArgType = 'str' | 'bool' | 'int' | 'str-list';
/** Whether `args` has exactly QEMU's members with its types (required unless marked `?`). */
function conforms(args: Record<string, unknown>, schema: Readonly<Record<string, ArgType>>): boolean {
  const ok = (v: unknown, t: ArgType): boolean =>
    t === 'str'
      ? typeof v === 'string'
      : t === 'bool'
        ? typeof v === 'boolean'
        : t === 'int'
          ? Number.isSafeInteger(v)
          : Array.isArray(v) && v.every((x) => typeof x === 'string');
  for (const key of Object.keys(args)) {
    const type = schema[key] ?? schema[`${key}?`];
    if (type === undefined || !ok(args[key], type)) return false;
  }
  return Object.keys(schema).every((k) => k.endsWith('?') || Object.hasOwn(args, k));
}

/** QEMU 7.2 argument schemas of the commands answered here (qapi/migration.json, misc.json). */
const MIGRATE_ARGS = { uri: 'str', 'blk?': 'bool', 'inc?': 'bool', 'detach?': 'bool', 'resume?': 'bool' } as const;
const SNAPSHOT_SAVE_ARGS = { 'job-id': 'str', tag: 'str', vmstate: 'str', devices: 'str-list' } as const;
const HMP_ARGS = { 'command-line': 'str', 'cpu-index?': 'int' } as const;
/** HMP `migrate`'s flags (args_type "detach:-d,blk:-b,inc:-i,resume:-r,uri:s"). */
const HMP_MIGRATE_FLAGS = new Set(['-d', '-b', '-i', '-r']);

/** HMP `migrate` gets as far as the blocker only with a URI after its known flags. */
function hmpMigrateHasUri(args: string): boolean {
  for (const token of args.split(/[ \t\n\v\f\r]+/).filter((t) => t !== '')) {
    if (HMP_MIGRATE_FLAGS.has(token)) continue;
    return !token.startsWith('-');
  }
  return false;
}

function withResult(reply: QmpObject, result: QmpResult): QmpObject {
  return Object.hasOwn(reply, 'id') ? { ...result, id: reply['id'] } : { ...result };
}

function errorDesc(reply: QmpObject): string | null {
  const error = reply['error'];
  return isRecord(error) && typeof error['desc'] === 'string' ? error['desc'] : null;
}

/** The text QEMU 7.2 without SEV answers, which the simulated answer replaces. */
const NOT_SEV = {
  measure: 'SEV launch measurement is not available',
  inject: 'SEV not enabled for guest',
  attestation: 'SEV is not enabled',
  hmpInfo: 'SEV is not enabled\r\n',
  capabilities: ['KVM not enabled', 'SEV is not enabled in KVM'],
} as const;

export class QmpInterceptor {
  private negotiatedValue = false;

  constructor(
    private readonly guest: SevGuestSim,
    private readonly shared: SharedState,
    private readonly hooks: InterceptorHooks,
  ) {}

  /** Whether this session's qmp_capabilities succeeded (QEMU's command mode). */
  get negotiated(): boolean {
    return this.negotiatedValue;
  }

  /** Decide what to do with one framed client value. */
  plan(text: string): Plan {
    const forward = (transform: ((reply: QmpObject) => QmpObject | null) | null = null, out = text): Plan => ({
      kind: 'forward',
      text: out,
      transform,
    });
    const parsed = parseQemuJson(text);
    // Anything QEMU would reject as input (or we cannot read exactly as QEMU does) is QEMU's to answer.
    if (!parsed.ok || parsed.duplicateKeys || !isRecord(parsed.value)) return forward();
    const msg = parsed.value;
    if (Object.hasOwn(msg, 'exec-oob')) {
      return Object.hasOwn(msg, 'id') ? { kind: 'oob', text, idKey: formatQemuJson(msg['id']) } : forward();
    }
    const name = msg['execute'];
    const args = msg['arguments'] ?? {};
    if (typeof name !== 'string' || !isRecord(args) || Object.keys(msg).some((k) => k !== 'execute' && k !== 'arguments' && k !== 'id')) {
      return forward();
    }
    if (name === 'qmp_capabilities') {
      return forward((reply) => {
        if (Object.hasOwn(reply, 'return')) this.negotiatedValue = true;
        return null;
      });
    }
    if (!this.negotiatedValue) return forward();
    const local = (result: QmpResult): Plan => ({
      kind: 'local',
      reply: Object.hasOwn(msg, 'id') ? { ...result, id: msg['id'] } : { ...result },
    });
    const guest = this.guest;
    switch (name) {
      case 'query-sev':
        return forward((reply) => (Object.hasOwn(reply, 'return') ? withResult(reply, { return: guest.querySev() }) : null));
      case 'query-sev-launch-measure':
        return forward((reply) => (errorDesc(reply) === NOT_SEV.measure ? withResult(reply, guest.queryLaunchMeasure()) : null));
      case 'query-sev-capabilities':
        return forward((reply) => {
          const desc = errorDesc(reply);
          return desc !== null && (NOT_SEV.capabilities as readonly string[]).includes(desc)
            ? withResult(reply, guest.queryCapabilities())
            : null;
        });
      case 'sev-inject-launch-secret':
        return forward((reply) => {
          if (errorDesc(reply) !== NOT_SEV.inject) return null;
          const outcome = guest.injectLaunchSecret({
            packetHeader: String(args['packet-header']),
            secret: String(args['secret']),
            ...(typeof args['gpa'] === 'number' ? { gpa: args['gpa'] } : {}),
          });
          if (outcome.kind === 'accepted') this.hooks.secretAccepted(outcome.injected);
          else if ('error' in outcome.result) this.hooks.secretRefused(outcome.result.error.desc, outcome.reason);
          return withResult(reply, outcome.result);
        });
      case 'query-sev-attestation-report':
        return forward((reply) =>
          errorDesc(reply) === NOT_SEV.attestation
            ? withResult(reply, guest.queryAttestationReport(String(args['mnonce']), this.hooks.randomBytes(ATTESTATION_SIGNATURE_BYTES)))
            : null,
        );
      case 'human-monitor-command': {
        if (!conforms(args, HMP_ARGS)) return forward();
        const hmp = parseHmpCommandLine(args['command-line'] as string);
        if (hmp.name === 'info' && hmp.sub === 'sev') {
          return forward((reply) => (reply['return'] === NOT_SEV.hmpInfo ? withResult(reply, { return: guest.hmpInfoSev() }) : null));
        }
        const blocked = (hmp.name === 'migrate' && hmpMigrateHasUri(hmp.args)) || hmp.name === 'savevm';
        if (guest.migrationBlocked && blocked) return local({ return: `Error: ${guest.migrationBlocker}\r\n` });
        return forward();
      }
      case 'migrate':
        if (guest.migrationBlocked && conforms(args, MIGRATE_ARGS))
          return local({ error: { class: 'GenericError', desc: guest.migrationBlocker } });
        return forward();
      case 'snapshot-save': {
        if (!guest.migrationBlocked || !conforms(args, SNAPSHOT_SAVE_ARGS)) return forward();
        // QEMU accepts the job and fails it with the blocker; the real job is made to fail harmlessly
        // (no devices, a vmstate node that cannot exist) and its error is rewritten in query-jobs.
        this.shared.blockedJobs.add(args['job-id'] as string);
        const rewritten: Record<string, unknown> = {
          execute: name,
          arguments: { ...args, vmstate: UNMATCHABLE_VMSTATE_NODE, devices: [] },
        };
        if (Object.hasOwn(msg, 'id')) rewritten['id'] = msg['id'];
        return forward(null, formatQemuJson(rewritten));
      }
      case 'query-jobs':
        return forward((reply) => this.rewriteJobs(reply));
      case SIM_SNP_REPORT_COMMAND:
        return local(this.hooks.snpReport(args));
      default:
        return forward();
    }
  }

  private rewriteJobs(reply: QmpObject): QmpObject | null {
    const jobs = reply['return'];
    if (!Array.isArray(jobs) || this.shared.blockedJobs.size === 0) return null;
    return {
      ...reply,
      return: jobs.map((job: unknown) =>
        isRecord(job) && typeof job['id'] === 'string' && this.shared.blockedJobs.has(job['id']) && Object.hasOwn(job, 'error')
          ? { ...job, error: this.guest.migrationBlocker }
          : job,
      ),
    };
  }
}
