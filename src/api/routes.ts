// Route table of the control API (HTTP+JSON over a unix socket). Pure: maps a method and URL to a
// route, no I/O. Routes are per VM from the start (`/v1/vms/<vm>/…`) so the daemon can serve many
// guests with the same table that `sevsup run` uses for one.
import { SupervisorError } from '../errors.js';

export type Route =
  | { readonly kind: 'status'; readonly vm: string }
  | { readonly kind: 'measurement'; readonly vm: string }
  | { readonly kind: 'attest'; readonly vm: string };

const METHODS: { readonly [K in Route['kind']]: string } = {
  status: 'GET',
  measurement: 'GET',
  attest: 'POST',
};

/**
 * @throws SUP_ERR_API_NOT_FOUND for an unknown path or a known path with the wrong method;
 *         SUP_ERR_API_BAD_REQUEST for a path that is not valid percent-encoding.
 */
export function matchRoute(method: string, url: string): Route {
  const path = url.split('?', 1)[0] ?? '';
  const parts = path.split('/');
  // ['', 'v1', 'vms', <vm>, <sub>?]
  let route: Route | null = null;
  if (parts.length >= 4 && parts.length <= 5 && parts[0] === '' && parts[1] === 'v1' && parts[2] === 'vms') {
    const vm = decodeSegment(parts[3] ?? '');
    const sub = parts[4];
    if (vm !== '') {
      if (sub === undefined) route = { kind: 'status', vm };
      else if (sub === 'measurement') route = { kind: 'measurement', vm };
      else if (sub === 'attest') route = { kind: 'attest', vm };
    }
  }
  if (route === null) throw new SupervisorError('SUP_ERR_API_NOT_FOUND', `no API route ${method} ${printable(path)}`);
  if (METHODS[route.kind] !== method) {
    throw new SupervisorError('SUP_ERR_API_NOT_FOUND', `no API route ${method} ${printable(path)} (use ${METHODS[route.kind]})`);
  }
  return route;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new SupervisorError('SUP_ERR_API_BAD_REQUEST', `request path segment ${printable(segment)} is not valid percent-encoding`);
  }
}

/** Paths come from clients: bound and de-control them before they reach a message. */
function printable(text: string): string {
  const MAX_ECHO = 200;
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > MAX_ECHO ? `${clean.slice(0, MAX_ECHO)}…` : clean;
}
