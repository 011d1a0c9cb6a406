import { describe, expect, it } from 'vitest';
import { QmpInterceptor, type Plan, type QmpObject } from '../../../../src/platform/sim/qmp-interceptor.js';
import { SevGuestSim, type InjectedSecret } from '../../../../src/platform/sim/sev-state.js';

function setup(o: { enabled?: boolean } = {}) {
  const guest = new SevGuestSim({
    enabled: o.enabled ?? true,
    policy: 0x9,
    platform: { apiMajor: 1, apiMinor: 55, buildId: 21 },
    handle: 1,
    launchDigest: Buffer.alloc(32),
    measurement: { mac: Buffer.alloc(32, 1), mnonce: Buffer.alloc(16, 2) },
    secretArea: null,
    memoryBytes: 2 ** 29,
    tik: Buffer.alloc(16),
    tek: Buffer.alloc(16),
    replyShape: '7.2',
    crashOnCont: false,
    onlyMigratable: false,
  });
  const events: string[] = [];
  const shared = { blockedJobs: new Set<string>() };
  const hooks = {
    secretAccepted: (i: InjectedSecret) => events.push(`accepted ${i.gpa}`),
    secretRefused: (desc: string) => events.push(`refused ${desc}`),
    randomBytes: (n: number) => Buffer.alloc(n),
    snpReport: () => ({ return: { data: 'report' } }),
  };
  const interceptor = new QmpInterceptor(guest, shared, hooks);
  const negotiate = (): void => {
    const plan = interceptor.plan('{"execute":"qmp_capabilities"}');
    if (plan.kind === 'forward') plan.transform?.({ return: {} });
  };
  return { guest, interceptor, events, shared, negotiate };
}

function reply(plan: Plan, qemuReply: QmpObject): QmpObject | null {
  if (plan.kind !== 'forward') throw new Error(`expected forward, got ${plan.kind}`);
  return plan.transform === null ? null : plan.transform(qemuReply);
}

