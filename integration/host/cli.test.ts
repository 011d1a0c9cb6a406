// `sevsup host` probing this real host: without SEV, exit 0 with SEV unsupported and a reason and
// QEMU's own answer for this host (./this-host.ts); the probe cache used on the second run, and
// --write for a boot-time unit.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliCaptured } from '../../test/support/run-cli.js';
import { ownTmpdir } from '../../test/support/own-tmpdir.js';
import { expectedQemuSevReason, HOST_MAY_HAVE_SEV } from './this-host.js';

const QEMU = '/usr/bin/qemu-system-x86_64';
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-hostcli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
// The probes make their socket directories in this file's own tmpdir(): no process may mention it
// afterwards (QEMU left behind), whatever other files run beside this one.
ownTmpdir('sevsup-hostcli-probe-', 'file');

/** `sevsup host --qemu QEMU ARGS…` in-process. */
const sevsupHost = (...args: string[]) => runCliCaptured('host', '--qemu', QEMU, ...args);

async function sevsupJson(...args: string[]): Promise<{ code: number; json: unknown }> {
  const { code, out } = await sevsupHost('--json', ...args);
  return { code, json: JSON.parse(out) };
}

const NOT_WITHOUT_SEV = 'this host may have SEV (kvm_amd sev=Y or /dev/sev): the "without SEV" answers do not apply';
if (HOST_MAY_HAVE_SEV) process.stderr.write(`integration/host/cli: SKIPPED — ${NOT_WITHOUT_SEV}\n`);

describe.skipIf(HOST_MAY_HAVE_SEV)(`sevsup host on this host${HOST_MAY_HAVE_SEV ? ` (skipped: ${NOT_WITHOUT_SEV})` : ''}`, () => {
  it('answers SEV unsupported with a reason and exits 0, then answers from its cache', async () => {
    const cache = join(dir, 'host-caps.json');
    const first = await sevsupJson('--cache', cache);
    expect(first.code).toBe(0);
    expect(first.json).toMatchObject({ sev: { supported: false, reason: expect.stringMatching(/^not supported, because \S/) } });
    const second = await sevsupJson('--cache', cache);
    expect(second.json).toMatchObject({ sev: { supported: false, source: expect.stringMatching(new RegExp(`^${cache} \\(probe:`)) } });
  });

  it('--live asks QEMU too and still exits 0', async () => {
    const r = await sevsupJson('--live');
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ sev: { supported: false }, sevEs: { supported: false }, sevSnp: { supported: false } });
  });

  it("--live shows QEMU's own answer in the human output", async () => {
    const r = await sevsupHost('--live');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^SEV: +no +not supported, because \S.*\[probe:[a-z_-]+\]$/m);
    const says = /^QEMU says: +(.*)$/m.exec(r.out)?.[1];
    expect(says).toMatch(expectedQemuSevReason() ?? /./);
  });

  it('--write writes what Proxmox and the seed read', async () => {
    const file = join(dir, 'run/qemu-server/hw-params.json');
    const r = await sevsupJson('--write', file);
    expect(r.code).toBe(0);
    const written: unknown = JSON.parse(await readFile(file, 'utf8'));
    expect(written).toMatchObject({ 'amd-sev': { 'sev-support': false, 'sev-support-es': false, 'sev-support-snp': false } });
  });
});
