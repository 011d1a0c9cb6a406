// The CPU model table against the QEMU on this machine: for every model it knows,
// query-cpu-model-expansion reports the same family, model and stepping as src/sev/cpu-models.ts.
// (QEMU 7.2 lacks EPYC-v4, -Rome-v3, -Milan-v2, Genoa and Turin; those come from QEMU's
// target/i386/cpu.c and sev-snp-measure's table, pinned by the unit test.)
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CPU_MODELS } from '../../src/sev/cpu-models.js';

const QEMU = process.env['QEMU_BIN'] ?? 'qemu-system-x86_64';
const HAVE_QEMU = spawnSync(QEMU, ['--version'], { encoding: 'utf8' }).status === 0;

describe.runIf(HAVE_QEMU)('CPU models against QEMU', () => {
  it('agree on family, model and stepping for every model this QEMU defines', () => {
    const names = [...CPU_MODELS.keys()];
    const input = [
      { execute: 'qmp_capabilities' },
      ...names.map((name) => ({ execute: 'query-cpu-model-expansion', arguments: { type: 'full', model: { name } } })),
      { execute: 'quit' },
    ]
      .map((m) => JSON.stringify(m))
      .join('\n');
    const run = spawnSync(QEMU, ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio'], {
      input: `${input}\n`,
      encoding: 'utf8',
      timeout: 60_000,
    });
    const replies: unknown[] = run.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l): unknown => JSON.parse(l))
      .filter((m) => typeof m === 'object' && m !== null && ('return' in m || 'error' in m));
    // replies[0] answers qmp_capabilities; then one per model, in order.
    const get = (v: unknown, key: string): unknown => (typeof v === 'object' && v !== null ? Reflect.get(v, key) : undefined);
    const checked: string[] = [];
    names.forEach((name, i) => {
      const reply = replies[i + 1];
      const props = get(get(get(reply, 'return'), 'model'), 'props');
      if (props === undefined) return; // an error reply: a model this QEMU does not define
      expect(props, name).toMatchObject({ ...CPU_MODELS.get(name) });
      checked.push(name);
    });
    expect(checked).toEqual(expect.arrayContaining(['EPYC', 'EPYC-IBPB', 'EPYC-Rome', 'EPYC-Milan']));
  });
});
