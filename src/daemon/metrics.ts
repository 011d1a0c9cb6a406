// Prometheus metrics of `sevsup daemon` (prom-client, a registry of its own, names `sevsup_*`):
// guests by state, launches by outcome, failed fail-closed checks by code, QMP commands the proxy
// refused by reason, control API latency by route, relay attempts and decisions by result; plus an optional loopback-only HTTP listener.
// Owns: metric names, labels and their cardinality bound; the listener's loopback rule.
// Must not: put VM names, client input or anything secret in a label (labels are our own codes,
// reasons and route templates; docs/systemd.md "Metrics" lists them), or listen beyond loopback.
import { createServer, type Server } from 'node:http';
import { BlockList, isIP, type AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { SupervisorError } from '../errors.js';
import { VERSION } from '../version.js';
import { VM_STATES } from '../vm/state.js';

export interface DaemonMetrics {
  /** The callback is read at every scrape: state → number of guests in it. Replaces an earlier one. */
  guestsByState(fn: () => Record<string, number>): void;
  /** One launch ended its start-up: e.g. `running`, `held`, `failed`, `rejected`. */
  launch(outcome: string): void;
  /** A fail-closed check (or launch step) failed with this SUP_ERR_* code. */
  failedCheck(code: string): void;
  /** The QMP proxy refused a command for this reason (proxy/decide.ts RefusalReason). */
  refusedQmp(reason: string): void;
  /** One relay attempt to an owner's service (`attest: relay`): its result word and latency. */
  relayAttempt(result: string, seconds: number): void;
  /** One relayed hold ended: approve, inject, reject, or why it failed (tls, http, bad-answer, deadline…); held → decided. */
  relayOutcome(result: string, seconds: number): void;
  /**
   * The host's SNP certificates, read at every scrape: tables ready (1/0), the VCEK's age in the
   * cache, TCB changes seen. Replaces an earlier callback; null: not kept on this host.
   */
  snpCerts(fn: () => SnpCertsGauge | null): void;
  /** One refresh of the host's SNP certificates ended with this outcome (host-certs.ts RefreshOutcome). */
  snpCertRefresh(outcome: string): void;
  /** One control API request took `seconds`; `route` is the route template, never a raw URL. */
  apiLatency(route: string, seconds: number): void;
  /** The Prometheus text exposition of every metric. */
  render(): Promise<{ contentType: string; body: string }>;
}

export interface SnpCertsGauge {
  readonly ready: boolean;
  readonly ageSeconds: number | null;
  readonly tcbChanges: number;
}

export interface MetricsOptions {
  /** Also export prom-client's process metrics (CPU, memory, fds, event loop lag) as sevsup_process_*, sevsup_nodejs_*. @default true */
  readonly processMetrics?: boolean;
}

export const METRIC_PREFIX = 'sevsup_';
/** Distinct values kept per label; later ones count as "other". Labels are our codes, but a bug must not blow up a TSDB. */
export const MAX_LABEL_VALUES = 64;
/** Label values longer than this are cut (codes and reasons are far shorter). */
const MAX_LABEL_CHARS = 64;
/** Control API calls answer in ms; an approve (cont + status) in well under a second; 30 s is the client's timeout. */
/** An owner's service on the LAN answers in ms; the relay retries up to the hold deadline (minutes). */
const RELAY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const API_LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** A fresh registry with sevsup's metrics; one per daemon (tests may make many). */
export function createMetrics(options: MetricsOptions = {}): DaemonMetrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });

  new Gauge({ name: `${METRIC_PREFIX}build_info`, help: 'sevsup version (always 1)', labelNames: ['version'], registers: [registry] }).set(
    { version: VERSION },
    1,
  );

  let guestStates: () => Record<string, number> = () => ({});
  const stateLabel = bounded();
  new Gauge({
    name: `${METRIC_PREFIX}guests`,
    help: 'Guests known to the daemon, by lifecycle state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      // Every state is present (0 when empty) so that a state's series does not vanish between scrapes.
      for (const state of VM_STATES) this.set({ state }, 0);
      let counts: Record<string, number>;
      try {
        counts = guestStates();
      } catch {
        return; // a scrape must not fail because the daemon's view threw; the zeros stand
      }
      for (const [state, n] of Object.entries(counts)) {
        if (Number.isFinite(n)) this.inc({ state: stateLabel(state) }, n);
      }
    },
  });

  const launches = new Counter({
    name: `${METRIC_PREFIX}launches_total`,
    help: 'Guest launches, by outcome',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const checks = new Counter({
    name: `${METRIC_PREFIX}failed_checks_total`,
    help: 'Launches stopped by a failed fail-closed check, by error code',
    labelNames: ['code'],
    registers: [registry],
  });
  const refused = new Counter({
    name: `${METRIC_PREFIX}qmp_refused_total`,
    help: 'QMP commands refused by the proxy, by reason',
    labelNames: ['reason'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: `${METRIC_PREFIX}api_request_duration_seconds`,
    help: 'Control API request latency, by route',
    labelNames: ['route'],
    buckets: API_LATENCY_BUCKETS,
    registers: [registry],
  });
  const relayAttempts = new Histogram({
    name: `${METRIC_PREFIX}relay_attempt_duration_seconds`,
    help: "Requests to guest owners' services (attest: relay), by result",
    labelNames: ['result'],
    buckets: RELAY_BUCKETS,
    registers: [registry],
  });
  const relayOutcomes = new Histogram({
    name: `${METRIC_PREFIX}relay_decision_duration_seconds`,
    help: 'Relayed holds from held to decided, by outcome',
    labelNames: ['outcome'],
    buckets: RELAY_BUCKETS,
    registers: [registry],
  });
  const relayResultLabel = bounded();
  const relayOutcomeLabel = bounded();
  let snpCerts: () => SnpCertsGauge | null = () => null;
  const snpGauge = (name: string, help: string, pick: (g: SnpCertsGauge) => number | null): void => {
    new Gauge({
      name: `${METRIC_PREFIX}${name}`,
      help,
      registers: [registry],
      collect() {
        this.reset();
        let g: SnpCertsGauge | null = null;
        try {
          g = snpCerts();
        } catch {
          return;
        }
        const v = g === null ? null : pick(g);
        if (v !== null && Number.isFinite(v)) this.set(v);
      },
    });
  };
  snpGauge('snp_certs_ready', "1 when every SNP guest's certificate table holds the platform's current VCEK chain", (g) =>
    g.ready ? 1 : 0,
  );
  snpGauge('snp_certs_age_seconds', 'Age of the VCEK in use, since it was written to the cache', (g) => g.ageSeconds);
  snpGauge('snp_platform_tcb_changes', "Changes of the platform's REPORTED_TCB seen since the daemon started", (g) => g.tcbChanges);
  const snpRefreshes = new Counter({
    name: `${METRIC_PREFIX}snp_cert_refreshes_total`,
    help: "Refreshes of the host's SNP certificates, by outcome",
    labelNames: ['outcome'],
    registers: [registry],
  });
  const snpOutcomeLabel = bounded();
  const outcomeLabel = bounded();
  const codeLabel = bounded();
  const reasonLabel = bounded();
  const routeLabel = bounded();

  return {
    guestsByState: (fn) => {
      guestStates = fn;
    },
    launch: (outcome) => launches.inc({ outcome: outcomeLabel(outcome) }),
    failedCheck: (code) => checks.inc({ code: codeLabel(code) }),
    refusedQmp: (reason) => refused.inc({ reason: reasonLabel(reason) }),
    relayAttempt: (result, seconds) => {
      if (Number.isFinite(seconds) && seconds >= 0) relayAttempts.observe({ result: relayResultLabel(result) }, seconds);
    },
    relayOutcome: (outcome, seconds) => {
      if (Number.isFinite(seconds) && seconds >= 0) relayOutcomes.observe({ outcome: relayOutcomeLabel(outcome) }, seconds);
    },
    snpCerts: (fn) => {
      snpCerts = fn;
    },
    snpCertRefresh: (outcome) => snpRefreshes.inc({ outcome: snpOutcomeLabel(outcome) }),
    apiLatency: (route, seconds) => {
      if (Number.isFinite(seconds) && seconds >= 0) latency.observe({ route: routeLabel(route) }, seconds);
    },
    render: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
  };
}

/** A label-value mapper that keeps at most MAX_LABEL_VALUES distinct values, then says "other". */
function bounded(): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    const clean = value.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_LABEL_CHARS) || 'unknown';
    if (seen.has(clean)) return clean;
    if (seen.size >= MAX_LABEL_VALUES) return 'other';
    seen.add(clean);
    return clean;
  };
}

