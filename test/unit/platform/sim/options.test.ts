import { describe, expect, it } from 'vitest';
import { parseSimCommandLine, simArgs, SIM_HELP, SIM_PLATFORM_DEFAULTS } from '../../../../src/platform/sim/options.js';

describe('parseSimCommandLine', () => {
  it('stops at the first argument that is not a --sim- option and keeps QEMU argv untouched', () => {
    const parsed = parseSimCommandLine(['--sim-fault', 'slow-qmp', '--sim-delay-ms=50', '-S', '--sim-tik', 'x']);
    expect(parsed).toMatchObject({ kind: 'run', qemuArgv: ['-S', '--sim-tik', 'x'] });
    if (parsed.kind !== 'run') throw new Error('unreachable');
    expect([...parsed.options.faults]).toEqual(['slow-qmp']);
    expect(parsed.options.delayMs).toBe(50);
    expect(parsed.options.tik).toBeNull();
  });

  it('applies the documented defaults', () => {
    const parsed = parseSimCommandLine(['-S']);
    if (parsed.kind !== 'run') throw new Error('expected run');
    expect(parsed.options).toMatchObject({
      qemu: 'qemu-system-x86_64',
      delayMs: 2000,
      replyShape: '7.2',
      accel: 'tcg',
      apiMajor: SIM_PLATFORM_DEFAULTS.apiMajor,
      apiMinor: SIM_PLATFORM_DEFAULTS.apiMinor,
      buildId: SIM_PLATFORM_DEFAULTS.buildId,
    });
  });

  it.each([
    [['--sim-fault', 'nope'], /--sim-fault must be one of/],
    [['--sim-reply-shape', '8.0'], /7\.2 or 9\.1/],
    [['--sim-accel', 'hvf'], /tcg or kvm/],
    [['--sim-api-minor', '256'], /0\.\.255/],
    [['--sim-delay-ms', '-1'], /--sim-delay-ms must be/],
    [['--sim-bogus', '1'], /unknown option '--sim-bogus'/],
    [['--sim-qemu'], /needs a value/],
  ])('refuses %j', (argv, message) => {
    const parsed = parseSimCommandLine(argv);
    expect(parsed.kind).toBe('error');
    if (parsed.kind === 'error') expect(parsed.message).toMatch(message);
  });

  it('answers help and says it is not a security boundary', () => {
    expect(parseSimCommandLine(['--help'])).toEqual({ kind: 'help' });
    expect(parseSimCommandLine(['--sim-fault', 'slow-qmp', '--sim-help'])).toEqual({ kind: 'help' });
    expect(SIM_HELP).toContain('NOT a security boundary');
  });
});

describe('simArgs', () => {
  it('round-trips through the parser', () => {
    const options = {
      qemu: '/usr/bin/qemu-system-x86_64',
      tik: '/k/tik',
      tek: '/k/tek',
      faults: ['wrong-policy', 'slow-qmp'] as const,
      delayMs: 10,
      replyShape: '9.1' as const,
      accel: 'kvm' as const,
      apiMajor: 0,
      apiMinor: 24,
      buildId: 15,
      stateDir: '/var/lib/sevsup-sim',
    };
    const parsed = parseSimCommandLine([...simArgs({ ...options, faults: [...options.faults] }), '-S']);
    if (parsed.kind !== 'run') throw new Error('expected run');
    expect(parsed.qemuArgv).toEqual(['-S']);
    expect({ ...parsed.options, faults: [...parsed.options.faults] }).toEqual({ ...options, faults: [...options.faults] });
  });

  it('takes --sim-init-snp-platform alone (no QEMU argv)', () => {
    expect(parseSimCommandLine(['--sim-init-snp-platform', '--sim-state-dir', '/s'])).toMatchObject({
      kind: 'init',
      options: { stateDir: '/s' },
    });
    expect(parseSimCommandLine(['--sim-init-snp-platform', '-S'])).toEqual({
      kind: 'error',
      message: '--sim-init-snp-platform takes no QEMU arguments',
    });
  });

  it('spells out nothing for the defaults', () => {
    expect(simArgs({})).toEqual([]);
  });
});
