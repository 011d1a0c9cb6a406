// The owner service's per-peer share of its connections (`max-connections-per-peer`): one peer, by
// remote address and by the host identity it authenticated as, may hold at most that many of the
// service's `max-connections`, so one host (or one stranger) cannot take every slot from the rest.
// Owns: counting open sockets per peer and giving a slot back when its socket closes.
// Must not: read from a socket or answer it (owner-server.ts refuses; this only counts), nor keep a
// peer's entry once it has no socket (the map is bounded by open sockets).
import type { Socket } from 'node:net';

export class PeerSlots {
  private readonly open = new Map<string, number>();
  private readonly counted = new WeakSet<Socket>();

  constructor(readonly limit: number) {}

  /**
   * Count `socket` against `peer` until it closes; false (nothing counted) when `peer` holds
   * `limit` sockets already. A socket is counted once: asking again for it is true.
   */
  take(peer: string, socket: Socket): boolean {
    if (this.counted.has(socket)) return true;
    const n = this.open.get(peer) ?? 0;
    if (n >= this.limit) return false;
    this.open.set(peer, n + 1);
    this.counted.add(socket);
    socket.once('close', () => {
      const left = (this.open.get(peer) ?? 1) - 1;
      if (left <= 0) this.open.delete(peer);
      else this.open.set(peer, left);
    });
    return true;
  }
}

/** A remote address as one peer: IPv4 clients of a dual-stack listener arrive as `::ffff:a.b.c.d`. */
export function peerAddress(socket: Socket): string {
  const a = socket.remoteAddress ?? 'unknown';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}
