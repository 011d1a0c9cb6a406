// The daemon's logger through an injected sink: JSON and pretty lines never carry secret values
// (QMP sev-inject-launch-secret arguments, TIK/TEK, launch session), and pretty output is readable.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createDaemonLogger, parseDaemonLogFormat } from '../../../src/daemon/log-format.js';
import { parseStrictJson } from '../../../src/util/strict-json.js';

const SECRET_VALUES = ['S3CR3T-PAYLOAD', 'PACKET-HEADER-B64', 'TIK-BYTES-0001', 'TEK-BYTES-0002', 'SESSION-BLOB-0003'];

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { stream, text: () => chunks.join('') };
}

/** pino-pretty is a Transform piped to the sink: let it drain. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

function logSecrets(logger: ReturnType<typeof createDaemonLogger>): void {
  logger.info(
    { cmd: 'sev-inject-launch-secret', arguments: { secret: 'S3CR3T-PAYLOAD', 'packet-header': 'PACKET-HEADER-B64', gpa: 8437760 } },
    'qmp command forwarded',
  );
  logger.info({ tik: 'TIK-BYTES-0001', tek: 'TEK-BYTES-0002', session: 'SESSION-BLOB-0003' }, 'owner keys');
  logger
    .child({ vm: 'demo-sev', component: 'proxy' })
    .warn({ request: { arguments: { secret: 'S3CR3T-PAYLOAD' } }, keys: { tik: 'TIK-BYTES-0001' } }, 'nested');
}

describe('createDaemonLogger', () => {
  it('json: a call field repeating a bound key is dropped when equal, kept under shadowed when not', async () => {
    const out = sink();
    const logger = createDaemonLogger({ level: 'info', format: 'json', base: { platform: 'simulated' } }, out.stream);
    const vmLog = logger.child({ vm: 'g1' }).child({ component: 'lifecycle' });
    vmLog.info({ vm: 'g1', pid: 7 }, 'same vm');
    vmLog.info({ vm: 'g2', component: 'launcher', platform: 'simulated', msg: 'x', time: 1 }, 'other values');
    await settle();
    // Strict parsing rejects a repeated key: every line must pass it.
    const lines = out
      .text()
      .trim()
      .split('\n')
      .map((line) => parseStrictJson(line) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ vm: 'g1', component: 'lifecycle', pid: 7, msg: 'same vm' });
    expect(lines[0]).not.toHaveProperty('shadowed');
    expect(lines[1]).toMatchObject({
      vm: 'g1',
      component: 'lifecycle',
      platform: 'simulated',
      msg: 'other values',
      shadowed: { vm: 'g2', component: 'launcher', msg: 'x', time: 1 },
    });
  });

  it('json: one JSON object per line, secrets redacted, other fields kept', async () => {
    const out = sink();
    const logger = createDaemonLogger({ level: 'info', format: 'json' }, out.stream);
    logSecrets(logger);
    await settle();
    const text = out.text();
    for (const value of SECRET_VALUES) expect(text).not.toContain(value);
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({
      level: 30,
      service: 'sevsup',
      msg: 'qmp command forwarded',
      cmd: 'sev-inject-launch-secret',
      arguments: { secret: '[redacted]', 'packet-header': '[redacted]', gpa: 8437760 },
    });
    expect(lines[1]).toMatchObject({ tik: '[redacted]', tek: '[redacted]', session: '[redacted]' });
    expect(lines[2]).toMatchObject({ vm: 'demo-sev', component: 'proxy', keys: { tik: '[redacted]' }, level: 40 });
  });

  it('pretty: readable single lines with level and message, the same redaction', async () => {
    const out = sink();
    const logger = createDaemonLogger({ level: 'info', format: 'pretty', colorize: false }, out.stream);
    logSecrets(logger);
    logger.debug('below the level');
    await settle();
    const text = out.text();
    for (const value of SECRET_VALUES) expect(text).not.toContain(value);
    const lines = text.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: qmp command forwarded \{.*"secret":"\[redacted\]".*"packet-header":"\[redacted\]"/,
    );
    expect(lines[2]).toMatch(/ WARN: nested /);
    expect(lines[2]).toContain('"vm":"demo-sev"');
    expect(text).not.toContain('below the level');
    expect(text).not.toContain('\u001b['); // no colour codes when asked for none
  });

  it('defaults to json at info', async () => {
    const out = sink();
    const logger = createDaemonLogger({}, out.stream);
    logger.debug('hidden');
    logger.info({ n: 1 }, 'shown');
    await settle();
    expect(
      out
        .text()
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { msg: string }).msg),
    ).toEqual(['shown']);
  });

  it('parses format names', () => {
    expect(parseDaemonLogFormat('json')).toBe('json');
    expect(parseDaemonLogFormat('pretty')).toBe('pretty');
    expect(parseDaemonLogFormat('text')).toBeNull();
  });
});
