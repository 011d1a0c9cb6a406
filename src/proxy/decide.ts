// decide(): the proxy's verdict on one strictly parsed client message. Pure; owns the order in
// which the policy (policy/qmp-policy.ts), the HMP reading (hmp.ts), the hold and the VM's
// qmp-allow/qmp-deny apply. Must not: throw (any JSON value is a possible input), do I/O, or
// let a VM's qmp-allow lift a memory-family refusal.
// Order: shape → final refusals (memory family, launch secret, supervisor channel) → argument
// rules → HMP → transaction actions → hold → qmp-deny → re-allowable refusals (qmp-allow) → allowed.
// A transaction action gets exactly the verdict its command would get sent alone.
import {
  ADD_CLIENT_PROTOCOLS,
  HMP_FAMILIES,
  HMP_INFO_ALLOWED,
  HMP_INFO_REFUSED,
  PATH_VALUED_ARGUMENTS,
  REALLOWABLE_REASONS,
  SUPERVISOR_CHARDEV_IDS,
  TRANSACTION_ACTIONS,
  classifyCommand,
  guardedQomComponent,
  pathValuedProperty,
  qomSetProblem,
  refusedDeviceDriver,
  refusedNetdevType,
  refusedObjectType,
  type RefusalReason,
} from '../policy/qmp-policy.js';
import { HMP_INFO, parseHmpCommandLine } from '../qemu/hmp.js';
import { isRecord } from '../util/is-record.js';

export type { RefusalReason } from '../policy/qmp-policy.js';

export interface DecideContext {
  /** The VM's lifecycle state (for the audit log; decisions use `held`). */
  readonly vmState: string;
  /** The guest is held for attestation: `cont` is refused. */
  readonly held: boolean;
  /** Whether the guest is an SEV guest. The refusals are the same either way: never looser. */
  readonly sev: boolean;
  /** The VM's qmp-allow: exact names whose re-allowable refusal (unstable, screen, unknown) is lifted. */
  readonly allow: readonly string[];
  /** The VM's qmp-deny: exact names refused on top of the policy. */
  readonly deny: readonly string[];
}

export type Decision =
  | { readonly allow: true; readonly command: string; readonly why: string }
  | {
      readonly allow: false;
      /** The command name as sent; null when the message names none. */
      readonly command: string | null;
      readonly reason: RefusalReason;
      /** `"<command> refused by sevsup: <reason>"`, the text of the client's error reply. */
      readonly message: string;
      /** One sentence on why, for the audit log. */
      readonly detail: string;
      /** For human-monitor-command: the HMP command (and `info` sub-command) QEMU would run. */
      readonly hmp?: { readonly name: string | null; readonly sub: string | null };
    };

type Refusal = Extract<Decision, { allow: false }>;

/** The members QEMU 7.2 accepts at the top level of a command (qapi/qmp-dispatch.c). */
const TOP_LEVEL_MEMBERS: ReadonlySet<string> = new Set(['execute', 'exec-oob', 'arguments', 'id']);

/** Client-chosen names are echoed this far in messages: enough to recognise, never a huge echo. */
const MAX_NAME_IN_MESSAGE = 64;

const HMP_COMMAND = 'human-monitor-command';

function shorten(text: string): string {
  return text.length > MAX_NAME_IN_MESSAGE ? `${text.slice(0, MAX_NAME_IN_MESSAGE)}…` : text;
}

