import { describe, expect, it } from 'vitest';
import {
  parseMemorySize,
  parseObjectOption,
  parseQemuOpts,
  readBool,
  readUint,
  splitQemuArgv,
} from '../../../../src/platform/sim/qemu-opts.js';

describe('splitQemuArgv', () => {
  it('knows which options take no argument', () => {
    const options = splitQemuArgv(['-S', '-accel', 'kvm', '--nodefaults', '-m', '512', 'disk.img', '-enable-kvm', '-no-reboot']);
    expect(options.map((o) => [o.name, o.value])).toEqual([
      ['S', null],
      ['accel', 'kvm'],
      ['nodefaults', null],
      ['m', '512'],
      ['', 'disk.img'],
      ['enable-kvm', null],
      ['no-reboot', null],
    ]);
    expect(options[3]).toMatchObject({ index: 4, span: 2 });
  });
});

describe('parseQemuOpts', () => {
  it('splits on single commas and reads doubled commas as one', () => {
    expect(parseQemuOpts('socket,id=monitor,path=/run/a,,b/mon.sock,server=on,wait=off')).toEqual([
      { raw: 'socket', key: null, value: 'socket' },
      { raw: 'id=monitor', key: 'id', value: 'monitor' },
      { raw: 'path=/run/a,,b/mon.sock', key: 'path', value: '/run/a,b/mon.sock' },
      { raw: 'server=on', key: 'server', value: 'on' },
      { raw: 'wait=off', key: 'wait', value: 'off' },
    ]);
  });

  it('reads a later bare word as a flag set to on, and keeps "=" inside values', () => {
    expect(parseQemuOpts('q35,usb,kernel_irqchip=on,x=a=b').map((p) => [p.key, p.value])).toEqual([
      [null, 'q35'],
      ['usb', 'on'],
      ['kernel_irqchip', 'on'],
      ['x', 'a=b'],
    ]);
  });
});

describe('parseObjectOption', () => {
  it('reads the JSON form and the keyval form with dotted keys', () => {
    expect(parseObjectOption('{"qom-type":"sev-guest","id":"sev0","cbitpos":47}', 'qom-type')).toEqual({
      'qom-type': 'sev-guest',
      id: 'sev0',
      cbitpos: 47,
    });
    expect(parseObjectOption('sev-guest,id=sev0,policy=0x5', 'qom-type')).toEqual({ 'qom-type': 'sev-guest', id: 'sev0', policy: '0x5' });
    expect(parseObjectOption('driver=raw,node-name=fw,file.driver=file,file.filename=/a,,b', null)).toEqual({
      driver: 'raw',
      'node-name': 'fw',
      file: { driver: 'file', filename: '/a,b' },
    });
    expect(parseObjectOption('{"broken"', null)).toBeNull();
  });
});

describe('value readers', () => {
  it.each([
    [47, 47],
    ['47', 47],
    ['0x2f', 47],
    ['057', 47],
    ['0', 0],
    [-1, null],
    ['-1', null],
    ['4294967296', null],
    [1.5, null],
    ['x', null],
  ])('readUint(%j) = %j', (input, expected) => {
    expect(readUint(input, 0xffffffff)).toBe(expected);
  });

  it('reads booleans as QemuOpts and JSON do', () => {
    expect([true, 'on', 'yes', 'true', false, 'off', 'no', 'false', 'maybe'].map(readBool)).toEqual([
      true,
      true,
      true,
      true,
      false,
      false,
      false,
      false,
      null,
    ]);
  });

  it('reads -m sizes with MiB as the default unit', () => {
    expect([parseMemorySize('512'), parseMemorySize('2G'), parseMemorySize('1024M'), parseMemorySize('x')]).toEqual([
      512 * 2 ** 20,
      2 * 2 ** 30,
      2 ** 30,
      null,
    ]);
  });
});
