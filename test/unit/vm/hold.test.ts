import { describe, expect, it } from 'vitest';
import { AttestationHold, injectLaunchSecret } from '../../../src/vm/hold.js';
import type { FirmwareInfo } from '../../../src/sev/firmware-file.js';
import { isSupervisorError, SupervisorError } from '../../../src/errors.js';

const never = new Promise<never>(() => undefined);
const later = (): Date => new Date(Date.now() + 60_000);

describe('AttestationHold.wait', () => {
  it('hears a decision made between open() and wait() (the guest is reported held before the wait begins)', async () => {
    const hold = new AttestationHold();
    hold.open();
    hold.decide('approved');
    expect(await hold.wait({ deadline: later(), exited: never, signal: new AbortController().signal })).toBe('approved');
  });

  it("ends on a rejection, the deadline, QEMU's exit, or the launch's abort (also one aborted before the hold)", async () => {
    const rejecting = new AttestationHold();
    rejecting.open();
    setImmediate(() => rejecting.decide('rejected'));
    expect(await rejecting.wait({ deadline: later(), exited: never, signal: new AbortController().signal })).toBe('rejected');
    expect(
      await new AttestationHold().wait({ deadline: new Date(Date.now() - 1), exited: never, signal: new AbortController().signal }),
    ).toBe('timeout');
    expect(await new AttestationHold().wait({ deadline: later(), exited: Promise.resolve(), signal: new AbortController().signal })).toBe(
      'exited',
    );
    const launch = new AbortController();
    setImmediate(() => launch.abort());
    expect(await new AttestationHold().wait({ deadline: later(), exited: never, signal: launch.signal })).toBe('aborted');
    expect(await new AttestationHold().wait({ deadline: later(), exited: never, signal: AbortSignal.abort() })).toBe('aborted');
  });

  it('a decision after the hold ended is not heard by the next one', async () => {
    const hold = new AttestationHold();
    expect(await hold.wait({ deadline: new Date(0), exited: never, signal: new AbortController().signal })).toBe('timeout');
    hold.decide('approved');
    expect(await hold.wait({ deadline: new Date(Date.now() + 20), exited: never, signal: new AbortController().signal })).toBe('timeout');
  });
});

describe('AttestationHold.exclusive', () => {
  it('runs actions one at a time in arrival order; a refused admission fails only that action', async () => {
    const hold = new AttestationHold();
    const order: string[] = [];
    let held = true;
    const admit = (): void => {
      if (!held) throw new SupervisorError('SUP_ERR_ATTEST_NOT_HELD', 'not held');
    };
    const slow = hold.exclusive(admit, async () => {
      order.push('inject:start');
      await new Promise((resolve) => setTimeout(resolve, 10));
      order.push('inject:end');
    });
    const approve = hold.exclusive(admit, async () => {
      order.push('approve');
      held = false;
    });
    const late = hold.exclusive(admit, async () => order.push('late'));
    await Promise.all([slow, approve]);
    await expect(late).rejects.toMatchObject({ code: 'SUP_ERR_ATTEST_NOT_HELD' });
    expect(order).toEqual(['inject:start', 'inject:end', 'approve']);
  });
});

describe('injectLaunchSecret', () => {
  const fw = (secretArea: { base: number; size: number } | null): FirmwareInfo =>
    ({ path: '/fw/OVMF.fd', size: 0, sha256: '', table: { secretArea } }) as unknown as FirmwareInfo;

  it("uses the firmware's secret area without a gpa, and reports sizes, never the secret", async () => {
    const sent: unknown[] = [];
    const qmp = {
      execute: async (name: string, args?: Record<string, unknown>) => {
        sent.push([name, args]);
        return {};
      },
    };
    const injected = await injectLaunchSecret(qmp, 'vm1', fw({ base: 0x80b000, size: 0x1000 }), {
      packetHeader: 'AAAA',
      secret: 'AAAAAAAA',
    });
    expect(injected).toEqual({ gpa: 0x80b000, headerBytes: 3, secretBytes: 6 });
    expect(sent).toEqual([['sev-inject-launch-secret', { 'packet-header': 'AAAA', secret: 'AAAAAAAA', gpa: 0x80b000 }]]);
  });

  it("refuses without a usable area (nothing sent), and names QEMU's refusal as SUP_ERR_SECRET_REFUSED", async () => {
    const sent: unknown[] = [];
    const silent = {
      execute: async (name: string) => {
        sent.push(name);
        return {};
      },
    };
    await expect(injectLaunchSecret(silent, 'vm1', fw(null), { packetHeader: 'AA', secret: 'AA' })).rejects.toMatchObject({
      code: 'SUP_ERR_SECRET_NO_AREA',
    });
    expect(sent).toEqual([]);
    const refusing = {
      execute: async () => {
        throw new SupervisorError('SUP_ERR_QMP_EXECUTE', 'failed', { details: { desc: 'SEV: Not in correct state. (LSECRET) 3' } });
      },
    };
    const error: unknown = await injectLaunchSecret(refusing, 'vm1', null, { packetHeader: 'AA', secret: 'AA', gpa: 0x1000 }).catch(
      (e: unknown) => e,
    );
    expect(isSupervisorError(error) && [error.code, error.message]).toEqual([
      'SUP_ERR_SECRET_REFUSED',
      'VM vm1: the platform refused the launch secret: SEV: Not in correct state. (LSECRET) 3',
    ]);
  });
});
