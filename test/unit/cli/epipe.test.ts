// stdout EPIPE (`sevsup … | head -1`): the CLI ends quietly with 141 (128 + SIGPIPE), as a Unix
// tool killed by SIGPIPE does, instead of an unhandled-'error' stack trace; other errors still throw.
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { EXIT_SIGPIPE, exitQuietlyOnEpipe } from '../../../src/cli/epipe.js';

class Exited extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}
const exit = (code: number): never => {
  throw new Exited(code);
};
const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`write ${code}`), { code });

describe('exitQuietlyOnEpipe', () => {
  it('exits with 141 on EPIPE and rethrows any other error', () => {
    const stream = new EventEmitter();
    exitQuietlyOnEpipe(stream, exit);
    expect(() => stream.emit('error', errno('EPIPE'))).toThrow(expect.objectContaining({ code: EXIT_SIGPIPE }) as Error);
    expect(() => stream.emit('error', errno('EIO'))).toThrow('write EIO');
  });

  it('`sevsup <cmd> --help` into a closed pipe: no stack trace, status 141 (the built CLI)', async () => {
    const bin = fileURLToPath(new URL('../../../bin/sevsup', import.meta.url));
    // `true` exits at once, long before node has started: sevsup's first write gets EPIPE.
    for (const cmd of ['verify', 'measure']) {
      const r = await execa('bash', ['-c', `"$0" ${cmd} --help | true; echo "status=\${PIPESTATUS[0]}" >&2`, bin], { reject: false });
      expect(r.stderr).toBe('status=141');
    }
  });

  it('the light commands, which write to fd 1 themselves, end the same way (the built CLI)', async () => {
    const bin = fileURLToPath(new URL('../../../bin/sevsup', import.meta.url));
    const r = await execa('bash', ['-c', `"$0" --version | true; echo "status=\${PIPESTATUS[0]}" >&2`, bin], { reject: false });
    expect(r.stderr).toBe('status=141');
  });
});
