import { afterEach, describe, expect, it } from 'vitest';
import { isSupervisorError } from '../../../src/errors.js';
import { QmpClient } from '../../../src/qmp/client.js';
import * as cmd from '../../../src/qmp/commands.js';
import { FakeQmpServer, type FakeHandler, QEMU_72_VERSION } from '../../support/fake-qmp-server.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function clientWith(handlers: Record<string, FakeHandler>): Promise<{ client: QmpClient; server: FakeQmpServer }> {
  const server = await FakeQmpServer.start({ handlers });
  cleanups.push(() => server.close());
  const client = await QmpClient.connect({ path: server.path });
  cleanups.push(() => client.close());
  return { client, server };
}

/** A client whose one command returns `value`. */
async function returning(command: string, value: unknown): Promise<QmpClient> {
  return (await clientWith({ [command]: () => ({ return: value }) })).client;
}

async function failure(promise: Promise<unknown>): Promise<[string, string]> {
  try {
    await promise;
  } catch (error) {
    if (isSupervisorError(error)) return [error.code, error.message];
    throw error;
  }
  throw new Error('expected a rejection');
}

/** qemu-sev-facts §1.3 and §7: the real 7.2 reply without SEV, and the 9.1+ shapes. */
const SEV_72_OFF = { enabled: false, 'api-minor': 0, handle: 0, state: 'uninit', 'api-major': 0, 'build-id': 0, policy: 0 };
const SEV_72_ON = { enabled: true, 'api-major': 1, 'api-minor': 55, 'build-id': 21, policy: 7, state: 'launch-secret', handle: 1 };
const SEV_10_OFF = {
  enabled: false,
  'api-minor': 0,
  handle: 0,
  state: 'uninit',
  'api-major': 0,
  'sev-type': 'sev',
  'build-id': 0,
  policy: 0,
};
const SNP_10 = {
  enabled: true,
  'api-major': 1,
  'api-minor': 55,
  'build-id': 21,
  state: 'launch-update',
  'sev-type': 'sev-snp',
  'snp-policy': 196608,
};

describe('querySev / parseSevInfo', () => {
  it.each([
    [
      '7.2 flat, SEV off',
      SEV_72_OFF,
      { enabled: false, apiMajor: 0, apiMinor: 0, buildId: 0, state: 'uninit', policy: 0, handle: 0, sevType: null },
    ],
    [
      '7.2 flat, SEV-ES on',
      SEV_72_ON,
      { enabled: true, apiMajor: 1, apiMinor: 55, buildId: 21, state: 'launch-secret', policy: 7, handle: 1, sevType: null },
    ],
    [
      '9.1+ sev, off',
      SEV_10_OFF,
      { enabled: false, apiMajor: 0, apiMinor: 0, buildId: 0, state: 'uninit', policy: 0, handle: 0, sevType: 'sev' },
    ],
    [
      '9.1+ sev-snp',
      SNP_10,
      { enabled: true, apiMajor: 1, apiMinor: 55, buildId: 21, state: 'launch-update', snpPolicy: 196608n, sevType: 'sev-snp' },
    ],
  ])('%s', async (_name, reply, expected) => {
    expect(cmd.parseSevInfo(reply)).toEqual(expected);
    expect(await cmd.querySev(await returning('query-sev', reply))).toEqual(expected);
  });

  it.each([
    [[], "QMP command 'query-sev' returned an unexpected reply: not an object"],
    [{ ...SEV_72_ON, enabled: 'yes' }, "QMP command 'query-sev' returned an unexpected reply: 'enabled' is not a boolean"],
    [
      { ...SEV_72_ON, 'api-major': 256 },
      "QMP command 'query-sev' returned an unexpected reply: 'api-major' is not an unsigned integer ≤ 255",
    ],
    [
      { ...SEV_72_ON, policy: 2 ** 32 },
      "QMP command 'query-sev' returned an unexpected reply: 'policy' is not an unsigned integer ≤ 4294967295",
    ],
    [
      { ...SEV_72_ON, policy: undefined },
      "QMP command 'query-sev' returned an unexpected reply: 'policy' is not an unsigned integer ≤ 4294967295",
    ],
    [{ ...SEV_72_ON, state: 3 }, "QMP command 'query-sev' returned an unexpected reply: 'state' is not a string"],
    [{ ...SNP_10, 'snp-policy': -1 }, "QMP command 'query-sev' returned an unexpected reply: 'snp-policy' is not an unsigned integer"],
    [
      { ...SNP_10, 'snp-policy': '0x30000' },
      "QMP command 'query-sev' returned an unexpected reply: 'snp-policy' is not an unsigned integer",
    ],
    [
      { ...SNP_10, 'snp-policy': 196608.5 },
      "QMP command 'query-sev' returned an unexpected reply: 'snp-policy' is not an unsigned integer",
    ],
    [
      { ...SNP_10, 'snp-policy': 2 ** 53 + 2 },
      "QMP command 'query-sev' returned an unexpected reply: 'snp-policy' is above 2^53 and cannot be read exactly from JSON",
    ],
    [
      { ...SNP_10, 'snp-policy': undefined },
      "QMP command 'query-sev' returned an unexpected reply: 'snp-policy' is not an unsigned integer",
    ],
    [
      { ...SEV_10_OFF, 'sev-type': 'sev', policy: undefined },
      "QMP command 'query-sev' returned an unexpected reply: 'policy' is not an unsigned integer ≤ 4294967295",
    ],
    [{ ...SEV_10_OFF, 'sev-type': 'tdx' }, "QMP command 'query-sev' returned an unexpected reply: unknown 'sev-type' \"tdx\""],
  ])('rejects %j', (reply, message) => {
    let caught: unknown;
    try {
      cmd.parseSevInfo(reply);
    } catch (error) {
      caught = error;
    }
    expect(isSupervisorError(caught) && [caught.code, caught.message, caught.details]).toEqual([
      'SUP_ERR_QMP_PROTOCOL',
      message,
      { command: 'query-sev' },
    ]);
  });
});