describe('QmpInterceptor', () => {
  it('forwards everything unchanged before negotiation (QEMU answers CommandNotFound)', () => {
    const { interceptor } = setup();
    const text = '{"execute":"query-sev","id":1}';
    expect(interceptor.plan(text)).toEqual({ kind: 'forward', text, transform: null });
    expect(interceptor.negotiated).toBe(false);
  });

  it("replaces QEMU's query-sev answer, keeping the id, and leaves QEMU errors alone", () => {
    const { interceptor, negotiate } = setup();
    negotiate();
    expect(interceptor.negotiated).toBe(true);
    const plan = interceptor.plan('{"execute":"query-sev","id":{"a":[1]}}');
    expect(reply(plan, { return: { enabled: false }, id: { a: [1] } })).toMatchObject({
      return: { enabled: true, state: 'launch-secret' },
      id: { a: [1] },
    });
    const err = { id: 2, error: { class: 'GenericError', desc: "Parameter 'x' is unexpected" } };
    expect(reply(interceptor.plan('{"execute":"query-sev","arguments":{"x":1},"id":2}'), err)).toBeNull();
  });

  it("answers the measurement, inject and attestation only in place of QEMU's not-SEV error", () => {
    const { interceptor, negotiate, events } = setup();
    negotiate();
    expect(
      reply(interceptor.plan('{"execute":"query-sev-launch-measure"}'), {
        error: { class: 'GenericError', desc: 'SEV launch measurement is not available' },
      }),
    ).toMatchObject({
      return: { data: expect.any(String) },
    });
    const inject = interceptor.plan('{"execute":"sev-inject-launch-secret","arguments":{"packet-header":"AAAA","secret":"AAAA"}}');
    expect(reply(inject, { error: { class: 'GenericError', desc: 'SEV not enabled for guest' } })).toEqual({
      error: { class: 'GenericError', desc: 'SEV: no secret area found in OVMF, gpa must be specified.' },
    });
    expect(events).toEqual(['refused SEV: no secret area found in OVMF, gpa must be specified.']);
  });

  it('blocks QMP and HMP migration only after LAUNCH_FINISH, answering locally', () => {
    const { interceptor, negotiate, guest } = setup();
    negotiate();
    const migrate = '{"execute":"migrate","arguments":{"uri":"exec:cat>/dev/null"},"id":"m"}';
    expect(interceptor.plan(migrate).kind).toBe('forward');
    guest.resume();
    expect(interceptor.plan(migrate)).toEqual({
      kind: 'local',
      reply: { error: { class: 'GenericError', desc: 'SEV: Migration is not implemented' }, id: 'm' },
    });
    const hmp = (line: string): Plan =>
      interceptor.plan(JSON.stringify({ execute: 'human-monitor-command', arguments: { 'command-line': line } }));
    expect(hmp('  migrate -d tcp:1.2.3.4:5')).toEqual({ kind: 'local', reply: { return: 'Error: SEV: Migration is not implemented\r\n' } });
    expect(hmp('savevm snap1')).toEqual({ kind: 'local', reply: { return: 'Error: SEV: Migration is not implemented\r\n' } });
    // QEMU rejects these before reaching the blocker: they go to QEMU for its own text.
    expect(hmp('migrate').kind).toBe('forward');
    expect(hmp('migrate -x tcp:1').kind).toBe('forward');
    expect(interceptor.plan('{"execute":"migrate","arguments":{"uri":"x","bogus":1}}').kind).toBe('forward');
    expect(interceptor.plan('{"execute":"migrate"}').kind).toBe('forward');
  });

  it('makes snapshot-save fail harmlessly in QEMU and reports the blocker in query-jobs', () => {
    const { interceptor, negotiate, guest, shared } = setup();
    negotiate();
    guest.resume();
    const plan = interceptor.plan(
      '{"execute":"snapshot-save","arguments":{"job-id":"j1","tag":"t","vmstate":"disk0","devices":["disk0"]},"id":7}',
    );
    if (plan.kind !== 'forward') throw new Error('expected forward');
    expect(JSON.parse(plan.text)).toEqual({
      execute: 'snapshot-save',
      arguments: { 'job-id': 'j1', tag: 't', vmstate: '#sevsup-sim-migration-blocked', devices: [] },
      id: 7,
    });
    expect([...shared.blockedJobs]).toEqual(['j1']);
    const jobs = reply(interceptor.plan('{"execute":"query-jobs"}'), {
      return: [
        {
          id: 'j1',
          type: 'snapshot-save',
          status: 'concluded',
          'current-progress': 1,
          'total-progress': 1,
          error: "vmstate block device '#sevsup-sim-migration-blocked' does not exist",
        },
        { id: 'other', status: 'concluded', error: 'x' },
      ],
    });
    expect(jobs).toMatchObject({
      return: [
        { id: 'j1', error: 'SEV: Migration is not implemented' },
        { id: 'other', error: 'x' },
      ],
    });
  });

  it('replaces HMP info sev', () => {
    const { interceptor, negotiate } = setup();
    negotiate();
    const plan = interceptor.plan('{"execute":"human-monitor-command","arguments":{"command-line":"info sev"},"id":1}');
    expect(reply(plan, { return: 'SEV is not enabled\r\n', id: 1 })).toEqual({
      return: expect.stringMatching(/^handle: 1\r\nstate: launch-secret\r\n/),
      id: 1,
    });
  });

  it('sends exec-oob with an id outside the queue, and lets QEMU judge malformed input', () => {
    const { interceptor, negotiate } = setup();
    negotiate();
    expect(interceptor.plan('{"exec-oob":"migrate-pause","id":"o1"}')).toEqual({
      kind: 'oob',
      text: '{"exec-oob":"migrate-pause","id":"o1"}',
      idKey: '"o1"',
    });
    for (const text of ['{"execute":"migrate","execute":"migrate","arguments":{"uri":"x"}}', '[1]', '{"execute":1}', '{bad']) {
      expect(interceptor.plan(text)).toEqual({ kind: 'forward', text, transform: null });
    }
  });
});
