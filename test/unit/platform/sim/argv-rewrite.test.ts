import { describe, expect, it } from 'vitest';
import { readQemuArgv } from '../../../../src/platform/sim/argv-model.js';
import { rewriteQemuArgv } from '../../../../src/platform/sim/argv-rewrite.js';
import { simArgv } from './fixtures.js';

const PRIVATE = '/tmp/sevsup-sim-x/qmp.sock';

function rewrite(argv: string[], accel: 'tcg' | 'kvm' = 'tcg', sevObjectId: string | null = 'sev0'): string[] {
  return rewriteQemuArgv(argv, readQemuArgv(argv), { sevObjectId, monitorPath: PRIVATE, accel });
}

describe('rewriteQemuArgv', () => {
  it('removes the machine link, -pidfile, swaps the accelerator and the monitor path, and keeps the rest', () => {
    const argv = simArgv();
    const out = rewrite(argv);
    expect(out).not.toContain('-pidfile');
    expect(out[out.indexOf('-machine') + 1]).toBe('q35,dump-guest-core=off');
    expect(out[out.indexOf('-accel') + 1]).toBe('tcg');
    const chardev = out.filter((_, i) => out[i - 1] === '-chardev');
    expect(chardev).toEqual([`socket,id=monitor,path=${PRIVATE},server=on,wait=off`]);
    // The sev-guest object stays, unlinked (QEMU validates it; it is inert without the link).
    expect(out[out.indexOf('-object') + 1]).toBe(argv[argv.indexOf('-object') + 1]);
    // Everything else byte for byte, in order.
    const untouched = (a: string[]): string[] =>
      a.filter(
        (_, i) =>
          !['-machine', '-accel', '-chardev', '-pidfile'].includes(a[i] as string) &&
          !['-machine', '-accel', '-chardev', '-pidfile'].includes(a[i - 1] as string),
      );
    expect(untouched(out)).toEqual(untouched(argv));
  });

  it('keeps -accel kvm with --sim-accel kvm', () => {
    const out = rewrite(simArgv(), 'kvm');
    expect(out[out.indexOf('-accel') + 1]).toBe('kvm');
  });

  it('turns several accelerators into one -accel tcg, and -cpu host into max', () => {
    const argv = [
      '-accel',
      'kvm,kernel-irqchip=split',
      '-enable-kvm',
      '-accel',
      'tcg',
      '-cpu',
      'host,+aes',
      '-machine',
      'q35,accel=kvm,confidential-guest-support=sev0,smm=off',
    ];
    expect(rewrite(argv)).toEqual(['-accel', 'tcg', '-cpu', 'max,+aes', '-machine', 'q35,accel=tcg,smm=off']);
  });

  it('leaves a link to something else for QEMU to refuse', () => {
    const argv = ['-machine', 'q35,confidential-guest-support=other'];
    expect(rewrite(argv)).toEqual(argv);
  });

  it('escapes commas in the private monitor path and drops an emptied -machine', () => {
    const argv = [
      '-machine',
      'confidential-guest-support=sev0',
      '-chardev',
      'socket,id=monitor,path=/a,server=on',
      '-mon',
      'chardev=monitor,mode=control',
    ];
    const out = rewriteQemuArgv(argv, readQemuArgv(argv), { sevObjectId: 'sev0', monitorPath: '/p,q/s', accel: 'tcg' });
    expect(out).toEqual(['-chardev', 'socket,id=monitor,path=/p,,q/s,server=on', '-mon', 'chardev=monitor,mode=control']);
  });
});
