// ClientSession: QEMU 7.2's negotiation and request checks, text for text (each expected reply
// below was taken from the real 7.2 over its monitor socket; integration/proxy/ re-checks them
// against QEMU), ids echoed as any JSON value, the decision applied to execute and exec-oob, and
// the forwarded request being our own object with nothing of the client's but name and arguments.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClientSession, isOutOfBand, qdictOrder, type SessionAction } from '../../../src/proxy/client-session.js';
import { QMP_COMMANDS, classifyCommand } from '../../../src/policy/qmp-policy.js';
import { decide, type DecideContext } from '../../../src/proxy/decide.js';

const HELD: DecideContext = { vmState: 'held', held: true, sev: true, allow: [], deny: [] };

function fresh(offered: readonly string[] = ['oob']): ClientSession {
  return new ClientSession(offered);
}

function negotiated(oob = false, offered: readonly string[] = ['oob']): ClientSession {
  const session = fresh(offered);
  const action = session.handle(
    oob ? { execute: 'qmp_capabilities', arguments: { enable: ['oob'] } } : { execute: 'qmp_capabilities' },
    HELD,
  );
  expect(action).toEqual({ kind: 'reply', reply: { return: {} } });
  return session;
}

function reply(action: SessionAction): Record<string, unknown> {
  if (action.kind !== 'reply') throw new Error(`expected a local reply, got a forward of ${action.command}`);
  return action.reply;
}

const err = (cls: string, desc: string, id?: unknown): Record<string, unknown> =>
  id === undefined ? { error: { class: cls, desc } } : { error: { class: cls, desc }, id };

