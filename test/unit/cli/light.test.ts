// The fast path of `sevsup status|list` and `sevsup --version`: only their plain forms skip commander; anything else
// (help, unknown options, wrong argument counts) goes through the full command table.
import { describe, expect, it } from 'vitest';
import { parseLight } from '../../../src/cli/commands/light.js';

const argv = (...args: string[]): string[] => ['node', 'sevsup', ...args];

describe('parseLight', () => {
  it.each([
    [['status', 'web'], { command: 'status', vm: 'web', options: {} }],
    [['status', 'web', '--json'], { command: 'status', vm: 'web', options: { json: true } }],
    [['status', '--socket', '/s.sock', 'web'], { command: 'status', vm: 'web', options: { socket: '/s.sock' } }],
    [['list', '--socket=/s.sock', '--json'], { command: 'list', vm: null, options: { socket: '/s.sock', json: true } }],
    [['--version'], { command: 'version', vm: null, options: {} }],
    [['-V'], { command: 'version', vm: null, options: {} }],
  ])('%j is light', (args, expected) => {
    expect(parseLight(argv(...args))).toEqual(expected);
  });

  it.each([
    [['status']],
    [['status', 'a', 'b']],
    [['status', 'web', '--help']],
    [['list', '-h']],
    [['list', 'extra']],
    [['status', 'web', '--socket']],
    [['start', 'web']],
    [[]],
    [['--version', 'extra']],
    [['status', '--version']],
  ])('%j is not', (args) => {
    expect(parseLight(argv(...args))).toBeNull();
  });
});