export interface MetricsListenAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Parse the daemon config's `metrics-listen` value: `127.0.0.1:9464`, `[::1]:9464` or
 * `localhost:9464`. Only loopback: the metrics name states and error codes of guests, which is the
 * host's business; export them further through the host's own scraper or a proxy.
 * @throws SUP_ERR_CONFIG_BAD_VALUE for anything else.
 */
export function parseMetricsListen(text: string): MetricsListenAddress {
  const bad = (why: string): SupervisorError =>
    new SupervisorError('SUP_ERR_CONFIG_BAD_VALUE', `metrics-listen: ${JSON.stringify(text.slice(0, 100))} ${why}`, {
      details: { key: 'metrics-listen' },
    });
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (m === null) throw bad('is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)');
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (port > 65535) throw bad('has a port above 65535');
  if (host === 'localhost') return { host: '127.0.0.1', port };
  if (isLoopback(host)) return { host, port };
  throw bad('is not a loopback address: metrics are served on 127.0.0.0/8 or ::1 only');
}

function isLoopback(host: string): boolean {
  const family = isIP(host);
  if (family === 0) return false;
  const loopback = new BlockList();
  loopback.addSubnet('127.0.0.0', 8, 'ipv4');
  loopback.addAddress('::1', 'ipv6');
  return loopback.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

export interface MetricsListener {
  /** The bound address (the port is the real one when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Slow or idle scrapers get this long; a scrape renders in milliseconds. */
const LISTENER_TIMEOUT_MS = 10_000;

/**
 * Serve `GET /metrics` on a loopback TCP address (the daemon config's `metrics-listen`).
 * @throws SUP_ERR_CONFIG_BAD_VALUE for a non-loopback address, or one that cannot be bound (in use).
 */
export async function startMetricsListener(address: string, metrics: DaemonMetrics): Promise<MetricsListener> {
  const { host, port } = parseMetricsListen(address);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: sevsup serves /metrics only\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    metrics.render().then(
      ({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      () => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('cannot render metrics\n'),
    );
  });
  server.requestTimeout = LISTENER_TIMEOUT_MS;
  server.headersTimeout = LISTENER_TIMEOUT_MS;
  server.keepAliveTimeout = LISTENER_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new SupervisorError('SUP_ERR_CONFIG_BAD_VALUE', `metrics-listen: cannot listen on ${address} (${error.code ?? error.message})`, {
          details: { key: 'metrics-listen', errno: error.code ?? null },
          cause: error,
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  return {
    host: bound.address,
    port: bound.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
