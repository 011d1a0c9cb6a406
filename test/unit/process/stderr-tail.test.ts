// The bounded stderr tail: lines split across chunks, multi-byte characters split across chunks,
// the byte bound, and the error-line filter.
import { describe, expect, it } from 'vitest';
import { errorLines, MAX_STDERR_LINE, redactQemuLine, redactQemuOutput, StderrTail } from '../../../src/process/stderr-tail.js';

describe('StderrTail', () => {
  it('returns completed lines as chunks arrive, and the rest on flush', () => {
    const tail = new StderrTail();
    expect(tail.push('qemu: one\nqemu: t')).toEqual(['qemu: one']);
    expect(tail.push('wo\n')).toEqual(['qemu: two']);
    expect(tail.push('no newline')).toEqual([]);
    expect(tail.flush()).toEqual(['no newline']);
    expect(tail.flush()).toEqual([]);
    expect(tail.text()).toBe('qemu: one\nqemu: two\nno newline');
  });

  it('keeps a UTF-8 character split across chunks whole', () => {
    const tail = new StderrTail();
    const bytes = Buffer.from('Größe\n');
    expect(tail.push(bytes.subarray(0, 3))).toEqual([]);
    expect(tail.push(bytes.subarray(3))).toEqual(['Größe']);
  });

  it('keeps only the last maxBytes, from the first whole line', () => {
    const tail = new StderrTail(16);
    tail.push('aaaaaaaaaa\nbbbbbbbbbb\ncccc\n');
    expect(tail.text()).toBe('cccc\n');
  });

  it('hands out an endless line in bounded pieces', () => {
    const tail = new StderrTail(8);
    expect(tail.push('x'.repeat(20))).toEqual(['x'.repeat(20)]);
    expect(tail.push('y\n')).toEqual(['y']);
  });
});

describe('errorLines', () => {
  it('drops blank lines and warnings', () => {
    expect(errorLines("qemu: warning: host doesn't support x\n\nqemu: -accel kvm: failed\n  \n")).toEqual(['qemu: -accel kvm: failed']);
  });
});

describe('redactQemuLine / redactQemuOutput', () => {
  it("keeps QEMU's own messages and drops trace output, which can carry command arguments", () => {
    expect(redactQemuLine("qemu-system-x86_64: warning: host doesn't support requested feature")).toBe(
      "qemu-system-x86_64: warning: host doesn't support requested feature",
    );
    expect(redactQemuLine('qmp_enter_sev_inject_launch_secret {"packet-header": "AAAA", "secret": "BBBB"}')).toBeNull();
    expect(redactQemuLine('12345@1700000000.123456:handle_qmp_command mon 0x55 req {"execute": "x"}')).toBeNull();
  });

  it('cuts an echoed option value, long base64 or hex runs, and bounds a line', () => {
    expect(redactQemuLine('qemu-system-x86_64: -blockdev {"driver":"file","filename":"/srv/a: b"}: Could not open: No such file')).toBe(
      'qemu-system-x86_64: -blockdev …: Could not open: No such file',
    );
    expect(redactQemuLine('qemu-system-x86_64: -accel kvm: sev_kvm_init: cbitpos check failed')).toBe(
      'qemu-system-x86_64: -accel kvm: sev_kvm_init: cbitpos check failed',
    );
    expect(redactQemuLine('qemu-system-x86_64: -bogus-option: invalid option')).toBe('qemu-system-x86_64: -bogus-option: invalid option');
    expect(redactQemuLine('qemu-system-x86_64: -append console=ttyS0 x y: too long')).toBe(
      'qemu-system-x86_64: -append …: (message left out: it echoes the option)',
    );
    expect(redactQemuLine('qemu-system-x86_64: -chardev socket,id=m,path=/run/x.sock: Failed to bind')).toBe(
      'qemu-system-x86_64: -chardev …: Failed to bind',
    );
    expect(redactQemuLine(`qemu-system-x86_64: bad packet ${'QUJD'.repeat(12)}== here`)).toBe(
      'qemu-system-x86_64: bad packet [redacted] here',
    );
    expect(redactQemuLine(`qemu-system-x86_64: ${'a b '.repeat(200)}`)?.length).toBe(MAX_STDERR_LINE + 1);
  });

  it('keeps the accelerator messages QEMU prints without its name (fixed texts, the only reason given)', () => {
    expect(redactQemuLine('Could not access KVM kernel module: No such file or directory')).toBe(
      'Could not access KVM kernel module: No such file or directory',
    );
    expect(redactQemuLine('ioctl(KVM_CREATE_VM) failed: 12 Cannot allocate memory')).toBe(
      'ioctl(KVM_CREATE_VM) failed: 12 Cannot allocate memory',
    );
    // Only at the start of a line: a trace line that mentions the text is still left out.
    expect(redactQemuLine('kvm_vm_ioctl type 0x1 Could not access KVM kernel module: x')).toBeNull();
  });

  it('says once how many lines it left out', () => {
    expect(redactQemuOutput('trace_a x\nqemu-system-x86_64: failed\ntrace_b y\n')).toBe(
      '(sevsup left out 2 lines of QEMU output that can carry command arguments; see qemu.log)\nqemu-system-x86_64: failed\n',
    );
    expect(redactQemuOutput('')).toBe('');
  });
});
