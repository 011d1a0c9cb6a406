// `sevsup qmp` and `sevsup monitor` as real processes (bin/sevsup, built dist/) against the proxy
// in front of a real, paused QEMU: output, exit codes, refusals with no effect, events in the
// monitor, and the monitor ending when the proxy goes away.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCEL, MISSING, QEMU_IMG, run, startGuest, type Guest } from './guest.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SEVSUP = join(REPO, 'bin', 'sevsup');
const BUILT = existsSync(join(REPO, 'dist', 'bundle', 'sevsup.mjs'));
const SKIP = MISSING !== undefined ? `${MISSING} missing` : BUILT ? null : 'dist/ is not built (npm run build)';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `sevsup ARGS`, writing `input` to its stdin (then EOF) unless `keepOpen`. */
function sevsup(args: readonly string[], input = '', onStart?: (stdin: NodeJS.WritableStream) => void): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SEVSUP, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (onStart) onStart(child.stdin);
    else child.stdin.end(input);
  });
}

describe.skipIf(SKIP !== null)(`sevsup qmp / monitor through the proxy (${ACCEL})${SKIP === null ? '' : ` (skipped: ${SKIP})`}`, () => {
  let guest: Guest;
  beforeAll(async () => {
    guest = await startGuest('clivm');
  });
  afterAll(async () => {
    await guest?.stop();
  });

  const qmp = (...args: string[]): Promise<Result> => sevsup(['qmp', '--run-dir', guest.runDir, ...args]);

  it('sevsup qmp prints the return value; --json prints the raw reply', async () => {
    expect(await qmp('clivm', 'query-status')).toEqual({
      code: 0,
      stdout: '{\n  "status": "prelaunch",\n  "singlestep": false,\n  "running": false\n}\n',
      stderr: '',
    });
    const raw = await qmp('--json', 'clivm', '{"execute":"human-monitor-command","arguments":{"command-line":"info status"},"id":{"n":5}}');
    expect(raw.code).toBe(0);
    expect(JSON.parse(raw.stdout)).toEqual({ return: 'VM status: paused (prelaunch)\r\n', id: { n: 5 } });
  });

  it('sevsup qmp: a refused command exits 10 and has no effect; a QEMU error exits 10 too', async () => {
    const target = join(guest.out, 'cli-migrate.bin');
    expect(await qmp('clivm', `migrate {"uri":"exec:cat > ${target}"}`)).toEqual({
      code: 10,
      stdout: '',
      stderr: 'sevsup: error (GenericError): migrate refused by sevsup: migration\n',
    });
    expect(await qmp('clivm', 'query-sev-launch-measure')).toEqual({
      code: 10,
      stdout: '',
      stderr: 'sevsup: error (GenericError): SEV launch measurement is not available\n',
    });
    expect(existsSync(target)).toBe(false);
    expect(await guest.upstream.execute('query-migrate')).toEqual({});
  });

  it('sevsup qmp: an unknown VM exits 8 naming the socket', async () => {
    const result = await qmp('novm', 'query-status');
    expect(result.code).toBe(8);
    expect(result.stderr).toContain(`${join(guest.runDir, 'novm', 'qmp.sock')}: ENOENT`);
  });

  it('sevsup monitor through a pipe: replies in order, refusals, events, bad lines; exit 0 at EOF', async () => {
    const input = [
      'query-status',
      'human-monitor-command {"command-line":"  savevm m1"}',
      '{"execute":"system_reset","id":"r"}',
      'qom-list {oops',
      'human-monitor-command {"command-line":"info status"}',
      '',
    ].join('\n');
    const result = await sevsup(['monitor', '--run-dir', guest.runDir, 'clivm'], input);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines.slice(0, 5)).toEqual(['{', '  "status": "prelaunch",', '  "singlestep": false,', '  "running": false', '}']);
    expect(lines[5]).toBe('error (GenericError): human-monitor-command refused by sevsup: snapshot-vmstate');
    expect(lines[6]).toMatch(/^event: \{"event":"RESET","data":\{"guest":false,"reason":"host-qmp-system-reset"\}/);
    expect(lines.slice(7)).toEqual([
      '{}',
      'the arguments of qom-list is not valid JSON: {oops',
      '"VM status: paused (prelaunch)\\r\\n"',
      '',
    ]);
    const snapshots = await run(QEMU_IMG, ['snapshot', '-U', '-l', guest.disk]);
    expect(snapshots.stdout).toBe('');
  });

  it('sevsup monitor ends with exit 8 when the proxy goes away', async () => {
    let stdin: NodeJS.WritableStream | undefined;
    const running = sevsup(['monitor', '--run-dir', guest.runDir, 'clivm'], '', (s) => {
      stdin = s;
      s.write('query-name\n');
    });
    const deadline = Date.now() + 10_000;
    while (guest.proxy.clientCount() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 200));
    await guest.proxy.close();
    const result = await running;
    stdin?.end();
    expect(result.code).toBe(8);
    expect(result.stdout).toBe('{}\n');
    expect(result.stderr).toBe('sevsup: the QMP proxy of clivm closed the connection [SUP_ERR_API_UNREACHABLE]\n');
  });
});
