// The SIMULATED launch session: the owner's keys round-trip, the files say SIMULATED, and the
// simulator's reader refuses what a session carrying the keys must not be: unbound, altered, short.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeSimSession, encodeSimSession, isSimSessionText, SIM_SESSION_LABEL } from '../../../src/sev/sim-session.js';

const keys = { tik: randomBytes(16), tek: randomBytes(16) };

describe('simulated launch session', () => {
  it('carries the owner keys to the reader and labels both files', () => {
    const files = encodeSimSession(keys);
    expect(files.session.startsWith(SIM_SESSION_LABEL)).toBe(true);
    expect(files.dhCert.startsWith(SIM_SESSION_LABEL)).toBe(true);
    expect(files.dhCert).not.toContain(keys.tik.toString('hex'));
    expect(decodeSimSession(files)).toEqual({ ok: true, tik: keys.tik, tek: keys.tek });
  });

  it('is not mistaken for a real (base64) session', () => {
    expect(isSimSessionText(randomBytes(96).toString('base64'))).toBe(false);
  });

  it.each([
    [
      'a dh-cert of another session',
      (f: { session: string; dhCert: string }) => ({
        ...f,
        dhCert: encodeSimSession({ tik: randomBytes(16), tek: randomBytes(16) }).dhCert,
      }),
      'dh-cert file: does not bind this session file (made for another session?)',
    ],
    [
      'an altered key',
      (f: { session: string; dhCert: string }) => ({ ...f, session: f.session.replace(/tik: ../, 'tik: zz') }),
      'dh-cert file: does not bind this session file (made for another session?)',
    ],
    [
      'a real dh-cert',
      (f: { session: string; dhCert: string }) => ({ ...f, dhCert: 'AAAA' }),
      'dh-cert file: not a sevsup-sim-dh-cert/v1 file made with the session',
    ],
  ])('refuses %s', (_n, change, problem) => {
    expect(decodeSimSession(change(encodeSimSession(keys)))).toEqual({ ok: false, problem });
  });
});
