// The sev-snp-guest objects sevsup's argv builder emits, given to a real QEMU 10 (Debian trixie's,
// from the root scripts/setup-qemu10-root.sh makes) by QMP object-add on `-machine none -accel tcg`,
// which runs QEMU's own property setters and length checks: every object of every SNP golden
// scenario (test/support/snp-argv-scenarios.ts) is accepted with the policy we meant, and the byte
// lengths sevsup refuses up front are ones QEMU refuses too, in its own words (policies it does not
// check: those sevsup refuses would fail only at launch, in KVM or the firmware).
// Skipped, saying why, without the root or without root privileges (test/support/it-env.ts).
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parseVmConfig } from '../../src/config/vm-config.js';
import { isSupervisorError } from '../../src/errors.js';
import { SIMULATED_HOST_CAPS } from '../../src/host/simulated.js';
import { buildQemuArgv } from '../../src/qemu/argv.js';
import { snpGuestObject, type SnpLaunchParams } from '../../src/qemu/snp.js';
import { qemu10Unavailable } from '../../test/support/it-env.js';
import { qemu10Workspace } from '../../test/support/qemu10.js';
import { b64, PLAIN_SNP_PARAMS, SNP_SCENARIOS } from '../../test/support/snp-argv-scenarios.js';

const missing = qemu10Unavailable();
const CAPS = { ...SIMULATED_HOST_CAPS, sevSnp: { supported: true, reason: 'supported: test host', source: 'test' } };

type Reply = Record<string, unknown>;

/** QMP replies (by id) of QEMU 10 given `commands` one by one on stdin. */
async function qmp10(qemu: string, commands: readonly Reply[]): Promise<Map<unknown, Reply>> {
  const input = [{ execute: 'qmp_capabilities' }, ...commands, { execute: 'quit' }].map((c) => JSON.stringify(c)).join('\n');
  const r = await execa(qemu, ['-machine', 'none', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-qmp', 'stdio'], {
    input: `${input}\n`,
    reject: false,
    timeout: 60_000,
  });
  expect(r.exitCode, String(r.stderr)).toBe(0);
  const replies = new Map<unknown, Reply>();
  for (const line of String(r.stdout).split('\n')) {
    if (line.trim() === '') continue;
    const msg = JSON.parse(line) as Reply;
    if ('id' in msg) replies.set(msg['id'], msg);
  }
  return replies;
}

const add = (id: string, object: Reply): Reply => {
  const { 'qom-type': type, id: _ignored, ...props } = object;
  return { execute: 'object-add', arguments: { 'qom-type': type, id, ...props }, id };
};
const errorDesc = (reply: Reply | undefined): unknown => (reply?.['error'] as { desc?: string } | undefined)?.desc;

/** The `-object` of the argv buildQemuArgv gives for an SNP scenario. */
function emittedObject(name: string): Reply {
  const scenario = SNP_SCENARIOS[name];
  if (scenario === undefined) throw new Error(name);
  const spec = parseVmConfig(['name: vm1', ...scenario.lines, ''].join('\n'), '/etc/sevsup/vms/vm1.conf');
  const argv = buildQemuArgv({
    spec,
    caps: CAPS,
    paths: { monitorSocket: '/run/sevsup/vm1/private/monitor.sock' },
    ...(scenario.snp === undefined ? {} : { snp: scenario.snp }),
  });
  const objects = argv.filter((_, i) => argv[i - 1] === '-object');
  expect(objects).toHaveLength(1);
  return JSON.parse(objects[0] ?? '') as Reply;
}