describe('query-sev: the SNP policy over the wire', () => {
  /** QEMU 10's reply as bytes, the policy written as its digits (JSON.stringify could not write a u64). */
  const snpReplyBytes = (id: unknown, policy: string): string =>
    `{"return": {"enabled": true, "api-major": 1, "api-minor": 55, "build-id": 21, "state": "launch-update", "sev-type": "sev-snp", "snp-policy": ${policy}}, "id": ${JSON.stringify(id)}}\r\n`;

  it('reads the largest safe 64-bit policy exactly, as a bigint, from the raw bytes QEMU sends', async () => {
    const { client } = await clientWith({
      'query-sev': (c) => ({ raw: snpReplyBytes(c.id, '9007199254740991') }),
    });
    const info = await cmd.querySev(client);
    expect(info.sevType === 'sev-snp' && info.snpPolicy).toBe(9007199254740991n);
  });

  it('refuses a policy JSON cannot carry exactly (u64 max), never rounding it', async () => {
    const { client } = await clientWith({
      'query-sev': (c) => ({ raw: snpReplyBytes(c.id, '18446744073709551615') }),
    });
    expect(await failure(cmd.querySev(client))).toEqual([
      'SUP_ERR_QMP_PROTOCOL',
      "QMP command 'query-sev' returned an unexpected reply: 'snp-policy' is above 2^53 and cannot be read exactly from JSON",
    ]);
  });
});

