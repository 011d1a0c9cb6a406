import { describe, expect, it } from 'vitest';
import { isSupervisorError } from '../../../src/errors.js';
import { parseInbound } from '../../../src/qmp/message.js';

const greeting = {
  QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: 'Debian 1:7.2+dfsg-7+deb12u18+b3' }, capabilities: ['oob'] },
};

function codeAndMessage(value: unknown): [string, string] {
  try {
    parseInbound(value);
  } catch (error) {
    if (isSupervisorError(error)) return [error.code, error.message];
    throw error;
  }
  throw new Error('expected parseInbound to throw');
}

describe('parseInbound', () => {
  it('recognises the four kinds', () => {
    expect(parseInbound(greeting)).toEqual({ kind: 'greeting', greeting });
    expect(parseInbound({ return: { a: 1 }, id: 's1' })).toEqual({ kind: 'return', id: 's1', value: { a: 1 } });
    expect(parseInbound({ return: [] })).toEqual({ kind: 'return', id: undefined, value: [] });
    expect(parseInbound({ error: { class: 'GenericError', desc: 'd' }, id: 3 })).toEqual({
      kind: 'error',
      id: 3,
      error: { class: 'GenericError', desc: 'd' },
    });
    const ts = { seconds: 1, microseconds: 2 };
    expect(parseInbound({ event: 'STOP', timestamp: ts })).toEqual({ kind: 'event', event: { event: 'STOP', timestamp: ts } });
    expect(parseInbound({ event: 'X', data: { a: [1] }, timestamp: ts })).toEqual({
      kind: 'event',
      event: { event: 'X', data: { a: [1] }, timestamp: ts },
    });
  });

  it('keeps only the documented members of a greeting and an error', () => {
    expect(parseInbound({ QMP: { ...greeting.QMP, extra: 1 } })).toEqual({ kind: 'greeting', greeting });
    expect(parseInbound({ error: { class: 'c', desc: 'd', more: true } })).toEqual({
      kind: 'error',
      id: undefined,
      error: { class: 'c', desc: 'd' },
    });
  });

  it.each([
    [null, 'SUP_ERR_QMP_PROTOCOL', 'QMP message is not a JSON object (got null)'],
    [[1], 'SUP_ERR_QMP_PROTOCOL', 'QMP message is not a JSON object (got array)'],
    ['x', 'SUP_ERR_QMP_PROTOCOL', 'QMP message is not a JSON object (got string)'],
    [{ id: 1 }, 'SUP_ERR_QMP_PROTOCOL', "QMP message has none of 'QMP', 'return', 'error', 'event'"],
    [{ return: 1, error: {} }, 'SUP_ERR_QMP_PROTOCOL', "QMP message has both 'return' and 'error'"],
    [{ QMP: {}, event: 'X' }, 'SUP_ERR_QMP_PROTOCOL', "QMP message has both 'QMP' and 'event'"],
    [{ error: { class: 'c' } }, 'SUP_ERR_QMP_PROTOCOL', "QMP error reply lacks string 'class' and 'desc'"],
    [{ error: 'boom' }, 'SUP_ERR_QMP_PROTOCOL', "QMP error reply lacks string 'class' and 'desc'"],
    [{ event: 7, timestamp: { seconds: 1, microseconds: 1 } }, 'SUP_ERR_QMP_PROTOCOL', "QMP event has no string 'event' name"],
    [{ event: 'STOP' }, 'SUP_ERR_QMP_PROTOCOL', "QMP event STOP has no valid 'timestamp'"],
    [{ event: 'STOP', timestamp: { seconds: -1, microseconds: 0 } }, 'SUP_ERR_QMP_PROTOCOL', "QMP event STOP has no valid 'timestamp'"],
    [
      { event: 'STOP', data: [1], timestamp: { seconds: 1, microseconds: 0 } },
      'SUP_ERR_QMP_PROTOCOL',
      "QMP event STOP has non-object 'data'",
    ],
    [{ QMP: [] }, 'SUP_ERR_QMP_GREETING', "QMP greeting is malformed: 'QMP' is not an object"],
    [
      { QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: 1 }, capabilities: [] } },
      'SUP_ERR_QMP_GREETING',
      "QMP greeting is malformed: 'version.package' is not a string",
    ],
    [
      { QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, capabilities: 'oob' } },
      'SUP_ERR_QMP_GREETING',
      "QMP greeting is malformed: 'capabilities' is not an array",
    ],
    [
      { QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, capabilities: [1] } },
      'SUP_ERR_QMP_GREETING',
      "QMP greeting is malformed: 'capabilities' has a non-string member",
    ],
  ])('%j → %s', (value, code, message) => {
    expect(codeAndMessage(value)).toEqual([code, message]);
  });
});
