// "Did you mean" suggestions: close misspellings only, never a different word.
import { describe, expect, it } from 'vitest';
import { closestName, didYouMean } from '../../../src/config/suggest.js';

const KNOWN = ['memory', 'cores', 'cpu', 'reduced-phys-bits', 'nodbg', 'no-debug', 'amd_sev', 'amd-sev'];

describe('closestName', () => {
  it.each([
    ['memroy', 'memory'],
    ['Memory', 'memory'],
    ['reduced-phys-bios', 'reduced-phys-bits'],
    ['core', 'cores'],
    ['amd_sev', 'amd_sev'],
    ['amdsev', 'amd_sev'],
    ['nodebug', 'no-debug'],
    ['os', undefined],
    ['x', undefined],
    ['totally-different', undefined],
    ['m'.repeat(65), undefined],
  ])('%s → %s', (name, expected) => {
    expect(closestName(name, KNOWN)).toBe(expected);
  });
});

describe('didYouMean', () => {
  it('formats a suggestion or nothing', () => {
    expect(didYouMean('memroy', KNOWN)).toBe(" (did you mean 'memory'?)");
    expect(didYouMean('zzz', KNOWN)).toBe('');
  });
});
