// The QEMU sub-probe's whole path with stand-in QEMUs (real processes, no QEMU): a fake that
// answers like QEMU on an SEV host, one that cannot start, and one that never opens its monitor.
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { probeQemuSevCapabilities, qemuProbeArgv } from '../../../src/host/qemu-probe.js';
import { ownTmpdir } from '../../support/own-tmpdir.js';

const FAKE_QEMU = fileURLToPath(new URL('./fixtures/fake-qemu-sev.mjs', import.meta.url));

// Each test's probes make their socket directories in a tmpdir() of the test's own, checked for
// leftover processes after it.
const tmp = ownTmpdir('sevsup-qprobe-', 'test');

async function script(name: string, body: string): Promise<string> {
  const path = join(tmp.path(), name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

describe('probeQemuSevCapabilities', () => {
  it('uses a paused, device-less KVM QEMU with its monitor on a socket', () => {
    expect(qemuProbeArgv('/tmp/p/qmp.sock')).toEqual([
      '-machine',
      'none',
      '-accel',
      'kvm',
      '-nodefaults',
      '-display',
      'none',
      '-S',
      '-chardev',
      'socket,id=m,path=/tmp/p/qmp.sock,server=on,wait=off',
      '-mon',
      'chardev=m,mode=control',
    ]);
  });

  it('returns cbitpos and reduced-phys-bits from query-sev-capabilities', async () => {
    expect(await probeQemuSevCapabilities({ qemu: FAKE_QEMU })).toEqual({ ok: true, cbitpos: 51, reducedPhysBits: 1 });
  });

  it('a QEMU that cannot start answers with its own message', async () => {
    const qemu = await script(
      'qemu-no-kvm',
      "echo 'qemu-system-x86_64: -accel kvm: Could not access KVM kernel module: Permission denied' >&2\n" +
        "echo 'qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied' >&2\nexit 1",
    );
    expect(await probeQemuSevCapabilities({ qemu })).toEqual({
      ok: false,
      reason:
        'qemu-system-x86_64: -accel kvm: Could not access KVM kernel module: Permission denied; qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied',
    });
  });

  it('a QEMU whose monitor never answers is bounded by the timeout and killed', async () => {
    // `exec` so the pid we kill is the one holding the probe's socket path in its argv.
    const qemu = await script('qemu-mute', `exec ${process.execPath} -e 'setInterval(() => {}, 1000)' -- "$@"`);
    const answer = await probeQemuSevCapabilities({ qemu, timeoutMs: 300 });
    expect(answer.ok).toBe(false);
    expect(!answer.ok && answer.reason).toMatch(
      /^the QEMU probe failed: QMP socket \/.*\/sevsup-probe-[^/]+\/qmp\.sock not accepting connections after 300 ms/,
    );
  });
});
