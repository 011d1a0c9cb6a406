// The vm-dir scan: good configs load, a bad one is reported with its coded error and skipped (a
// name that differs from the file's too), and a missing directory is an empty one.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanVmConfigs } from '../../../src/daemon/vm-configs.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'svc-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const GOOD = 'memory: 256\ncores: 1\nbios: ovmf\namd_sev: type=std\n';

describe('scanVmConfigs', () => {
  it('loads the good ones and reports each bad one', async () => {
    const vms = join(dir, 'vms');
    await mkdir(vms);
    await writeFile(join(vms, 'a.conf'), GOOD);
    await writeFile(join(vms, 'b.conf'), 'memory: lots\n');
    await writeFile(join(vms, 'c.conf'), `name: a\n${GOOD}`);
    await writeFile(join(vms, 'notes.txt'), 'not a config');
    await writeFile(join(vms, '.hidden.conf'), 'garbage');
    const scan = await scanVmConfigs(vms);
    expect([...scan.specs.keys()]).toEqual(['a']);
    expect(scan.problems.map((p) => [p.file, p.code])).toEqual([
      [join(vms, 'b.conf'), 'SUP_ERR_CONFIG_BAD_VALUE'],
      [join(vms, 'c.conf'), 'SUP_ERR_CONFIG_CONFLICT'],
    ]);
    expect(scan.problems[1]?.message).toBe(
      `${join(vms, 'c.conf')}:1: name: 'a' does not match the file name 'c.conf'; rename one so they agree`,
    );
  });

  it('treats a missing directory as empty', async () => {
    expect(await scanVmConfigs(join(dir, 'absent'))).toEqual({ specs: new Map(), problems: [] });
  });
});
