// Event fan-out for one QMP session (qemu.qmp events.py): every listener gets its own copy of
// each event it hears, filtered by name and predicate, as a callback or an async iterable.
// Unlike qemu.qmp's, our iterators END when the session ends, so daemon tasks do not leak, and
// their buffers are bounded: a consumer that falls behind gets SUP_ERR_QMP_EVENT_OVERFLOW after
// the events it did buffer, never a silent gap.
// Owns: listener registration, copying, buffering. Must not: parse wire data or do I/O.
import { SupervisorError } from '../errors.js';
import type { QmpEvent } from './message.js';

/**
 * Events an iterator may hold unread. QEMU sends a handful per state change; a thousand unread
 * means the consumer is stuck, and holding more would only hide it.
 */
export const DEFAULT_EVENT_BUFFER = 1024;

export interface EventListenOptions {
  /** Only these event names (exact, as QEMU spells them). @default all */
  readonly names?: readonly string[];
  /** Further predicate, applied after `names`. */
  readonly filter?: (event: QmpEvent) => boolean;
  /** Unread events an iterator holds before it fails. @default DEFAULT_EVENT_BUFFER */
  readonly maxBuffered?: number;
}

interface Subscription {
  readonly names: ReadonlySet<string> | undefined;
  readonly filter: ((event: QmpEvent) => boolean) | undefined;
  deliver(event: QmpEvent): void;
  /** Iterators finish; callbacks need nothing. */
  end?: () => void;
}

function matches(sub: Subscription, event: QmpEvent): boolean {
  if (sub.names !== undefined && !sub.names.has(event.event)) return false;
  return sub.filter === undefined || sub.filter(event);
}

/** Fan-out hub; the client publishes, listeners subscribe. */
export class EventHub {
  private readonly subs = new Set<Subscription>();
  private ended = false;

  /** @param onListenerError reports a callback that threw (it stays subscribed). */
  constructor(private readonly onListenerError: (error: unknown, event: string) => void = () => {}) {}

  get listenerCount(): number {
    return this.subs.size;
  }

  /** Deliver to every matching listener, each its own copy. */
  publish(event: QmpEvent): void {
    let fresh = true;
    for (const sub of [...this.subs]) {
      let ok: boolean;
      try {
        ok = matches(sub, event);
      } catch (error) {
        this.onListenerError(error, event.event);
        continue;
      }
      if (!ok) continue;
      // The first listener may have the original: nobody else holds it.
      const copy = fresh ? event : structuredClone(event);
      fresh = false;
      sub.deliver(copy);
    }
  }

  /** Call `fn` for each matching event until the returned function is called or the hub ends. */
  subscribe(fn: (event: QmpEvent) => void, options: EventListenOptions = {}): () => void {
    if (this.ended) return () => {};
    const sub: Subscription = {
      names: options.names ? new Set(options.names) : undefined,
      filter: options.filter,
      deliver: (event) => {
        try {
          fn(event);
        } catch (error) {
          this.onListenerError(error, event.event);
        }
      },
    };
    this.subs.add(sub);
    return () => {
      this.subs.delete(sub);
    };
  }

  /** An async iterable of matching events; registered now, so nothing is missed before `next()`. */
  listen(options: EventListenOptions = {}): AsyncIterableIterator<QmpEvent> {
    const queue = new EventQueue(options.maxBuffered ?? DEFAULT_EVENT_BUFFER, () => this.subs.delete(sub));
    const sub: Subscription = {
      names: options.names ? new Set(options.names) : undefined,
      filter: options.filter,
      deliver: (event) => queue.push(event),
      end: () => queue.end(),
    };
    if (this.ended) queue.end();
    else this.subs.add(sub);
    return queue;
  }

  /** The session ended: iterators finish after their buffered events; callbacks are dropped. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    const subs = [...this.subs];
    this.subs.clear();
    for (const sub of subs) sub.end?.();
  }
}

type Waiter = { resolve: (r: IteratorResult<QmpEvent, undefined>) => void; reject: (e: unknown) => void };

class EventQueue implements AsyncIterableIterator<QmpEvent> {
  private buffer: QmpEvent[] = [];
  private waiter: Waiter | undefined;
  private finished = false;
  private failure: Error | undefined;

  constructor(
    private readonly max: number,
    private readonly detach: () => void,
  ) {}

  push(event: QmpEvent): void {
    if (this.finished || this.failure) return;
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.resolve({ value: event, done: false });
    } else if (this.buffer.length >= this.max) {
      this.failure = new SupervisorError(
        'SUP_ERR_QMP_EVENT_OVERFLOW',
        `QMP event listener fell behind: ${this.max} events unread, ${event.event} and later events lost`,
        { details: { maxBuffered: this.max, firstLost: event.event } },
      );
      this.detach();
    } else {
      this.buffer.push(event);
    }
  }

  end(): void {
    this.finished = true;
    if (this.waiter && this.buffer.length === 0) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<QmpEvent, undefined>> {
    const event = this.buffer.shift();
    if (event !== undefined) return Promise.resolve({ value: event, done: false });
    if (this.failure) {
      const failure = this.failure;
      this.failure = undefined;
      this.finished = true;
      return Promise.reject(failure);
    }
    if (this.finished) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<QmpEvent, undefined>> {
    this.finished = true;
    this.failure = undefined;
    this.buffer = [];
    this.detach();
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.resolve({ value: undefined, done: true });
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<QmpEvent> {
    return this;
  }
}