function own(obj: Record<string, unknown> | undefined, key: string): unknown {
  return obj !== undefined && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

function refuse(command: string | null, reason: RefusalReason, detail: string, hmp?: Refusal['hmp']): Refusal {
  const message = `${command === null ? 'QMP input' : shorten(command)} refused by sevsup: ${reason}`;
  return hmp === undefined ? { allow: false, command, reason, message, detail } : { allow: false, command, reason, message, detail, hmp };
}

/** A string member the rule needs, or the bad-message refusal saying it is missing. */
function stringArg(name: string, args: Record<string, unknown> | undefined, key: string): string | Refusal {
  const value = own(args, key);
  return typeof value === 'string' ? value : refuse(name, 'bad-message', `${name} needs a string '${key}'`);
}

/** Argument rules that close indirect paths to guest memory and to sevsup's own monitor. */
function checkArguments(name: string, args: Record<string, unknown> | undefined): Refusal | null {
  const pathArgument = PATH_VALUED_ARGUMENTS.get(name);
  if (pathArgument !== undefined && own(args, pathArgument.key) !== undefined) {
    return refuse(name, 'host-access', `'${pathArgument.key}' ${pathArgument.why}; omit it`);
  }
  switch (name) {
    case 'device_add': {
      const driver = stringArg(name, args, 'driver');
      if (typeof driver !== 'string') return driver;
      const reason = refusedDeviceDriver(driver);
      if (reason !== null) {
        const what = reason === 'host-access' ? 'opens a host file or device' : 'reaches guest memory';
        return refuse(name, reason, `device '${shorten(driver)}' ${what}`);
      }
      // QEMU (often root) opens these from the host, e.g. `romfile` into the guest's option ROM;
      // "" means none (the usual way to drop a ROM) and passes.
      for (const key of Object.keys(args ?? {})) {
        if (pathValuedProperty(key) && own(args, key) !== '') {
          return refuse(name, 'host-access', `'${shorten(key)}' makes QEMU open a host path or device; omit it (or give "")`);
        }
      }
      return null;
    }
    case 'object-del': {
      // Deleting the confidential-guest object or a RAM back-end pulls them from under the guest.
      const id = stringArg(name, args, 'id');
      if (typeof id !== 'string') return id;
      return guardedQomComponent(id)
        ? refuse(name, 'qom-property', `'${shorten(id)}' is the confidential-guest object or a memory back-end`)
        : null;
    }
    case 'qom-set': {
      const path = stringArg(name, args, 'path');
      if (typeof path !== 'string') return path;
      const property = stringArg(name, args, 'property');
      if (typeof property !== 'string') return property;
      const problem = qomSetProblem(path, property);
      return problem === null ? null : refuse(name, problem.reason, `qom-set refused: ${shorten(problem.why)}`);
    }

    case 'object-add': {
      const type = stringArg(name, args, 'qom-type');
      if (typeof type !== 'string') return type;
      const reason = refusedObjectType(type);
      return reason === null ? null : refuse(name, reason, `object '${shorten(type)}' would hold or map guest memory`);
    }
    case 'netdev_add': {
      const type = stringArg(name, args, 'type');
      if (typeof type !== 'string') return type;
      const reason = refusedNetdevType(type);
      return reason === null ? null : refuse(name, reason, `netdev '${shorten(type)}' maps guest memory elsewhere`);
    }
    case 'add_client': {
      const protocol = stringArg(name, args, 'protocol');
      if (typeof protocol !== 'string') return protocol;
      return ADD_CLIENT_PROTOCOLS.has(protocol)
        ? null
        : refuse(name, 'supervisor-channel', 'add_client to a chardev could open an unfiltered monitor session');
    }
    case 'chardev-change':
    case 'chardev-remove': {
      const id = stringArg(name, args, 'id');
      if (typeof id !== 'string') return id;
      return SUPERVISOR_CHARDEV_IDS.has(id) ? refuse(name, 'supervisor-channel', "that chardev is sevsup's own monitor") : null;
    }
    case 'yank': {
      const instances = own(args, 'instances');
      if (!Array.isArray(instances)) return refuse(name, 'bad-message', "yank needs an array 'instances'");
      for (const instance of instances) {
        if (!isRecord(instance)) return refuse(name, 'bad-message', 'yank instances must be objects');
        const id = own(instance, 'id');
        if (own(instance, 'type') === 'chardev' && typeof id === 'string' && SUPERVISOR_CHARDEV_IDS.has(id)) {
          return refuse(name, 'supervisor-channel', "yanking sevsup's own monitor would cut the supervisor off");
        }
      }
      return null;
    }
    default:
      return null;
  }
}

/** human-monitor-command: only read-only `info` sub-commands pass. */
function checkHmp(args: Record<string, unknown> | undefined): Refusal | null {
  const line = own(args, 'command-line');
  if (typeof line !== 'string') return refuse(HMP_COMMAND, 'bad-message', "human-monitor-command needs a string 'command-line'");
  const parsed = parseHmpCommandLine(line);
  const hmp = { name: parsed.name, sub: parsed.sub };
  if (parsed.name === null) return refuse(HMP_COMMAND, 'hmp', 'blank HMP command line', hmp);
  if (parsed.name === HMP_INFO && parsed.known) {
    if (parsed.sub === null || HMP_INFO_ALLOWED.has(parsed.sub)) return null;
    const reason = HMP_INFO_REFUSED.get(parsed.sub) ?? 'hmp';
    return refuse(HMP_COMMAND, reason, `HMP 'info ${shorten(parsed.sub)}' is not a read-only info sevsup allows`, hmp);
  }
  if (parsed.name === HMP_INFO) {
    return refuse(HMP_COMMAND, 'hmp', `HMP 'info ${shorten(parsed.sub ?? '')}' is not a known info sub-command`, hmp);
  }
  const reason = HMP_FAMILIES.get(parsed.name) ?? 'hmp';
  return refuse(HMP_COMMAND, reason, `HMP '${shorten(parsed.name)}': only read-only 'info' commands are allowed`, hmp);
}

/**
 * transaction: each action is decided as the command of its type sent alone (qmp-allow, qmp-deny
 * and argument rules included); the first refusal refuses the whole transaction with its reason.
 */
function checkTransaction(args: Record<string, unknown> | undefined, ctx: DecideContext): Refusal | null {
  const name = 'transaction';
  const actions = own(args, 'actions');
  if (!Array.isArray(actions)) return refuse(name, 'bad-message', "transaction needs an array 'actions'");
  for (const [index, action] of actions.entries()) {
    if (!isRecord(action)) return refuse(name, 'bad-message', `transaction action ${index} must be an object`);
    const type = own(action, 'type');
    if (typeof type !== 'string') return refuse(name, 'bad-message', `transaction action ${index} needs a string 'type'`);
    if (!TRANSACTION_ACTIONS.has(type)) {
      return refuse(name, 'unknown', `transaction action ${index} type '${shorten(type)}' is not one sevsup knows`);
    }
    if (type === 'abort') continue;
    const data = own(action, 'data');
    if (data !== undefined && !isRecord(data)) return refuse(name, 'bad-message', `transaction action ${index} 'data' must be an object`);
    const alone = decideUnchecked(data === undefined ? { execute: type } : { execute: type, arguments: data }, ctx);
    if (!alone.allow) return refuse(name, alone.reason, `transaction action ${index} (${type}): ${alone.detail}`);
  }
  return null;
}

function decideUnchecked(msg: unknown, ctx: DecideContext): Decision {
  if (!isRecord(msg)) return refuse(null, 'bad-message', 'QMP input must be a JSON object');
  for (const key of Object.keys(msg)) {
    if (!TOP_LEVEL_MEMBERS.has(key)) return refuse(null, 'bad-message', `QMP input member '${shorten(key)}' is unexpected`);
  }
  const hasExecute = Object.hasOwn(msg, 'execute');
  const hasOob = Object.hasOwn(msg, 'exec-oob');
  if (hasExecute && hasOob) return refuse(null, 'bad-message', "QMP input member 'execute' clashes with 'exec-oob'");
  if (!hasExecute && !hasOob) return refuse(null, 'bad-message', "QMP input lacks member 'execute'");
  const member = hasExecute ? 'execute' : 'exec-oob';
  const name = msg[member];
  if (typeof name !== 'string') return refuse(null, 'bad-message', `QMP input member '${member}' must be a string`);
  let args: Record<string, unknown> | undefined;
  if (Object.hasOwn(msg, 'arguments')) {
    const value = msg['arguments'];
    if (!isRecord(value)) return refuse(name, 'bad-message', "QMP input member 'arguments' must be an object");
    args = value;
  }

  const cls = classifyCommand(name);
  if (cls.verdict === 'refused' && !REALLOWABLE_REASONS.has(cls.reason)) return refuse(name, cls.reason, cls.why);
  // A re-allowable refusal stands unless the VM's qmp-allow lifts it; only then do the argument
  // rules below get a say (they stay final for lifted commands too).
  if (cls.verdict === 'refused' && !ctx.allow.includes(name)) {
    return ctx.deny.includes(name) ? refuse(name, 'config-deny', "the VM's qmp-deny lists it") : refuse(name, cls.reason, cls.why);
  }
  const argumentRefusal = checkArguments(name, args);
  if (argumentRefusal !== null) return argumentRefusal;
  if (name === HMP_COMMAND) {
    const hmpRefusal = checkHmp(args);
    if (hmpRefusal !== null) return hmpRefusal;
  }
  if (name === 'transaction') {
    const actionRefusal = checkTransaction(args, ctx);
    if (actionRefusal !== null) return actionRefusal;
  }
  if (name === 'cont' && ctx.held) {
    return refuse(name, 'held', 'the guest is held for attestation; resume it with sevsup attest --approve');
  }
  if (ctx.deny.includes(name)) return refuse(name, 'config-deny', "the VM's qmp-deny lists it");
  if (cls.verdict === 'refused') {
    return ctx.allow.includes(name)
      ? { allow: true, command: name, why: `allowed by the VM's qmp-allow (otherwise ${cls.reason})` }
      : refuse(name, cls.reason, cls.why);
  }
  return { allow: true, command: name, why: cls.why };
}

/**
 * The proxy's decision on one message (the output of parseStrictJson: any JSON value).
 * Looks at `execute` and `exec-oob` alike; refuses a message with both, neither, or a
 * non-string name. Never throws: anything unexpected is a `bad-message` refusal.
 */
export function decide(msg: unknown, ctx: DecideContext): Decision {
  try {
    return decideUnchecked(msg, ctx);
  } catch {
    return refuse(null, 'bad-message', 'the message could not be examined');
  }
}
