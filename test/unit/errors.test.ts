import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorTable, SupervisorError, hasCode, isErrorCode, isSupervisorError } from '../../src/errors.js';
import { renderErrorsDoc } from '../../src/errors-doc.js';

describe('error registry', () => {
  it('docs/errors.md is the generated rendering of the registry (run scripts/gen-errors-doc.mjs)', () => {
    const committed = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    expect(committed).toBe(renderErrorsDoc());
  });

  it('every code follows SUP_ERR_<AREA>_<WHAT> and has a status and an exit code', () => {
    for (const [code, def] of Object.entries(errorTable())) {
      expect(code).toMatch(/^SUP_ERR_[A-Z0-9]+(_[A-Z0-9]+)*$/);
      expect(def.status).toBeGreaterThanOrEqual(400);
      expect(def.status).toBeLessThan(600);
      expect(Number.isInteger(def.exit) && def.exit > 0 && def.exit < 126).toBe(true);
      expect(def.message.length).toBeGreaterThan(0);
    }
  });

  it('errors carry code, status, exit code and serialise to the API shape', () => {
    const err = new SupervisorError('SUP_ERR_SEV_UNSUPPORTED', undefined, { details: { vm: 'a' } });
    expect(err.message).toBe('Your CPU does not support AMD SEV!');
    expect(err.status).toBe(409);
    expect(err.exitCode).toBe(4);
    expect(err.toJSON()).toEqual({ code: 'SUP_ERR_SEV_UNSUPPORTED', message: err.message, details: { vm: 'a' } });
    expect(new SupervisorError('SUP_ERR_USAGE', 'x').toJSON()).toEqual({ code: 'SUP_ERR_USAGE', message: 'x' });
  });

  it('brand checks work without instanceof and reject look-alikes', () => {
    const err = new SupervisorError('SUP_ERR_USAGE');
    expect(isSupervisorError(err)).toBe(true);
    expect(hasCode(err, 'SUP_ERR_USAGE', 'SUP_ERR_INTERNAL')).toBe(true);
    expect(hasCode(err, 'SUP_ERR_INTERNAL')).toBe(false);
    expect(isSupervisorError({ code: 'SUP_ERR_USAGE', message: 'fake' })).toBe(false);
    expect(isSupervisorError(new Error('x'))).toBe(false);
    expect(isErrorCode('SUP_ERR_USAGE')).toBe(true);
    expect(isErrorCode('toString')).toBe(false);
  });
});
