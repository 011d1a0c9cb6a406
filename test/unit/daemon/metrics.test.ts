// The daemon's Prometheus metrics: exact text exposition lines for each metric, the guests-by-state
// callback read at scrape time, bounded label cardinality, and the loopback-only listener (a real
// TCP socket on 127.0.0.1).
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createMetrics,
  MAX_LABEL_VALUES,
  parseMetricsListen,
  startMetricsListener,
  type MetricsListener,
} from '../../../src/daemon/metrics.js';
import { VERSION } from '../../../src/version.js';

const lines = (body: string): string[] => body.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

describe('createMetrics', () => {
  it('renders every metric in the text format, names prefixed sevsup_', async () => {
    const m = createMetrics({ processMetrics: false });
    let guests: Record<string, number> = { running: 2, held: 1 };
    m.guestsByState(() => guests);
    m.launch('running');
    m.launch('running');
    m.launch('failed');
    m.failedCheck('SUP_ERR_CHECK_POLICY_MISMATCH');
    m.refusedQmp('migration');
    m.refusedQmp('migration');
    m.refusedQmp('memory-dump');
    m.apiLatency('GET /v1/vms/:vm', 0.003);
    m.apiLatency('GET /v1/vms/:vm', 0.2);
    m.relayAttempt('retry', 0.004);
    m.relayAttempt('approve', 0.03);
    m.relayOutcome('approve', 1.2);

    const { contentType, body } = await m.render();
    expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    const got = lines(body);
    expect(got).toEqual(
      expect.arrayContaining([
        `sevsup_build_info{version="${VERSION}"} 1`,
        'sevsup_guests{state="running"} 2',
        'sevsup_guests{state="held"} 1',
        'sevsup_guests{state="failed"} 0',
        'sevsup_launches_total{outcome="running"} 2',
        'sevsup_launches_total{outcome="failed"} 1',
        'sevsup_failed_checks_total{code="SUP_ERR_CHECK_POLICY_MISMATCH"} 1',
        'sevsup_qmp_refused_total{reason="migration"} 2',
        'sevsup_qmp_refused_total{reason="memory-dump"} 1',
        'sevsup_api_request_duration_seconds_bucket{le="0.005",route="GET /v1/vms/:vm"} 1',
        'sevsup_api_request_duration_seconds_bucket{le="0.25",route="GET /v1/vms/:vm"} 2',
        'sevsup_api_request_duration_seconds_count{route="GET /v1/vms/:vm"} 2',
        'sevsup_relay_attempt_duration_seconds_count{result="retry"} 1',
        'sevsup_relay_attempt_duration_seconds_bucket{le="0.05",result="approve"} 1',
        'sevsup_relay_decision_duration_seconds_bucket{le="1",outcome="approve"} 0',
        'sevsup_relay_decision_duration_seconds_count{outcome="approve"} 1',
      ]),
    );
    expect(body).toContain('# TYPE sevsup_guests gauge');
    expect(body).toContain('# TYPE sevsup_launches_total counter');
    expect(body).toContain('# TYPE sevsup_api_request_duration_seconds histogram');
    expect(got.every((l) => l.startsWith('sevsup_'))).toBe(true);

    // The callback is read at every scrape.
    guests = { stopped: 3 };
    const again = lines((await m.render()).body);
    expect(again).toContain('sevsup_guests{state="stopped"} 3');
    expect(again).toContain('sevsup_guests{state="running"} 0');
  });

  it('a throwing state callback leaves zeros rather than failing the scrape', async () => {
    const m = createMetrics({ processMetrics: false });
    m.guestsByState(() => {
      throw new Error('boom');
    });
    expect(lines((await m.render()).body)).toContain('sevsup_guests{state="running"} 0');
  });

  it('bounds label cardinality and cleans label values', async () => {
    const m = createMetrics({ processMetrics: false });
    for (let i = 0; i < MAX_LABEL_VALUES + 10; i++) m.refusedQmp(`reason-${i}`);
    m.refusedQmp('reason-0');
    m.launch('bad\nvalue');
    m.apiLatency('route', Number.NaN);
    const got = lines((await m.render()).body);
    expect(got.filter((l) => l.startsWith('sevsup_qmp_refused_total{'))).toHaveLength(MAX_LABEL_VALUES + 1);
    expect(got).toContain('sevsup_qmp_refused_total{reason="other"} 10');
    expect(got).toContain('sevsup_qmp_refused_total{reason="reason-0"} 2');
    expect(got).toContain('sevsup_launches_total{outcome="bad?value"} 1');
    expect(got.some((l) => l.startsWith('sevsup_api_request_duration_seconds_count{route="route"}'))).toBe(false);
  });

  it('process metrics are prefixed too', async () => {
    const { body } = await createMetrics().render();
    expect(body).toMatch(/^sevsup_process_cpu_user_seconds_total \d/m);
    expect(lines(body).every((l) => l.startsWith('sevsup_'))).toBe(true);
  });
});

describe('parseMetricsListen', () => {
  it.each([
    ['127.0.0.1:9464', { host: '127.0.0.1', port: 9464 }],
    ['127.8.9.10:1', { host: '127.8.9.10', port: 1 }],
    ['[::1]:9464', { host: '::1', port: 9464 }],
    ['localhost:9464', { host: '127.0.0.1', port: 9464 }],
  ])('accepts %s', (text, want) => expect(parseMetricsListen(text)).toEqual(want));

  it.each([
    ['0.0.0.0:9464', 'is not a loopback address'],
    ['10.1.2.3:9464', 'is not a loopback address'],
    ['[::]:9464', 'is not a loopback address'],
    ['example.com:9464', 'is not a loopback address'],
    ['127.0.0.1', 'is not HOST:PORT'],
    ['127.0.0.1:99999', 'has a port above 65535'],
  ])('refuses %s', (text, why) => {
    expect(() => parseMetricsListen(text)).toThrow(
      expect.objectContaining({ code: 'SUP_ERR_CONFIG_BAD_VALUE', message: expect.stringContaining(why) }),
    );
  });
});

describe('startMetricsListener', () => {
  let listener: MetricsListener | undefined;
  afterEach(async () => {
    await listener?.close();
    listener = undefined;
  });

  const get = (port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      });
      req.on('error', reject);
      req.end();
    });

  it('serves GET /metrics on loopback and nothing else', async () => {
    const m = createMetrics({ processMetrics: false });
    m.launch('running');
    listener = await startMetricsListener('127.0.0.1:0', m);
    expect(listener.host).toBe('127.0.0.1');
    const ok = await get(listener.port, '/metrics');
    expect(ok.status).toBe(200);
    expect(ok.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(lines(ok.body)).toContain('sevsup_launches_total{outcome="running"} 1');
    expect((await get(listener.port, '/')).status).toBe(404);
    expect((await get(listener.port, '/metrics', 'POST')).status).toBe(405);
  });

  it('refuses a non-loopback address before binding, and reports an address in use', async () => {
    const m = createMetrics({ processMetrics: false });
    await expect(startMetricsListener('0.0.0.0:0', m)).rejects.toMatchObject({ code: 'SUP_ERR_CONFIG_BAD_VALUE' });
    listener = await startMetricsListener('127.0.0.1:0', m);
    await expect(startMetricsListener(`127.0.0.1:${listener.port}`, m)).rejects.toMatchObject({
      code: 'SUP_ERR_CONFIG_BAD_VALUE',
      message: `metrics-listen: cannot listen on 127.0.0.1:${listener.port} (EADDRINUSE)`,
    });
  });
});