describe('before negotiation (QEMU 7.2 texts)', () => {
  it.each([
    [
      'a command',
      { execute: 'query-status', id: 1 },
      err('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'", 1),
    ],
    [
      'an unknown command',
      { execute: 'nonexist', id: 9 },
      err('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'", 9),
    ],
    [
      'a refused command (nothing is decided yet)',
      { execute: 'migrate', id: 'm' },
      err('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'", 'm'),
    ],
    [
      'exec-oob (oob is not enabled yet)',
      { 'exec-oob': 'yank', id: 2 },
      err('GenericError', "QMP input member 'exec-oob' is unexpected", 2),
    ],
    ['a non-object (no id)', [1], err('GenericError', 'QMP input must be a JSON object')],
    [
      'an unknown capability',
      { execute: 'qmp_capabilities', arguments: { enable: ['foo'] }, id: 3 },
      err('GenericError', "Parameter 'null' does not accept value 'foo'", 3),
    ],
    [
      'enable not a list',
      { execute: 'qmp_capabilities', arguments: { enable: 'oob' }, id: 4 },
      err('GenericError', "Invalid parameter type for 'enable', expected: array", 4),
    ],
    [
      'an extra argument',
      { execute: 'qmp_capabilities', arguments: { x: 1 }, id: 5 },
      err('GenericError', "Parameter 'x' is unexpected", 5),
    ],
    [
      'a non-string capability',
      { execute: 'qmp_capabilities', arguments: { enable: [1] }, id: 6 },
      err('GenericError', "Invalid parameter type for 'enable[0]', expected: string", 6),
    ],
    [
      'arguments not an object',
      { execute: 'qmp_capabilities', arguments: [], id: 7 },
      err('GenericError', "QMP input member 'arguments' must be an object", 7),
    ],
    ['an extra member', { execute: 'qmp_capabilities', foo: 1, id: 8 }, err('GenericError', "QMP input member 'foo' is unexpected", 8)],
    ['no execute', { id: 10 }, err('GenericError', "QMP input lacks member 'execute'", 10)],
  ])('%s', (_what, message, expected) => {
    const session = fresh();
    expect(reply(session.handle(message, HELD))).toEqual(expected);
    expect(session.isNegotiated).toBe(false);
  });

  it('negotiates with duplicated oob and an object id, then refuses a second negotiation', () => {
    const session = fresh();
    expect(
      reply(session.handle({ execute: 'qmp_capabilities', arguments: { enable: ['oob', 'oob'] }, id: { a: [1, null] } }, HELD)),
    ).toEqual({
      return: {},
      id: { a: [1, null] },
    });
    expect(session.isNegotiated).toBe(true);
    expect(session.oob).toBe(true);
    expect(reply(session.handle({ execute: 'qmp_capabilities', id: 11 }, HELD))).toEqual(
      err('CommandNotFound', 'Capabilities negotiation is already complete, command ignored', 11),
    );
    expect(reply(session.handle({ execute: 'qmp_capabilities', arguments: { enable: ['oob'] }, id: 12 }, HELD))).toEqual(
      err('CommandNotFound', 'Capabilities negotiation is already complete, command ignored', 12),
    );
    expect(reply(session.handle({ 'exec-oob': 'qmp_capabilities', id: 13 }, HELD))).toEqual(
      err('GenericError', 'The command qmp_capabilities does not support OOB', 13),
    );
  });

  it('refuses oob when the greeting did not offer it (the upstream has no oob)', () => {
    const session = fresh([]);
    expect(reply(session.handle({ execute: 'qmp_capabilities', arguments: { enable: ['oob', 'oob'] } }, HELD))).toEqual(
      err('GenericError', 'Capability oob, oob not available'),
    );
    expect(session.isNegotiated).toBe(false);
    expect(reply(session.handle({ execute: 'qmp_capabilities', arguments: { enable: [] } }, HELD))).toEqual({ return: {} });
    expect(session.oob).toBe(false);
    expect(reply(session.handle({ 'exec-oob': 'query-yank', id: 1 }, HELD))).toEqual(
      err('GenericError', "QMP input member 'exec-oob' is unexpected", 1),
    );
  });
});

describe('after negotiation: request checks in QEMU order (texts from 7.2)', () => {
  it.each([
    [{ foo: 1, execute: 1 }, "QMP input member 'execute' must be a string"],
    [{ x: 1, execute: 1 }, "QMP input member 'x' is unexpected"],
    [{ execute: 1, arguments: [] }, "QMP input member 'execute' must be a string"],
    [{ extra: 1, arguments: [] }, "QMP input member 'extra' is unexpected"],
    [{ a: 1, zz: 2 }, "QMP input member 'a' is unexpected"],
    [{ zz: 2, a: 1 }, "QMP input member 'a' is unexpected"],
    [{ arguments: 5, 'exec-oob': 3 }, "QMP input member 'exec-oob' must be a string"],
    [{ execute: 'query-status', 'exec-oob': 'x' }, "QMP input member 'execute' clashes with 'exec-oob'"],
    [{ execute: 'query-status', 'exec-oob': 1 }, "QMP input member 'exec-oob' must be a string"],
  ])('%j', (message, desc) => {
    expect(reply(negotiated(true).handle(message, HELD))).toEqual(err('GenericError', desc));
  });

  it('keeps the id on check errors when the request is an object', () => {
    expect(reply(negotiated(true).handle({ 'exec-oob': 'query-status', arguments: [], id: 'q' }, HELD))).toEqual(
      err('GenericError', "QMP input member 'arguments' must be an object", 'q'),
    );
  });

  it('orders keys as QEMU iterates its QDict (bucket order, later insertion first within a bucket)', () => {
    expect(qdictOrder(['id', 'arguments', 'execute', 'exec-oob'])).toEqual(['exec-oob', 'execute', 'arguments', 'id']);
    expect(qdictOrder(['foo', 'execute'])).toEqual(['execute', 'foo']);
    expect(qdictOrder(['x', 'execute'])).toEqual(['x', 'execute']);
  });
});

describe('ids and forwarding', () => {
  const IDS: unknown[] = [0, -1, 1.5, 'a', '', 's1', null, true, [], [1, 'x', null], {}, { a: [1, { b: null }] }, '\u00e9\u{1f600}'];

  it.each(IDS.map((id) => [JSON.stringify(id), id]))('echoes id %s on refusals and keeps it for forwards', (_text, id) => {
    const session = negotiated();
    expect(reply(session.handle({ execute: 'migrate', arguments: { uri: 'exec:true' }, id }, HELD))).toEqual(
      err('GenericError', 'migrate refused by sevsup: migration', id),
    );
    const action = session.handle({ execute: 'query-status', id }, HELD);
    expect(action).toEqual({
      kind: 'forward',
      command: 'query-status',
      oob: false,
      request: { execute: 'query-status' },
      id: { value: id },
    });
  });

  it('forwards no id member when the client sent none, and only name and arguments', () => {
    const args = { path: '/machine' };
    const action = negotiated().handle({ arguments: args, execute: 'qom-list' }, HELD);
    expect(action).toEqual({
      kind: 'forward',
      command: 'qom-list',
      oob: false,
      request: { execute: 'qom-list', arguments: args },
      id: null,
    });
  });

  it('forwards exec-oob as exec-oob once oob is enabled, and refuses refused commands either way', () => {
    const session = negotiated(true);
    expect(session.handle({ 'exec-oob': 'query-yank', id: 1 }, HELD)).toEqual({
      kind: 'forward',
      command: 'query-yank',
      oob: true,
      request: { 'exec-oob': 'query-yank' },
      id: { value: 1 },
    });
    const refused = session.handle({ 'exec-oob': 'migrate-pause', id: 2 }, HELD);
    expect(refused).toMatchObject({
      kind: 'reply',
      reply: err('GenericError', 'migrate-pause refused by sevsup: migration', 2),
      refusal: { reason: 'migration' },
    });
  });

  it('refuses cont while held and lets it through when not', () => {
    expect(negotiated().handle({ execute: 'cont' }, HELD)).toMatchObject({ kind: 'reply', refusal: { reason: 'held' } });
    expect(negotiated().handle({ execute: 'cont' }, { ...HELD, held: false, vmState: 'running' })).toMatchObject({
      kind: 'forward',
      command: 'cont',
    });
  });

  it('isOutOfBand is QEMU qmp_is_oob: exec-oob without execute, whatever else is wrong', () => {
    expect(isOutOfBand({ 'exec-oob': 1 })).toBe(true);
    expect(isOutOfBand({ 'exec-oob': 'x', execute: 'y' })).toBe(false);
    expect(isOutOfBand({ execute: 'x' })).toBe(false);
    expect(isOutOfBand([{ 'exec-oob': 'x' }])).toBe(false);
  });

  it('never throws and never forwards a command decide() refuses (any JSON value, any name)', () => {
    const names = fc.oneof(fc.constantFrom(...QMP_COMMANDS.keys()), fc.string());
    const request = fc
      .record(
        {
          member: fc.constantFrom('execute', 'exec-oob'),
          name: names,
          args: fc.oneof(fc.dictionary(fc.string(), fc.jsonValue()), fc.record({ 'command-line': fc.string() })),
          id: fc.jsonValue(),
        },
        { requiredKeys: ['member', 'name'] },
      )
      .map(({ member, name, args, id }) => ({
        [member]: name,
        ...(args === undefined ? {} : { arguments: args }),
        ...(id === undefined ? {} : { id }),
      }));
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), request), fc.boolean(), (value, oob) => {
        const action = negotiated(oob).handle(value, HELD);
        if (action.kind !== 'forward') return;
        expect(Object.keys(action.request).every((k) => k === 'execute' || k === 'exec-oob' || k === 'arguments')).toBe(true);
        expect(decide(value, HELD).allow).toBe(true);
        expect(classifyCommand(action.command).verdict).toBe('allowed');
      }),
      { numRuns: 2000 },
    );
  });
});
