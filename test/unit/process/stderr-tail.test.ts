// The bounded stderr tail: lines split across chunks, multi-byte characters split across chunks,
// the byte bound, and the error-line filter.
import { describe, expect, it } from 'vitest';
import { errorLines, StderrTail } from '../../../src/process/stderr-tail.js';

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
    expect(errorLines('qemu: warning: host doesn\'t support x\n\nqemu: -accel kvm: failed\n  \n')).toEqual(['qemu: -accel kvm: failed']);
  });
});
