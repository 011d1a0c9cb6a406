// Prometheus metrics of the owner service (prom-client, a registry of its own, names
// `sevsup_owner_*`): requests by outcome, decision latency, replays refused, answered launches kept,
// connections refused for a peer's share.
// Owns: metric names and labels. Must not: put VM or host names, launch ids or anything secret in a
// label (outcomes are our own fixed words).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { VERSION } from '../version.js';

export const OWNER_OUTCOMES = [
  'approve',
  'inject',
  'reject',
  'replay',
  'bad-request',
  'unauthenticated',
  'unknown-guest',
  'too-large',
  'not-found',
  'unavailable',
  'busy',
] as const;

/** Which per-peer share a connection was refused for (owner-peers.ts). */
export type RefusedLimit = 'peer-address' | 'peer-host';
export type OwnerOutcome = (typeof OWNER_OUTCOMES)[number];

export interface OwnerMetrics {
  request(outcome: OwnerOutcome, seconds: number): void;
  answered(fn: () => number): void;
  /** A connection dropped before any request was read (its peer's share was full). */
  refused(limit: RefusedLimit): void;
  render(): Promise<{ contentType: string; body: string }>;
}

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createOwnerMetrics(o: { processMetrics?: boolean } = {}): OwnerMetrics {
  const registry = new Registry();
  if (o.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'sevsup_owner_' });
  new Gauge({ name: 'sevsup_owner_build_info', help: 'sevsup version (always 1)', labelNames: ['version'], registers: [registry] }).set(
    { version: VERSION },
    1,
  );
  const requests = new Counter({
    name: 'sevsup_owner_requests_total',
    help: 'Relay requests, by outcome',
    labelNames: ['outcome'],
    registers: [registry],
  });
  for (const outcome of OWNER_OUTCOMES) requests.inc({ outcome }, 0);
  const latency = new Histogram({
    name: 'sevsup_owner_request_seconds',
    help: 'Time from the request body to the answer, by outcome',
    labelNames: ['outcome'],
    buckets: BUCKETS,
    registers: [registry],
  });
  const refused = new Counter({
    name: 'sevsup_owner_connections_refused_total',
    help: 'Connections dropped unread because their peer (address or host) held its share (max-connections-per-peer)',
    labelNames: ['limit'],
    registers: [registry],
  });
  for (const limit of ['peer-address', 'peer-host'] as const) refused.inc({ limit }, 0);
  let answeredFn: () => number = () => 0;
  new Gauge({
    name: 'sevsup_owner_answered_launches',
    help: 'Launches remembered in the state file (replays of them are refused)',
    registers: [registry],
    collect() {
      this.set(answeredFn());
    },
  });
  return {
    request(outcome, seconds) {
      requests.inc({ outcome });
      latency.observe({ outcome }, seconds);
    },
    answered(fn) {
      answeredFn = fn;
    },
    refused(limit) {
      refused.inc({ limit });
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
