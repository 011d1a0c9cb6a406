// Typed inbound QMP messages, validated from parsed JSON (`unknown`), as qemu.qmp's models.py
// checks only what docs/interop/qmp-spec.rst mandates.
// Owns: the QmpInbound union and the shapes of greeting, return, error and event.
// Must not: do I/O, route messages, or judge a command's `return` payload (commands.ts does).
// Rule: a message carries exactly one of `QMP`, `return`, `error`, `event`; other members are
// tolerated (the spec lets servers add them) except where the spec fixes a type.
import { SupervisorError } from '../errors.js';
import { isRecord } from '../util/is-record.js';

/** qmp-spec "Server Greeting": `{"QMP": {"version": {...}, "capabilities": [...]}}`. */
export type QmpGreeting = {
  readonly QMP: {
    readonly version: {
      readonly qemu: { readonly major: number; readonly minor: number; readonly micro: number };
      readonly package: string;
    };
    readonly capabilities: readonly string[];
  };
};

/** qmp-spec "Error": `class` is matched on; `desc` is for humans and never parsed. */
export type QmpErrorInfo = {
  readonly class: string;
  readonly desc: string;
};

/** qmp-spec "Asynchronous events". */
export type QmpEvent = {
  readonly event: string;
  readonly data?: Readonly<Record<string, unknown>>;
  readonly timestamp: { readonly seconds: number; readonly microseconds: number };
};

export type QmpInbound =
  | { readonly kind: 'greeting'; readonly greeting: QmpGreeting }
  /** `id` is undefined when the reply carried none (JSON has no undefined, so absent ⇔ undefined). */
  | { readonly kind: 'return'; readonly id: unknown; readonly value: unknown }
  | { readonly kind: 'error'; readonly id: unknown; readonly error: QmpErrorInfo }
  | { readonly kind: 'event'; readonly event: QmpEvent };

const KINDS = ['QMP', 'return', 'error', 'event'] as const;

function isUint(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function protocolError(message: string, details: Record<string, unknown> = {}): SupervisorError {
  return new SupervisorError('SUP_ERR_QMP_PROTOCOL', message, { details });
}

/**
 * Validate one parsed inbound QMP value.
 * @throws SUP_ERR_QMP_PROTOCOL when it is not an object, carries none or several of
 *   `QMP`/`return`/`error`/`event`, or a mandated member has the wrong type.
 * @throws SUP_ERR_QMP_GREETING when it is a greeting of the wrong shape.
 */
export function parseInbound(value: unknown): QmpInbound {
  if (!isRecord(value)) {
    throw protocolError(
      `QMP message is not a JSON object (got ${Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value})`,
    );
  }
  let found: (typeof KINDS)[number] | undefined;
  for (const key of KINDS) {
    if (Object.hasOwn(value, key)) {
      if (found !== undefined) throw protocolError(`QMP message has both '${found}' and '${key}'`, { members: [found, key] });
      found = key;
    }
  }
  switch (found) {
    case 'return':
      return { kind: 'return', id: value['id'], value: value['return'] };
    case 'error':
      return { kind: 'error', id: value['id'], error: parseErrorInfo(value['error']) };
    case 'event':
      return { kind: 'event', event: parseEvent(value) };
    case 'QMP':
      return { kind: 'greeting', greeting: parseGreeting(value) };
    case undefined:
      throw protocolError("QMP message has none of 'QMP', 'return', 'error', 'event'", { members: Object.keys(value).slice(0, 8) });
  }
}

/** @throws SUP_ERR_QMP_PROTOCOL */
export function parseErrorInfo(value: unknown): QmpErrorInfo {
  if (!isRecord(value) || typeof value['class'] !== 'string' || typeof value['desc'] !== 'string') {
    throw protocolError("QMP error reply lacks string 'class' and 'desc'");
  }
  return { class: value['class'], desc: value['desc'] };
}

function parseEvent(value: Record<string, unknown>): QmpEvent {
  const name = value['event'];
  if (typeof name !== 'string' || name.length === 0) throw protocolError("QMP event has no string 'event' name");
  const ts = value['timestamp'];
  if (!isRecord(ts) || !isUint(ts['seconds']) || !isUint(ts['microseconds'])) {
    throw protocolError(`QMP event ${name} has no valid 'timestamp'`, { event: name });
  }
  const timestamp = { seconds: ts['seconds'], microseconds: ts['microseconds'] };
  const data = value['data'];
  if (data === undefined) return { event: name, timestamp };
  if (!isRecord(data)) throw protocolError(`QMP event ${name} has non-object 'data'`, { event: name });
  return { event: name, data, timestamp };
}

function parseGreeting(value: Record<string, unknown>): QmpGreeting {
  const qmp = value['QMP'];
  const bad = (what: string): SupervisorError => new SupervisorError('SUP_ERR_QMP_GREETING', `QMP greeting is malformed: ${what}`);
  if (!isRecord(qmp)) throw bad("'QMP' is not an object");
  const version = qmp['version'];
  if (!isRecord(version)) throw bad("'version' is not an object");
  const qemu = version['qemu'];
  if (!isRecord(qemu) || !isUint(qemu['major']) || !isUint(qemu['minor']) || !isUint(qemu['micro'])) {
    throw bad("'version.qemu' lacks integer major, minor, micro");
  }
  const pkg = version['package'];
  if (typeof pkg !== 'string') throw bad("'version.package' is not a string");
  const caps = qmp['capabilities'];
  if (!Array.isArray(caps)) throw bad("'capabilities' is not an array");
  const capabilities: string[] = [];
  for (const cap of caps) {
    if (typeof cap !== 'string') throw bad("'capabilities' has a non-string member");
    capabilities.push(cap);
  }
  return {
    QMP: {
      version: { qemu: { major: qemu['major'], minor: qemu['minor'], micro: qemu['micro'] }, package: pkg },
      capabilities,
    },
  };
}
