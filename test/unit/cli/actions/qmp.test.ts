// `sevsup qmp` in-process against a real proxy (proxy-rig: FakeQmpServer ← QmpClient ← proxy):
// what it prints, its exit codes, --run-dir/--socket, --json; and parseCommandLine's forms.
// `sevsup monitor` runs as a real process through a pipe in integration/proxy/.
import { afterEach, describe, expect, it } from 'vitest';
import { isSupervisorError } from '../../../../src/errors.js';
import { formatReply, parseCommandLine } from '../../../../src/cli/actions/qmp.js';
import { startProxyRig, type Rig } from '../../../support/proxy-rig.js';
import { runCliCaptured } from '../../../support/run-cli.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  process.exitCode = undefined;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const rig = (): Promise<Rig> => startProxyRig({ socket: 'run/vm1/qmp.sock' }, (f) => void cleanups.push(f));

describe('parseCommandLine', () => {
  it.each([
    ['query-status', { execute: 'query-status' }],
    ['  qom-list {"path":"/"}  ', { execute: 'qom-list', arguments: { path: '/' } }],
    ['{"execute":"query-status","id":{"a":1}}', { execute: 'query-status', id: { a: 1 } }],
  ])('%s', (line, message) => {
    expect(parseCommandLine(line)).toEqual(message);
  });

  it.each([
    ['{"execute":', 'the command is not valid JSON'],
    ['[1]', 'not a QMP command'],
    ['qom-list [1]', 'the arguments of qom-list must be a JSON object'],
    ['qom-list {x}', 'the arguments of qom-list is not valid JSON'],
    ['{"a":1', 'the command is not valid JSON'],
  ])('refuses %s', (line, message) => {
    let caught: unknown;
    try {
      parseCommandLine(line);
    } catch (error) {
      caught = error;
    }
    expect(isSupervisorError(caught) && caught.code).toBe('SUP_ERR_USAGE');
    expect(isSupervisorError(caught) && caught.message).toContain(message);
  });

  it('formats errors and return values', () => {
    expect(formatReply({ error: { class: 'GenericError', desc: 'no' }, id: 1 })).toEqual({ text: 'error (GenericError): no', error: true });
    expect(formatReply({ return: { a: 1 } })).toEqual({ text: '{\n  "a": 1\n}', error: false });
  });
});

describe('sevsup qmp', () => {
  it('prints the return value through <run-dir>/<vm>/qmp.sock and exits 0', async () => {
    const r = await rig();
    const run = await runCliCaptured('qmp', '--run-dir', `${r.dir}/run`, 'vm1', 'query-status');
    expect(run).toEqual({ code: 0, out: '{\n  "status": "prelaunch",\n  "singlestep": false,\n  "running": false\n}\n', err: '' });
    expect(r.forwarded().map((c) => c.command)).toEqual(['query-status']);
  });

  it('--json prints the raw reply line', async () => {
    const r = await rig();
    const run = await runCliCaptured('qmp', '--socket', r.path, '--json', 'vm1', '{"execute":"query-status","id":[7]}');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.out)).toEqual({ return: { status: 'prelaunch', singlestep: false, running: false }, id: [7] });
  });

  it('a refusal: exit 10, the reason on stderr, nothing reaches QEMU', async () => {
    const r = await rig();
    const run = await runCliCaptured('qmp', '--socket', r.path, 'vm1', 'migrate {"uri":"exec:true"}');
    expect(run).toEqual({ code: 10, out: '', err: 'sevsup: error (GenericError): migrate refused by sevsup: migration\n' });
    expect(r.forwarded()).toEqual([]);
  });

  it('an unreachable socket: exit 8 with the path', async () => {
    const r = await rig();
    const run = await runCliCaptured('qmp', '--run-dir', r.dir, 'nosuchvm', 'query-status');
    expect(run.code).toBe(8);
    expect(run.err).toBe(
      `sevsup: cannot connect to the QMP proxy socket ${r.dir}/nosuchvm/qmp.sock: ENOENT; is the guest running? [SUP_ERR_API_UNREACHABLE]\n`,
    );
  });

  it('a malformed command: usage error, nothing sent', async () => {
    const r = await rig();
    const run = await runCliCaptured('qmp', '--socket', r.path, 'vm1', '{"execute":');
    expect(run.code).toBe(2);
    expect(r.forwarded()).toEqual([]);
  });
});
