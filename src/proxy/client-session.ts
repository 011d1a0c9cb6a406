// One proxy client's QMP protocol state: capabilities negotiation, the checks QEMU 7.2 applies to
// a request before it runs (monitor/qmp.c, qapi/qmp-dispatch.c), the decision, and the reply
// QEMU itself would give, text for text (verified against the real 7.2: integration/proxy/).
// Owns: what to answer locally and what to forward. Pure: no I/O, no clock.
// Must not: touch sockets or the upstream connection (proxy-server.ts does), or forward anything
// but its own re-serialisation of a strictly parsed, validated object.
import type { QmpRequest } from '../qmp/client.js';
import { decide, type DecideContext, type Decision } from './decide.js';
import { isRecord } from '../util/is-record.js';

export type Refusal = Extract<Decision, { allow: false }>;

/** The client's `id`, echoed exactly: any JSON value; null when the request had none. */
export type ClientId = { readonly value: unknown } | null;

/** What the proxy server should do with one message from a client. */
export type SessionAction =
  /** Answer the client directly; nothing reaches QEMU. */
  | { readonly kind: 'reply'; readonly reply: Record<string, unknown>; readonly refusal?: Refusal }
  /** Forward `request` (our own object) upstream, then answer with the client's id restored. */
  | { readonly kind: 'forward'; readonly command: string; readonly oob: boolean; readonly request: QmpRequest; readonly id: ClientId };

/** QEMU 7.2's QMPCapability enum (qapi/control.json). */
const KNOWN_CAPABILITIES: ReadonlySet<string> = new Set(['oob']);

const NEGOTIATE = 'qmp_capabilities';

function withId(reply: Record<string, unknown>, id: ClientId): Record<string, unknown> {
  if (id !== null) reply['id'] = id.value;
  return reply;
}

function errorReply(cls: string, desc: string, id: ClientId): Record<string, unknown> {
  return withId({ error: { class: cls, desc } }, id);
}

/**
 * QEMU's qmp_is_oob(): a request with `exec-oob` and no `execute` is dispatched at once, ahead of
 * queued in-band requests, whatever else is wrong with it (monitor/qmp.c handle_qmp_command).
 */
export function isOutOfBand(value: unknown): boolean {
  return isRecord(value) && Object.hasOwn(value, 'exec-oob') && !Object.hasOwn(value, 'execute');
}

// --- QEMU's member order ----------------------------------------------------------------------
// QEMU checks a request's members while iterating its QDict, so when a request has several
// problems the one it reports depends on that order: hash buckets ascending (tdb_hash(key) % 512),
// later insertions first within a bucket (qobject/qdict.c). Reproducing it makes every reply to a
// malformed request the one QEMU would give, not just one of the right kind.

const QDICT_BUCKET_MAX = 512;

/** tdb_hash from qobject/qdict.c over the key's UTF-8 bytes, in uint32 arithmetic. */
function qdictBucket(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) value = (value + (((bytes[i] ?? 0) << ((i * 5) % 24)) >>> 0)) >>> 0;
  return ((Math.imul(1103515243, value) + 12345) >>> 0) % QDICT_BUCKET_MAX;
}

const KNOWN_BUCKETS: ReadonlyMap<string, number> = new Map(
  ['execute', 'exec-oob', 'arguments', 'id', 'enable'].map((key) => [key, qdictBucket(key)]),
);

/** The keys of `obj` in the order QEMU's QDict iteration visits them. */
export function qdictOrder(keys: readonly string[]): string[] {
  if (keys.length < 2) return [...keys];
  return keys
    .map((key, index) => ({ key, index, bucket: KNOWN_BUCKETS.get(key) ?? qdictBucket(key) }))
    .sort((a, b) => a.bucket - b.bucket || b.index - a.index)
    .map((entry) => entry.key);
}

// --- the session ------------------------------------------------------------------------------

type Checked =
  | { readonly ok: true; readonly oob: boolean; readonly name: string; readonly args: Record<string, unknown> | undefined }
  | { readonly ok: false; readonly desc: string };

/**
 * qmp_dispatch_check_obj(): the request's members in QEMU's order. `exec-oob` is a member only
 * once oob is enabled; before that it is "unexpected", as in QEMU.
 */
