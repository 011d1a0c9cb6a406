import { describe, expect, it } from 'vitest';
import { linkedSevObject, readQemuArgv } from '../../../../src/platform/sim/argv-model.js';
import { MONITOR, PIDFILE, plainArgv, simArgv } from './fixtures.js';

describe('readQemuArgv on buildQemuArgv output', () => {
  it('finds the linked sev-guest object, the accelerator, the firmware, the kernel and the monitor', () => {
    const model = readQemuArgv(simArgv());
    expect(linkedSevObject(model)?.props).toMatchObject({
      'qom-type': 'sev-guest',
      id: 'sev0',
      cbitpos: 47,
      'reduced-phys-bits': 1,
      policy: 9,
      'kernel-hashes': true,
    });
    expect(model.cgsKey).toBe('confidential-guest-support');
    expect(model.accels).toEqual([{ name: 'kvm', location: '-accel kvm' }]);
    expect(model.startPaused).toBe(true);
    expect(model.firmware).toEqual({ kind: 'bios', path: '/fw/OVMF,sev.fd' });
    expect([model.kernel, model.initrd, model.append]).toEqual(['/boot/vmlinuz', '/boot/initrd.img', 'console=ttyS0 panic=-1']);
    expect([model.vcpus, model.cpuModel, model.memoryBytes]).toEqual([2, 'EPYC', 512 * 2 ** 20]);
    expect(model.monitor).toEqual({ kind: 'chardev', path: MONITOR, chardevId: 'monitor', server: true });
    expect(model.pidfile).toBe(PIDFILE);
  });

  it('sees no linked object for a plain VM', () => {
    const model = readQemuArgv(plainArgv());
    expect(linkedSevObject(model)).toBeNull();
  });
});

describe('readQemuArgv on other spellings', () => {
  const base = ['-chardev', 'socket,id=mon0,path=/r/m,,x.sock,server=on,wait=off', '-mon', 'chardev=mon0,mode=control'];

  it('reads legacy -object, memory-encryption, -enable-kvm and pflash blockdevs', () => {
    const model = readQemuArgv([
      ...base,
      '-enable-kvm',
      '-M',
      'q35,memory-encryption=sev0',
      '-object',
      'sev-guest,id=sev0,cbitpos=47,reduced-phys-bits=1,policy=0x5',
      '-blockdev',
      '{"driver":"file","filename":"/fw/code.fd","node-name":"fw-file","read-only":true}',
      '-blockdev',
      '{"driver":"raw","file":"fw-file","node-name":"fw","read-only":true}',
      '-machine',
      'pflash0=fw',
      '-smp',
      'sockets=2,cores=2',
      '-m',
      'size=1G',
    ]);
    expect(linkedSevObject(model)?.props).toMatchObject({ policy: '0x5', cbitpos: '47' });
    expect(model.cgsKey).toBe('memory-encryption');
    expect(model.accels).toEqual([{ name: 'kvm', location: null }]);
    expect(model.firmware).toEqual({ kind: 'pflash', path: '/fw/code.fd' });
    expect(model.vcpus).toBe(4);
    expect(model.memoryBytes).toBe(2 ** 30);
    expect(model.monitor?.path).toBe('/r/m,x.sock');
    expect(model.startPaused).toBe(false);
  });

  it('reads -machine accel=kvm:tcg in order and -drive if=pflash units', () => {
    const model = readQemuArgv([
      ...base,
      '-machine',
      'q35,accel=kvm:tcg',
      '-drive',
      'if=pflash,format=raw,unit=1,file=/v.fd',
      '-drive',
      'if=pflash,format=raw,unit=0,readonly=on,file=/c.fd',
    ]);
    expect(model.accels.map((a) => a.name)).toEqual(['kvm', 'tcg']);
    expect(model.firmware).toEqual({ kind: 'pflash', path: '/c.fd' });
  });

  it('names firmware it cannot measure', () => {
    const model = readQemuArgv([
      ...base,
      '-blockdev',
      'driver=qcow2,node-name=fw,file.driver=file,file.filename=/f.qcow2',
      '-machine',
      'q35,pflash0=fw',
    ]);
    expect(model.firmware).toMatchObject({ kind: 'unsupported' });
  });

  it('reads a -qmp unix: monitor', () => {
    expect(readQemuArgv(['-qmp', 'unix:/tmp/q.sock,server=on,wait=off']).monitor).toEqual({
      kind: 'qmp',
      path: '/tmp/q.sock',
      chardevId: null,
      server: true,
    });
  });
});
