// Test helper: run a synchronous function and return what it threw (undefined if nothing), so
// tests can assert on a SupervisorError's code and message.
export function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}
