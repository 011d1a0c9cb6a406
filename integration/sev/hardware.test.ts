// End to end on real SEV hardware: probe, launch with kernel-hashes, query-sev confirms the policy,
// the record is written, the guest runs, a migration attempt is refused, clean stop.
// Runs only where /dev/sev exists; everywhere else it is skipped, visibly, with the reason.
// On an SEV host: `bash scripts/setup.sh && SEVSUP_SEV_FIRMWARE=/path/to/OVMF.amdsev.fd npx vitest run integration/sev`
// (the firmware must be an OVMF AmdSev build: Debian's stock OVMF cannot do kernel-hashes).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const HAS_SEV = existsSync('/dev/sev');
const FIRMWARE = process.env['SEVSUP_SEV_FIRMWARE'];
const KERNEL = new URL('../../.cache/test-assets/vmlinuz', import.meta.url).pathname;
const BIN = new URL('../../bin/sevsup', import.meta.url).pathname;
const SKIP_REASON = !HAS_SEV
  ? 'needs SEV hardware: /dev/sev does not exist on this host'
  : !FIRMWARE
    ? 'needs SEVSUP_SEV_FIRMWARE=<an OVMF AmdSev build> for kernel-hashes'
    : '';
const run = promisify(execFile);
// Say why in the run's output too: a skipped file shows only as "skipped" in vitest's summary.
if (SKIP_REASON !== '') process.stderr.write(`integration/sev: SKIPPED — ${SKIP_REASON}\n`);

describe.skipIf(SKIP_REASON !== '')(`SEV hardware end to end${SKIP_REASON ? ` (skipped: ${SKIP_REASON})` : ''}`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sevsup-hw-'));
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('the host probe reports SEV support', async () => {
    const { stdout } = await run(BIN, ['host', '--json']);
    const caps = JSON.parse(stdout) as { sev: { supported: boolean } };
    expect(caps.sev.supported).toBe(true);
  });

  it('launches, measures, runs, refuses migration and stops cleanly', async () => {
    const conf = join(dir, 'hw.conf');
    writeFileSync(
      conf,
      [
        'memory: 1024',
        'cores: 1',
        'cpu: EPYC',
        'bios: ovmf',
        `firmware: ${FIRMWARE ?? ''}`,
        `kernel: ${KERNEL}`,
        'cmdline: console=ttyS0 panic=-1',
        'amd_sev: type=std,nodbg=1,noks=1,kernel-hashes=1',
        '',
      ].join('\n'),
    );
    const runDir = join(dir, 'run');
    const stateDir = join(dir, 'state');
    child = spawn(BIN, ['run', conf, '--platform', 'hardware', '--json', '--run-dir', runDir, '--state-dir', stateDir]);
    const events: Record<string, unknown>[] = [];
    const lines = createInterface({ input: child.stdout! });
    for await (const line of lines) {
      const event = JSON.parse(line) as Record<string, unknown>;
      events.push(event);
      if (event['event'] === 'running' || event['event'] === 'failed') break;
    }
    const measured = events.find((e) => e['event'] === 'measured');
    expect(measured, JSON.stringify(events)).toBeDefined();
    const record = JSON.parse(readFileSync(String(measured?.['record']), 'utf8')) as Record<string, unknown>;
    expect(record).toMatchObject({ schema: 'sevsup.measurement/v1', platform: 'hardware', policy: 0xb, expectedPolicy: 0xb });
    expect(events.at(-1)?.['event']).toBe('running');

    const sev = await run(BIN, ['qmp', 'hw', 'query-sev', '--json', '--run-dir', runDir]);
    expect(JSON.parse(sev.stdout)).toMatchObject({ return: { enabled: true, policy: 0xb, state: 'running' } });
    const migrate = await run(BIN, [
      'qmp',
      'hw',
      '{"execute":"migrate","arguments":{"uri":"exec:cat>/dev/null"}}',
      '--json',
      '--run-dir',
      runDir,
    ]).catch((e: { stdout: string }) => e);
    expect(JSON.parse(migrate.stdout)).toMatchObject({ error: { class: 'GenericError' } });

    const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
