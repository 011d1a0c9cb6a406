import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVmConfig } from '../../../src/config/vm-config.js';
import { createLogger } from '../../../src/log.js';
import { readVmState, writeVmState, type PersistedVmState } from '../../../src/vm/state-file.js';
import { StateWriter, type StateSnapshot } from '../../../src/vm/state-writer.js';

const spec = parseVmConfig('memory: 512\ncores: 1\n', '/etc/sevsup/vms/demo.conf');
const snapshot = (state: StateSnapshot['state'], secretsInjected = 0): StateSnapshot => ({
  vm: 'demo',
  state,
  platform: 'simulated',
  sev: false,
  pid: 4242,
  startTime: 99,
  monitorSocket: '/run/sevsup/demo/qmp.sock',
  stderrFile: null,
  record: null,
  holdDeadline: null,
  secretsInjected,
  ran: state === 'running',
  error: null,
  updatedAt: '2026-12-02T00:00:00.000Z',
});

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-state-writer-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('StateWriter', () => {
  it('writes land one at a time, in order; flush() waits for the last; the file carries the launch config', async () => {
    const file = join(dir, 'state.json');
    const started: string[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const write = async (path: string, state: PersistedVmState): Promise<void> => {
      started.push(state.state);
      maxConcurrent = Math.max(maxConcurrent, ++concurrent);
      await new Promise((resolve) => setImmediate(resolve));
      await writeVmState(path, state);
      concurrent -= 1;
    };
    const writer = new StateWriter({ file, spec, write, logger: createLogger({ level: 'silent' }) });
    writer.queue(snapshot('starting'));
    writer.queue(snapshot('held', 1));
    writer.queue(snapshot('running', 1));
    await writer.flush();
    expect(started).toEqual(['starting', 'held', 'running']);
    expect(maxConcurrent).toBe(1);
    const read = await readVmState(file);
    expect(read?.state).toBe('running');
    expect(read?.config).toContain('memory: 512');
    expect(read?.configSource).toBe('/etc/sevsup/vms/demo.conf');
    expect(Object.keys(read ?? {}).at(0)).toBe('schema');
    expect(Object.keys(read ?? {}).at(-1)).toBe('updatedAt');
  });

  it('a failed write is logged, not thrown, and later writes still land', async () => {
    const file = join(dir, 'later.json');
    const lines: string[] = [];
    let calls = 0;
    const write = async (path: string, state: PersistedVmState): Promise<void> => {
      calls += 1;
      if (calls === 1) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      await writeVmState(path, state);
    };
    const logger = createLogger({ level: 'error' }, { write: (line: string) => void lines.push(line) });
    const writer = new StateWriter({ file, spec, write, logger });
    writer.queue(snapshot('starting'));
    writer.queue(snapshot('running'));
    await writer.flush();
    expect((await readVmState(file))?.state).toBe('running');
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual([
      'cannot write the VM state file; a restarted daemon may not re-attach this guest',
    ]);
  });
});