describe.skipIf(missing !== null)(
  `QEMU 10 takes the sev-snp-guest objects sevsup builds${missing === null ? '' : ` (skipped: ${missing})`}`,
  () => {
    const { qemu } = qemu10Workspace('sevsup-qemu10-object-', missing === null);

    it('accepts the object of every SNP golden scenario, holding the 64-bit policy we meant', async () => {
      const names = Object.keys(SNP_SCENARIOS);
      expect(names.length).toBeGreaterThanOrEqual(10);
      const objects = new Map(names.map((name) => [name, emittedObject(name)]));
      const replies = await qmp10(qemu, [
        ...names.map((name) => add(name, objects.get(name) ?? {})),
        ...names.map((name) => ({ execute: 'qom-get', arguments: { path: `/objects/${name}`, property: 'policy' }, id: `policy:${name}` })),
        ...names.map((name) => ({ execute: 'qom-list', arguments: { path: `/objects/${name}` }, id: `list:${name}` })),
      ]);
      for (const name of names) {
        const object = objects.get(name) ?? {};
        expect(replies.get(name), name).toEqual({ return: {}, id: name });
        expect(replies.get(`policy:${name}`), name).toEqual({ return: object['policy'], id: `policy:${name}` });
        // Every property we set is one sev-snp-guest has (object-add would refuse others, too).
        const props = ((replies.get(`list:${name}`)?.['return'] as { name: string }[] | undefined) ?? []).map((p) => p.name);
        for (const key of Object.keys(object).filter((k) => k !== 'qom-type' && k !== 'id'))
          expect(props, `${name}: ${key}`).toContain(key);
      }
    });

    it('refuses, in its own words, the byte lengths sevsup refuses before it', async () => {
      const base: SnpLaunchParams = PLAIN_SNP_PARAMS;
      const plain = snpGuestObject(base);
      const bad = [
        ['b1', { idBlock: b64(95, 1), idAuth: b64(4096, 1) }, { 'id-block': b64(95, 1) }, 'parameter length of 95 not equal to 96'],
        [
          'b2',
          { idBlock: b64(96, 1), idAuth: b64(4097, 1) },
          { 'id-auth': b64(4097, 1) },
          'parameter length:ID_AUTH 4097 exceeds max of 4096',
        ],
        ['b3', { hostData: b64(31, 1) }, { 'host-data': b64(31, 1) }, 'parameter length of 31 not equal to 32'],
        ['b4', { hostData: b64(33, 1) }, { 'host-data': b64(33, 1) }, 'parameter length of 33 not equal to 32'],
        [
          'b5',
          { guestVisibleWorkarounds: b64(15, 1) },
          { 'guest-visible-workarounds': b64(15, 1) },
          'parameter length of 15 exceeds max of 16',
        ],
        [
          'b6',
          { guestVisibleWorkarounds: b64(17, 1) },
          { 'guest-visible-workarounds': b64(17, 1) },
          'parameter length of 17 exceeds max of 16',
        ],
      ] as const;
      for (const [id, params] of bad) {
        let caught: unknown;
        try {
          snpGuestObject({ ...base, ...params });
        } catch (error) {
          caught = error;
        }
        expect(isSupervisorError(caught) && caught.code === 'SUP_ERR_INTERNAL', id).toBe(true);
      }
      const replies = await qmp10(
        qemu,
        bad.map(([id, , props]) => add(id, { ...plain, ...props })),
      );
      for (const [id, , , text] of bad) expect(errorDesc(replies.get(id)), id).toBe(text);
    });

    it('takes any 64-bit policy: the policies sevsup refuses up front would fail only at launch (KVM, firmware)', async () => {
      // No bit 17, the migration agent, a reserved high bit: snp-facts §1.1 ("no check in QEMU").
      const policies = [0x10000, 0x70000, 2 ** 40 + 0x30000];
      for (const policy of policies)
        expect(() => snpGuestObject({ ...PLAIN_SNP_PARAMS, policy: BigInt(policy) })).toThrow(/SNP policy refused/);
      const plain = snpGuestObject(PLAIN_SNP_PARAMS);
      const replies = await qmp10(
        qemu,
        policies.map((policy, i) => add(`p${i}`, { ...plain, policy })),
      );
      for (const [i] of policies.entries()) expect(replies.get(`p${i}`), String(i)).toEqual({ return: {}, id: `p${i}` });
    });
  },
);
