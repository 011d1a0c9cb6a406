// Test helper: run a function that must throw a SupervisorError and return its public parts,
// so tables can assert code, exact message and details in one toEqual.
import { isSupervisorError } from '../../src/errors.js';

export interface CaughtError {
  readonly code: string;
  readonly message: string;
  readonly details: Readonly<Record<string, unknown>>;
}

export function catchSupervisorError(fn: () => unknown): CaughtError {
  try {
    fn();
  } catch (error: unknown) {
    if (isSupervisorError(error)) return { code: error.code, message: error.message, details: error.details };
    throw error;
  }
  throw new Error('expected a SupervisorError, but nothing was thrown');
}

export async function catchSupervisorErrorAsync(fn: () => Promise<unknown>): Promise<CaughtError> {
  try {
    await fn();
  } catch (error: unknown) {
    if (isSupervisorError(error)) return { code: error.code, message: error.message, details: error.details };
    throw error;
  }
  throw new Error('expected a SupervisorError, but nothing was thrown');
}
