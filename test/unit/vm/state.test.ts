import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { VM_STATES, canTransition, isTerminal, isVmState, transition, type VmState } from '../../../src/vm/state.js';

describe('vm state machine', () => {
  it('walks the SEV launch path with a hold', () => {
    const path: VmState[] = ['defined', 'starting', 'measuring', 'held', 'resuming', 'running', 'paused', 'running', 'stopping', 'stopped'];
    let state: VmState = 'defined';
    for (const next of path.slice(1)) state = transition(state, next);
    expect(state).toBe('stopped');
  });

  it('lets a plain guest skip measuring', () => {
    expect(transition('starting', 'resuming')).toBe('resuming');
  });

  it('lets every non-terminal state fail', () => {
    for (const s of VM_STATES.filter((x) => !isTerminal(x))) expect(canTransition(s, 'failed')).toBe(true);
  });

  it.each<[VmState, VmState]>([
    ['held', 'running'], // never without cont (resuming)
    ['measuring', 'running'],
    ['starting', 'running'],
    ['starting', 'held'], // never held without a measurement
    ['failed', 'running'],
    ['stopped', 'stopped'],
    ['failed', 'failed'],
    ['defined', 'measuring'],
  ])('refuses %s → %s with SUP_ERR_VM_STATE', (from, to) => {
    expect(canTransition(from, to)).toBe(false);
    let caught: unknown;
    try {
      transition(from, to, 'demo');
    } catch (error) {
      caught = error;
    }
    expect(hasCode(caught, 'SUP_ERR_VM_STATE')).toBe(true);
    expect((caught as Error).message).toBe(
      `VM demo: cannot go from ${from} to ${to} (allowed from ${from}: ${VM_STATES.filter((s) => canTransition(from, s)).join(', ')})`,
    );
  });

  it('exact message for a held guest asked to run directly', () => {
    expect(() => transition('held', 'running', 'vm1')).toThrow(
      'VM vm1: cannot go from held to running (allowed from held: resuming, stopping, failed)',
    );
  });

  it('recognises its own states only', () => {
    expect(isVmState('held')).toBe(true);
    expect(isVmState('HELD')).toBe(false);
    expect(isVmState(3)).toBe(false);
  });

  it('has no unreachable state', () => {
    const reached = new Set<VmState>(['defined']);
    for (let changed = true; changed; ) {
      changed = false;
      for (const s of [...reached]) {
        for (const t of VM_STATES.filter((to) => canTransition(s, to))) {
          if (!reached.has(t)) {
            reached.add(t);
            changed = true;
          }
        }
      }
    }
    expect([...reached].sort()).toEqual([...VM_STATES].sort());
  });
});
