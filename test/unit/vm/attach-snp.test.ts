// Re-attach to a held SEV-SNP guest: it must still be in `launch-update` (its first run, where the
// PSP measures it, has not happened); an SEV guest must still be in `launch-secret`. Real sockets: the
// fake QMP server answers as QEMU 10 does.
import { afterEach, describe, expect, it } from 'vitest';
import { QmpClient } from '../../../src/qmp/client.js';
import { inspectAdopted } from '../../../src/vm/attach.js';
import type { PersistedVmState } from '../../../src/vm/state-file.js';
import { FakeQmpServer } from '../../support/fake-qmp-server.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const HELD = { state: 'held', ran: false } as unknown as PersistedVmState;

async function clientAnswering(state: string): Promise<QmpClient> {
  const snp = { enabled: true, 'api-major': 1, 'api-minor': 55, 'build-id': 21, state, 'sev-type': 'sev-snp', 'snp-policy': 0x30000 };
  const server = await FakeQmpServer.start({ handlers: { 'query-sev': () => ({ return: snp }) } });
  cleanups.push(() => server.close());
  const client = await QmpClient.connect({ path: server.path });
  cleanups.push(() => client.close());
  return client;
}

const step = <T>(_what: string, run: () => Promise<T>): Promise<T> => run();

describe('inspectAdopted: a held SEV-SNP guest', () => {
  it('stays held while QEMU reports launch-update', async () => {
    expect(await inspectAdopted(await clientAnswering('launch-update'), HELD, 'launch-update', step)).toEqual({
      status: 'prelaunch',
      plan: { kind: 'hold' },
    });
  });

  it.each([
    ['running', 'launch-update'],
    ['launch-update', 'launch-secret'],
  ] as const)('is destroyed when QEMU reports %s where %s is expected', async (reported, expected) => {
    expect(await inspectAdopted(await clientAnswering(reported), HELD, expected, step)).toEqual({
      status: 'prelaunch',
      plan: { kind: 'destroy', why: `it was held, but its SEV state is ${reported}, not ${expected}` },
    });
  });
});
