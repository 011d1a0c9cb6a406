// Route table of the control API (HTTP+JSON over a unix socket). Pure: maps a method and URL to a
// route, no I/O. Routes are per VM (`/v1/vms/<vm>/…`) so the daemon serves many guests with the
// table `sevsup run` uses for one; the daemon adds the list, lifecycle operations, past records,
// the event stream and `/metrics`.
import { SupervisorError } from '../errors.js';

export type Route =
  | { readonly kind: 'list' }
  | { readonly kind: 'events'; readonly vm: string | null }
  | { readonly kind: 'metrics' }
  | { readonly kind: 'status'; readonly vm: string }
  | { readonly kind: 'measurement'; readonly vm: string }
  | { readonly kind: 'records'; readonly vm: string }
  | { readonly kind: 'record'; readonly vm: string; readonly name: string }
  | { readonly kind: 'attest'; readonly vm: string }
  | { readonly kind: 'start'; readonly vm: string }
  | { readonly kind: 'stop'; readonly vm: string }
  | { readonly kind: 'snapshot'; readonly vm: string }
  | { readonly kind: 'migrate'; readonly vm: string };

export type RouteKind = Route['kind'];

const METHODS: { readonly [K in RouteKind]: 'GET' | 'POST' } = {
  list: 'GET',
  events: 'GET',
  metrics: 'GET',
  status: 'GET',
  measurement: 'GET',
  records: 'GET',
  record: 'GET',
  attest: 'POST',
  start: 'POST',
  stop: 'POST',
  snapshot: 'POST',
  migrate: 'POST',
};

/** Sub-resources of one VM that take no further path segment. */
const VM_ACTIONS = ['measurement', 'attest', 'start', 'stop', 'snapshot', 'migrate'] as const;
type VmAction = (typeof VM_ACTIONS)[number];

/** Longest echo of a client's path in a message. */
const MAX_ECHO = 200;

/**
 * @throws SUP_ERR_API_NOT_FOUND for an unknown path or a known path with the wrong method;
 *         SUP_ERR_API_BAD_REQUEST for a path that is not valid percent-encoding or a bad query.
 */
export function matchRoute(method: string, url: string): Route {
  const [path = '', query = ''] = url.split('?', 2);
  const route = routeOf(path, query);
  if (route === null) throw new SupervisorError('SUP_ERR_API_NOT_FOUND', `no API route ${method} ${printable(path)}`);
  if (METHODS[route.kind] !== method) {
    throw new SupervisorError('SUP_ERR_API_NOT_FOUND', `no API route ${method} ${printable(path)} (use ${METHODS[route.kind]})`);
  }
  return route;
}

function routeOf(path: string, query: string): Route | null {
  if (path === '/metrics') return { kind: 'metrics' };
  const parts = path.split('/');
  if (parts[0] !== '' || parts[1] !== 'v1') return null;
  if (parts.length === 3 && parts[2] === 'events') return { kind: 'events', vm: eventsFilter(query) };
  if (parts[2] !== 'vms') return null;
  if (parts.length === 3) return { kind: 'list' };
  // ['', 'v1', 'vms', <vm>, <sub>?, <name>?]
  const vm = decodeSegment(parts[3] ?? '');
  if (vm === '' || parts.length > 6) return null;
  const sub = parts[4];
  if (sub === undefined) return { kind: 'status', vm };
  if (sub === 'measurements') {
    if (parts.length === 5) return { kind: 'records', vm };
    const name = decodeSegment(parts[5] ?? '');
    return name === '' ? null : { kind: 'record', vm, name };
  }
  if (parts.length !== 5 || !isVmAction(sub)) return null;
  return { kind: sub, vm };
}

function isVmAction(sub: string): sub is VmAction {
  return (VM_ACTIONS as readonly string[]).includes(sub);
}

/** `?vm=NAME` limits the stream to one VM; nothing else is accepted. */
function eventsFilter(query: string): string | null {
  if (query === '') return null;
  const params = new URLSearchParams(query);
  const keys = [...params.keys()];
  const vm = params.get('vm');
  if (keys.length !== 1 || vm === null || vm === '') {
    throw new SupervisorError('SUP_ERR_API_BAD_REQUEST', `events query ${printable(query)}: only ?vm=NAME is supported`);
  }
  return vm;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new SupervisorError('SUP_ERR_API_BAD_REQUEST', `request path segment ${printable(segment)} is not valid percent-encoding`);
  }
}

/** Paths come from clients: bound and de-control them before they reach a message. */
export function printable(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > MAX_ECHO ? `${clean.slice(0, MAX_ECHO)}…` : clean;
}
