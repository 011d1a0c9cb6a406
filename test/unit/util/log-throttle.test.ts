// log-throttle: a burst per kind per window, the rest counted and reported once at the window's end.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogThrottle } from '../../../src/util/log-throttle.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('createLogThrottle', () => {
  it('admits `burst` lines per kind, counts the rest, reports them once when the window ends', () => {
    vi.useFakeTimers();
    const reports: [string, number][] = [];
    const throttle = createLogThrottle({ burst: 3, windowMs: 1000, onSuppressed: (kind, count) => reports.push([kind, count]) });
    const admitted = Array.from({ length: 10 }, () => throttle.admit('refused'));
    expect(admitted.filter(Boolean)).toHaveLength(3);
    expect(throttle.admit('idle')).toBe(true); // kinds are independent
    expect(reports).toEqual([]);
    vi.advanceTimersByTime(1000);
    expect(reports).toEqual([['refused', 7]]);
    // A new window admits again.
    expect(throttle.admit('refused')).toBe(true);
    throttle.close();
    expect(reports).toEqual([['refused', 7]]);
  });

  it('reports what is still counted on close', () => {
    const reports: [string, number][] = [];
    const throttle = createLogThrottle({ burst: 1, windowMs: 60_000, onSuppressed: (kind, count) => reports.push([kind, count]) });
    throttle.admit('a');
    throttle.admit('a');
    throttle.admit('a');
    throttle.close();
    expect(reports).toEqual([['a', 2]]);
  });
});
