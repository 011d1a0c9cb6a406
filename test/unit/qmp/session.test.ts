import { describe, expect, it } from 'vitest';
import { isSupervisorError } from '../../../src/errors.js';
import { PendingTable, RunstateMachine, type Runstate } from '../../../src/qmp/session.js';

describe('RunstateMachine', () => {
  it('notifies observers of each change once, with the previous state', () => {
    const machine = new RunstateMachine();
    const seen: [Runstate, Runstate][] = [];
    const off = machine.onChange((s, p) => seen.push([s, p]));
    machine.onChange(() => {
      throw new Error('observer bug');
    });
    machine.set('connecting');
    machine.set('connecting');
    machine.set('running');
    off();
    machine.set('idle');
    expect(seen).toEqual([
      ['connecting', 'idle'],
      ['running', 'connecting'],
    ]);
    expect(machine.state).toBe('idle');
  });

  it('require() throws SUP_ERR_QMP_STATE carrying state, required and the cause', () => {
    const machine = new RunstateMachine();
    machine.set('connecting');
    const cause = new Error('EOF');
    let caught: unknown;
    try {
      machine.require('running', 'execute', cause);
    } catch (error) {
      caught = error;
    }
    expect(isSupervisorError(caught) && [caught.code, caught.message, caught.details, caught.cause]).toEqual([
      'SUP_ERR_QMP_STATE',
      'cannot execute: QMP session is connecting, not running (ended: EOF)',
      { state: 'connecting', required: 'running', action: 'execute' },
      cause,
    ]);
    machine.set('running');
    expect(() => machine.require('running', 'execute')).not.toThrow();
  });
});

describe('PendingTable', () => {
  it('assigns ids from the reserved namespace and settles each entry once', async () => {
    const table = new PendingTable();
    const a = table.nextId();
    const b = table.nextId();
    expect([a, b]).toEqual(['s1', 's2']);
    const pa = table.add(a, 'query-status', { timeoutMs: 0 });
    expect(table.size).toBe(1);
    expect(table.settleReturn(a, 1)).toBe('settled');
    expect(table.settleReturn(a, 2)).toBe('unknown');
    expect(table.settleReturn(42, 2)).toBe('unknown');
    expect(await pa).toEqual({ return: 1 });
    expect(table.size).toBe(0);
  });

  it('a timed-out id is remembered as late, once', async () => {
    const table = new PendingTable();
    const id = table.nextId();
    await expect(table.add(id, 'slow', { timeoutMs: 5 })).rejects.toMatchObject({
      code: 'SUP_ERR_QMP_TIMEOUT',
      message: "QMP command 'slow' got no reply within 5 ms",
    });
    expect(table.settleReturn(id, {})).toBe('late');
    expect(table.settleReturn(id, {})).toBe('unknown');
  });

  it('addUnwrapped resolves with `return` and rejects an error reply through errorReply', async () => {
    const table = new PendingTable((command, error) => new Error(`${command}: ${error.class}/${error.desc}`));
    const ok = table.addUnwrapped('s1', 'a', { timeoutMs: 0 });
    const bad = table.addUnwrapped('s2', 'b', { timeoutMs: 0 });
    const raw = table.add('s3', 'c', { timeoutMs: 0 });
    expect(table.settleReturn('s1', { x: 1 })).toBe('settled');
    expect(table.settleError('s2', { class: 'GenericError', desc: 'no' })).toBe('settled');
    expect(table.settleError('s3', { class: 'GenericError', desc: 'no' })).toBe('settled');
    expect(await ok).toEqual({ x: 1 });
    await expect(bad).rejects.toThrow('b: GenericError/no');
    expect(await raw).toEqual({ error: { class: 'GenericError', desc: 'no' } });
  });

  it('one timer serves every deadline: a shorter timeout added later fires first, the longer one after', async () => {
    const table = new PendingTable();
    const order: string[] = [];
    const long = table.add('s1', 'long', { timeoutMs: 60 }).catch(() => order.push('long'));
    const short = table.add('s2', 'short', { timeoutMs: 10 }).catch(() => order.push('short'));
    const answered = table.add('s3', 'answered', { timeoutMs: 5 });
    expect(table.settleReturn('s3', 1)).toBe('settled');
    expect(await answered).toEqual({ return: 1 });
    await Promise.all([long, short]);
    expect(order).toEqual(['short', 'long']);
    expect(table.size).toBe(0);
  });

  it('an already aborted signal rejects without registering', async () => {
    const table = new PendingTable();
    const reason = new Error('stop');
    await expect(table.add(table.nextId(), 'x', { timeoutMs: 0, signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(table.size).toBe(0);
  });

  it('failAll rejects every entry with its own error and clears timers', async () => {
    const table = new PendingTable();
    const p1 = table.add(table.nextId(), 'a', { timeoutMs: 60_000 });
    const p2 = table.add(table.nextId(), 'b', { timeoutMs: 60_000 });
    table.failAll((command, id) => new Error(`${command}/${id}`));
    await expect(p1).rejects.toThrow('a/s1');
    await expect(p2).rejects.toThrow('b/s2');
    expect(table.size).toBe(0);
  });
});
