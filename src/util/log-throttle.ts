// Rate limit for repeated log lines: per kind of line, the first `burst` in each window are
// written; the rest are counted, and one "N similar lines suppressed" line says so when the window
// ends. Owns: the per-kind windows and their timers. Must not: decide what is logged or drop the
// count (a flood of refusals still shows up, as a number).
// Kinds are the caller's fixed names (never client input), so the table stays small.

export interface LogThrottleOptions {
  /** Lines of one kind written per window. */
  readonly burst: number;
  readonly windowMs: number;
  /** Called once per window in which lines of `kind` were suppressed, at the window's end. */
  readonly onSuppressed: (kind: string, count: number) => void;
}

export interface LogThrottle {
  /** Whether this line of `kind` is to be written; false means it was counted as suppressed. */
  admit(kind: string): boolean;
  /** Report what is still counted and stop the timers. */
  close(): void;
}

interface Window {
  readonly start: number;
  written: number;
  suppressed: number;
  timer: NodeJS.Timeout | undefined;
}

export function createLogThrottle(options: LogThrottleOptions): LogThrottle {
  const windows = new Map<string, Window>();

  const end = (kind: string, window: Window): void => {
    if (window.timer !== undefined) clearTimeout(window.timer);
    windows.delete(kind);
    if (window.suppressed > 0) options.onSuppressed(kind, window.suppressed);
  };

  return {
    admit(kind: string): boolean {
      const now = Date.now();
      let window = windows.get(kind);
      if (window !== undefined && now - window.start >= options.windowMs) {
        end(kind, window);
        window = undefined;
      }
      if (window === undefined) {
        window = { start: now, written: 0, suppressed: 0, timer: undefined };
        windows.set(kind, window);
      }
      if (window.written < options.burst) {
        window.written += 1;
        return true;
      }
      window.suppressed += 1;
      if (window.timer === undefined) {
        const current = window;
        current.timer = setTimeout(() => end(kind, current), Math.max(0, current.start + options.windowMs - now));
        current.timer.unref();
      }
      return false;
    },
    close(): void {
      for (const [kind, window] of [...windows]) end(kind, window);
    },
  };
}
