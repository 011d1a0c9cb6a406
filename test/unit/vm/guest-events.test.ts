import { describe, expect, it } from 'vitest';
import { exitEnding, reactToEvent, type WatchedGuest } from '../../../src/vm/guest-events.js';

const guest = (over: Partial<WatchedGuest> = {}): WatchedGuest => ({ vm: 'vm1', state: 'running', pid: 42, stopRequested: false, ...over });
const event = (name: string, data?: Record<string, unknown>) => ({
  event: name,
  ...(data === undefined ? {} : { data }),
  timestamp: { seconds: 0, microseconds: 0 },
});

describe('reactToEvent', () => {
  it('STOP pauses a running guest, RESUME runs a paused one; anything else changes nothing', () => {
    expect(reactToEvent(event('STOP'), guest())).toEqual({ next: 'paused', report: { event: 'paused', reason: 'QEMU reported STOP' } });
    expect(reactToEvent(event('STOP'), guest({ state: 'held' }))).toEqual({});
    expect(reactToEvent(event('RESUME'), guest({ state: 'paused' }))).toEqual({ next: 'running', report: { event: 'running', pid: 42 } });
    expect(reactToEvent(event('RESUME'), guest({ state: 'stopping' }))).toEqual({});
    expect(reactToEvent(event('BLOCK_JOB_READY'), guest())).toEqual({});
  });

  it('SHUTDOWN stops a live guest; a host signal sevsup did not send is a failure, one it sent is not', () => {
    expect(reactToEvent(event('SHUTDOWN', { guest: true, reason: 'guest-shutdown' }), guest())).toEqual({
      shutdown: 'guest-shutdown',
      next: 'stopping',
      report: { event: 'stopping', reason: 'guest shutdown (guest-shutdown)' },
    });
    const killed = reactToEvent(event('SHUTDOWN', { reason: 'host-signal' }), guest({ state: 'paused' }));
    expect([killed.error?.code, killed.next]).toEqual(['SUP_ERR_QEMU_SIGNALLED', 'stopping']);
    expect(reactToEvent(event('SHUTDOWN', { reason: 'host-signal' }), guest({ stopRequested: true })).error).toBeUndefined();
    expect(reactToEvent(event('SHUTDOWN'), guest({ state: 'stopping' }))).toEqual({ shutdown: 'unknown' });
  });
});

describe('exitEnding', () => {
  it("stopped when stopping or clean, naming a guest shutdown; failed with the earlier error or QEMU's end", () => {
    expect(exitEnding('vm1', 'running', { exitCode: 0, stderrTail: '', how: 'exited' }, null, true)).toEqual({
      kind: 'stopped',
      how: 'guest-shutdown',
    });
    expect(exitEnding('vm1', 'stopping', { signal: 'SIGTERM', stderrTail: '', how: 'sigterm' }, null, false)).toEqual({
      kind: 'stopped',
      how: 'sigterm',
    });
    const crashed = exitEnding('vm1', 'running', { exitCode: 1, stderrTail: 'qemu-system-x86_64: boom\n', how: 'exited' }, null, false);
    expect(crashed.kind === 'failed' && [crashed.error.code, crashed.error.message]).toEqual([
      'SUP_ERR_QEMU_EXITED',
      'VM vm1: QEMU exited with code 1 while the guest was running: qemu-system-x86_64: boom',
    ]);
    const signalled = reactToEvent(event('SHUTDOWN', { reason: 'host-signal' }), guest()).error ?? null;
    const ending = exitEnding('vm1', 'stopping', { exitCode: 0, stderrTail: '', how: 'exited' }, signalled, true);
    expect(ending.kind === 'failed' && ending.error.code).toBe('SUP_ERR_QEMU_SIGNALLED');
  });
});
