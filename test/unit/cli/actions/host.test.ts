// `sevsup host` in-process, from capability files (no probing here; integration/host/ probes):
// the human and JSON output, --write, and exit codes with exact messages.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatCapsFile, parseCapsFile } from '../../../../src/host/caps-file.js';
import { runCliCaptured } from '../../../support/run-cli.js';

const FIXTURE = fileURLToPath(new URL('../../../fixtures/host-caps/proxmox-sev-only.json', import.meta.url));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-clihost-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sevsup = runCliCaptured;

describe('sevsup host', () => {
  it('prints each feature and value with its reason and source', async () => {
    const r = await sevsup('host', '--host-caps', FIXTURE);
    expect(r).toEqual({
      code: 0,
      err: '',
      out: [
        `SEV:               yes  supported: ${FIXTURE} says "sev-support": true  [${FIXTURE}]`,
        `SEV-ES:            no   not supported, because ${FIXTURE} says "sev-support-es": false  [${FIXTURE}]`,
        `SEV-SNP:           no   not supported, because ${FIXTURE} says "sev-support-snp": false  [${FIXTURE}]`,
        `cbitpos:           47  [${FIXTURE}]`,
        `reduced-phys-bits: 1  [${FIXTURE}]`,
        '',
      ].join('\n'),
    });
  });

  it('--json prints the capabilities as data', async () => {
    const r = await sevsup('host', '--host-caps', FIXTURE, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual(parseCapsFile(await readFile(FIXTURE, 'utf8'), FIXTURE));
  });

  it('--write writes the seed-compatible file', async () => {
    const out = join(dir, 'run', 'qemu-server', 'hw-params.json');
    const r = await sevsup('host', '--host-caps', FIXTURE, '--write', out);
    expect(r.code).toBe(0);
    expect(r.out.endsWith(`wrote ${out}\n`)).toBe(true);
    expect(await readFile(out, 'utf8')).toBe(formatCapsFile(parseCapsFile(await readFile(FIXTURE, 'utf8'), FIXTURE)));
  });

  it('a bad capabilities file exits 4 naming the file and the key', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"amd-sev": {"cbitpos": 47, "reduced-phys-bits": 1, "sev-support": "yes", "sev-support-es": false}}');
    expect(await sevsup('host', '--host-caps', bad)).toEqual({
      code: 4,
      out: '',
      err: `sevsup: host capabilities file ${bad}: key "amd-sev.sev-support" must be true or false (or 0 or 1), got "yes"; fix or delete the file, or rewrite it with "sevsup host --write ${bad}" [SUP_ERR_HOST_CAPS_FILE]\n`,
    });
  });

  it('a missing --host-caps file exits 4', async () => {
    const none = join(dir, 'none.json');
    expect(await sevsup('host', '--host-caps', none)).toEqual({
      code: 4,
      out: '',
      err: `sevsup: host capabilities file ${none} does not exist; create it with "sevsup host --write ${none}" [SUP_ERR_HOST_CAPS_FILE]\n`,
    });
  });

  it('--live with --no-probe is a usage error', async () => {
    expect(await sevsup('host', '--live', '--no-probe')).toEqual({
      code: 2,
      out: '',
      err: 'sevsup: --live cannot be combined with --host-caps or --no-probe [SUP_ERR_USAGE]\n',
    });
  });

  it('an unwritable --write target exits 4', async () => {
    await writeFile(join(dir, 'file'), '');
    const target = join(dir, 'file', 'caps.json');
    const r = await sevsup('host', '--host-caps', FIXTURE, '--write', target);
    expect(r.code).toBe(4);
    expect(r.err).toBe(
      `sevsup: cannot write host capabilities file ${target} (EEXIST); check that its directory exists and is writable [SUP_ERR_HOST_CAPS_WRITE]\n`,
    );
  });
});