describe('typed wrappers', () => {
  it('queryVersion, queryStatus, queryCommands', async () => {
    const { client } = await clientWith({
      'query-commands': () => ({ return: [{ name: 'query-sev' }, { name: 'cont' }] }),
    });
    expect(await cmd.queryVersion(client)).toEqual(QEMU_72_VERSION);
    expect(await cmd.queryStatus(client)).toEqual({ status: 'prelaunch', running: false });
    expect(await cmd.queryCommands(client)).toEqual(['query-sev', 'cont']);
  });

  it("querySevLaunchMeasure returns the base64 data; QEMU's error is SUP_ERR_QMP_EXECUTE", async () => {
    expect(await cmd.querySevLaunchMeasure(await returning('query-sev-launch-measure', { data: 'QUJD' }))).toBe('QUJD');
    const { client } = await clientWith({
      'query-sev-launch-measure': () => ({ error: { class: 'GenericError', desc: 'SEV launch measurement is not available' } }),
    });
    expect(await failure(cmd.querySevLaunchMeasure(client))).toEqual([
      'SUP_ERR_QMP_EXECUTE',
      "QMP command 'query-sev-launch-measure' failed (GenericError): SEV launch measurement is not available",
    ]);
  });

  it('querySevCapabilities normalises names; cpu0-id is optional', async () => {
    const caps = { pdh: 'P', 'cert-chain': 'C', 'cpu0-id': 'I', cbitpos: 47, 'reduced-phys-bits': 1 };
    expect(await cmd.querySevCapabilities(await returning('query-sev-capabilities', caps))).toEqual({
      pdh: 'P',
      certChain: 'C',
      cpu0Id: 'I',
      cbitpos: 47,
      reducedPhysBits: 1,
    });
    const { 'cpu0-id': _omitted, ...old } = caps;
    expect((await cmd.querySevCapabilities(await returning('query-sev-capabilities', old))).cpu0Id).toBeNull();
  });

  it("sevInjectLaunchSecret sends QEMU's argument names, gpa only when given", async () => {
    const { client, server } = await clientWith({ 'sev-inject-launch-secret': () => ({ return: {} }) });
    await cmd.sevInjectLaunchSecret(client, { packetHeader: 'H', secret: 'S' });
    await cmd.sevInjectLaunchSecret(client, { packetHeader: 'H', secret: 'S', gpa: 0x80b000 });
    expect(server.received.slice(1).map((c) => c.arguments)).toEqual([
      { 'packet-header': 'H', secret: 'S' },
      { 'packet-header': 'H', secret: 'S', gpa: 0x80b000 },
    ]);
  });

  it("queryCpuSignature reads the first vCPU's qom-path, then family/model/stepping; a missing vCPU or a non-integer is SUP_ERR_QMP_PROTOCOL", async () => {
    const path = '/machine/unattached/device[0]';
    const props: Record<string, unknown> = { family: 23, model: 1, stepping: 2 };
    const { client, server } = await clientWith({
      'query-cpus-fast': () => ({
        return: [{ 'thread-id': 1, props: { 'core-id': 0 }, 'qom-path': path, 'cpu-index': 0, target: 'x86_64' }],
      }),
      'qom-get': (c) => ({ return: props[String(c.arguments?.['property'])] }),
    });
    expect(await cmd.queryCpuSignature(client)).toEqual({ family: 23, model: 1, stepping: 2 });
    expect(server.received.slice(1).map((c) => [c.command, c.arguments])).toEqual([
      ['query-cpus-fast', undefined],
      ['qom-get', { path, property: 'family' }],
      ['qom-get', { path, property: 'model' }],
      ['qom-get', { path, property: 'stepping' }],
    ]);
    props['stepping'] = 'two';
    expect((await failure(cmd.queryCpuSignature(client)))[0]).toBe('SUP_ERR_QMP_PROTOCOL');
    expect((await failure(cmd.queryCpuSignature(await returning('query-cpus-fast', []))))[0]).toBe('SUP_ERR_QMP_PROTOCOL');
  });

  it('cont, stop, systemPowerdown, quit expect {} and send the exact names', async () => {
    const ok = (): { return: object } => ({ return: {} });
    const { client, server } = await clientWith({ cont: ok, stop: ok, system_powerdown: ok });
    await cmd.cont(client);
    await cmd.stop(client);
    await cmd.systemPowerdown(client);
    await cmd.quit(client);
    expect(await client.closed).toBeUndefined();
    expect(server.received.map((c) => c.command)).toEqual(['qmp_capabilities', 'cont', 'stop', 'system_powerdown', 'quit']);
    server.assertNoUnexpected();
  });

  it("snapshotInternalTransaction sends one transaction over every node; QEMU's refusal is SUP_ERR_QMP_EXECUTE", async () => {
    const { client, server } = await clientWith({ transaction: () => ({ return: {} }) });
    await cmd.snapshotInternalTransaction(client, ['disk0', 'disk2'], 'before-upgrade');
    expect(server.received.slice(1).map((c) => [c.command, c.arguments])).toEqual([
      [
        'transaction',
        {
          actions: [
            { type: 'blockdev-snapshot-internal-sync', data: { device: 'disk0', name: 'before-upgrade' } },
            { type: 'blockdev-snapshot-internal-sync', data: { device: 'disk2', name: 'before-upgrade' } },
          ],
        },
      ],
    ]);
    const refused = (
      await clientWith({
        transaction: () => ({ error: { class: 'GenericError', desc: "Device 'disk0' is writable but does not support snapshots" } }),
      })
    ).client;
    expect((await failure(cmd.snapshotInternalTransaction(refused, ['disk0'], 'x')))[0]).toBe('SUP_ERR_QMP_EXECUTE');
  });

  it('a `return` of the wrong shape is SUP_ERR_QMP_PROTOCOL', async () => {
    expect(await failure(cmd.cont(await returning('cont', { surprise: 1 })))).toEqual([
      'SUP_ERR_QMP_PROTOCOL',
      "QMP command 'cont' returned an unexpected reply: expected {}",
    ]);
    expect(await failure(cmd.queryStatus(await returning('query-status', { status: 'running' })))).toEqual([
      'SUP_ERR_QMP_PROTOCOL',
      "QMP command 'query-status' returned an unexpected reply: 'running' is not a boolean",
    ]);
    expect(await failure(cmd.queryCommands(await returning('query-commands', [{ name: 1 }])))).toEqual([
      'SUP_ERR_QMP_PROTOCOL',
      "QMP command 'query-commands' returned an unexpected reply: 'name' is not a string",
    ]);
    expect(await failure(cmd.queryVersion(await returning('query-version', { qemu: 7, package: '' })))).toEqual([
      'SUP_ERR_QMP_PROTOCOL',
      "QMP command 'query-version' returned an unexpected reply: 'qemu' is not an object",
    ]);
    expect(await failure(cmd.querySevLaunchMeasure(await returning('query-sev-launch-measure', { data: '' })))).toEqual([
      'SUP_ERR_QMP_PROTOCOL',
      "QMP command 'query-sev-launch-measure' returned an unexpected reply: 'data' is empty",
    ]);
  });

  it("qmpCapabilities after negotiation gets QEMU's CommandNotFound", async () => {
    const { client } = await clientWith({});
    expect(await failure(cmd.qmpCapabilities(client, ['oob']))).toEqual([
      'SUP_ERR_QMP_EXECUTE',
      "QMP command 'qmp_capabilities' failed (CommandNotFound): Capabilities negotiation is already complete, command ignored",
    ]);
  });
});