function checkMembers(request: Record<string, unknown>, oobEnabled: boolean): Checked {
  let execKey: 'execute' | 'exec-oob' | undefined;
  let name = '';
  for (const key of qdictOrder(Object.keys(request))) {
    const value = request[key];
    if (key === 'execute' || (key === 'exec-oob' && oobEnabled)) {
      if (typeof value !== 'string') return { ok: false, desc: `QMP input member '${key}' must be a string` };
      if (execKey !== undefined) return { ok: false, desc: `QMP input member '${key}' clashes with '${execKey}'` };
      execKey = key;
      name = value;
    } else if (key === 'arguments') {
      if (!isRecord(value)) return { ok: false, desc: "QMP input member 'arguments' must be an object" };
    } else if (key !== 'id') {
      return { ok: false, desc: `QMP input member '${key}' is unexpected` };
    }
  }
  if (execKey === undefined) return { ok: false, desc: "QMP input lacks member 'execute'" };
  const args = request['arguments'];
  return { ok: true, oob: execKey === 'exec-oob', name, args: isRecord(args) ? args : undefined };
}

/**
 * The generated QAPI visitor for qmp_capabilities' arguments: `enable` element by element (type,
 * then enum value), then unexpected parameters. QEMU 7.2 names the enum's parameter 'null'.
 */
function checkNegotiationArguments(args: Record<string, unknown> | undefined): { enable: readonly string[] } | { desc: string } {
  const enable: string[] = [];
  if (args !== undefined && Object.hasOwn(args, 'enable')) {
    const list = args['enable'];
    if (!Array.isArray(list)) return { desc: "Invalid parameter type for 'enable', expected: array" };
    for (let i = 0; i < list.length; i++) {
      const cap: unknown = list[i];
      if (typeof cap !== 'string') return { desc: `Invalid parameter type for 'enable[${i}]', expected: string` };
      if (!KNOWN_CAPABILITIES.has(cap)) return { desc: `Parameter 'null' does not accept value '${cap}'` };
      enable.push(cap);
    }
  }
  const extra = args === undefined ? undefined : qdictOrder(Object.keys(args)).find((key) => key !== 'enable');
  return extra === undefined ? { enable } : { desc: `Parameter '${extra}' is unexpected` };
}

export class ClientSession {
  private negotiated = false;
  private oobEnabled = false;

  /** @param offered the capabilities this client's greeting offered (oob only if the upstream has it). */
  constructor(private readonly offered: readonly string[]) {}

  get isNegotiated(): boolean {
    return this.negotiated;
  }

  get oob(): boolean {
    return this.oobEnabled;
  }

  /**
   * What to do with one strictly parsed JSON value from the client. Checks run in QEMU's order:
   * shape, then negotiation mode, then (negotiated) the proxy's decision. Never throws.
   */
  handle(value: unknown, ctx: DecideContext): SessionAction {
    if (!isRecord(value)) return { kind: 'reply', reply: errorReply('GenericError', 'QMP input must be a JSON object', null) };
    const id: ClientId = Object.hasOwn(value, 'id') ? { value: value['id'] } : null;
    const checked = checkMembers(value, this.oobEnabled);
    if (!checked.ok) return { kind: 'reply', reply: errorReply('GenericError', checked.desc, id) };
    const { name, args, oob } = checked;

    if (!this.negotiated) {
      // Only qmp_capabilities exists in negotiation mode; QEMU rewrites "not found" to this text.
      if (name !== NEGOTIATE) {
        return { kind: 'reply', reply: errorReply('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'", id) };
      }
      return this.negotiate(args, id);
    }
    if (name === NEGOTIATE) {
      if (oob) return { kind: 'reply', reply: errorReply('GenericError', `The command ${NEGOTIATE} does not support OOB`, id) };
      const checkedArgs = checkNegotiationArguments(args);
      const desc = 'desc' in checkedArgs ? checkedArgs.desc : 'Capabilities negotiation is already complete, command ignored';
      return { kind: 'reply', reply: errorReply('desc' in checkedArgs ? 'GenericError' : 'CommandNotFound', desc, id) };
    }

    const decision = decide(value, ctx);
    if (!decision.allow) return { kind: 'reply', reply: errorReply('GenericError', decision.message, id), refusal: decision };
    const request: QmpRequest =
      args === undefined
        ? oob
          ? { 'exec-oob': name }
          : { execute: name }
        : oob
          ? { 'exec-oob': name, arguments: args }
          : { execute: name, arguments: args };
    return { kind: 'forward', command: name, oob, request, id };
  }

  private negotiate(args: Record<string, unknown> | undefined, id: ClientId): SessionAction {
    const checked = checkNegotiationArguments(args);
    if ('desc' in checked) return { kind: 'reply', reply: errorReply('GenericError', checked.desc, id) };
    // qmp_caps_accept(): every requested capability not offered, in request order.
    const unavailable = checked.enable.filter((cap) => !this.offered.includes(cap));
    if (unavailable.length > 0) {
      return { kind: 'reply', reply: errorReply('GenericError', `Capability ${unavailable.join(', ')} not available`, id) };
    }
    this.negotiated = true;
    this.oobEnabled = checked.enable.includes('oob');
    return { kind: 'reply', reply: withId({ return: {} }, id) };
  }
}
