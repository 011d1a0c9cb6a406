// A raw QMP relay session for a human at the CLI (`sevsup qmp`, `sevsup monitor`) on a guest's
// proxy socket: greeting read and checked, capabilities negotiated, then caller-built messages
// sent as they are and the raw replies that answer them returned; events go to a listener.
// Owns: that session (framing.ts splits the stream, message.ts classifies each message).
// Must not: interpret a reply (a refusal is a QMP error the caller prints), choose the socket
// (the CLI does), or connect to QEMU's own monitor (the typed QmpClient does that).
// Why not QmpClient: the caller's `id` and members travel unchanged and its reply comes back raw
// (`--json` prints it); QmpClient owns its id namespace and unwraps replies.
import { createConnection, type Socket } from 'node:net';
import { SupervisorError } from '../errors.js';
import { isRecord } from '../util/is-record.js';
import { QmpFramer } from './framing.js';
import { parseInbound } from './message.js';

export type RawMessage = Record<string, unknown>;

/** Prefix of the ids given to messages that carry none (the caller's own ids are kept). */
const RELAY_ID_PREFIX = 'sevsup-cli-';

/** The message kind as message.ts reads it; undefined when it is not a valid QMP message. */
function kindOf(value: RawMessage): string | undefined {
  try {
    return parseInbound(value).kind;
  } catch {
    return undefined;
  }
}

/** A QMP peer that has read the greeting and negotiated capabilities. */
export class QmpRelay {
  private readonly framer = new QmpFramer();
  private readonly waiting: ((value: RawMessage) => void)[] = [];
  private nextId = 1;
  /** Called with each asynchronous event, raw. */
  onEvent: (event: RawMessage) => void = () => {};
  /** Settles when the connection is closed (by either side). */
  readonly closed: Promise<void>;

  private constructor(private readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {}); // surfaces as 'close'; the pending send reports it
    socket.on('data', (chunk: Buffer) => {
      for (const item of this.framer.push(chunk)) {
        if (item.kind !== 'value') continue;
        let value: unknown;
        try {
          value = JSON.parse(item.text);
        } catch {
          continue;
        }
        if (!isRecord(value)) continue;
        // Anything with an `event` member is not an answer, even if message.ts finds it malformed.
        if (Object.hasOwn(value, 'event')) this.onEvent(value);
        else this.waiting.shift()?.(value);
      }
    });
  }

  /**
   * Connect to `path`, read the greeting and negotiate.
   * @throws SUP_ERR_API_UNREACHABLE at once when nothing listens there (no retry: a guest's
   *   proxy socket exists while the guest runs), or when the proxy closes during the handshake.
   * @throws SUP_ERR_QMP_GREETING, SUP_ERR_QMP_NEGOTIATION
   */
  static async open(path: string): Promise<QmpRelay> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection(path);
      s.once('connect', () => resolve(s));
      s.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          new SupervisorError(
            'SUP_ERR_API_UNREACHABLE',
            `cannot connect to the QMP proxy socket ${path}: ${error.code ?? error.message}; is the guest running?`,
            { details: { path } },
          ),
        ),
      );
    });
    const relay = new QmpRelay(socket);
    try {
      const greeting = await relay.reply();
      if (!Object.hasOwn(greeting, 'QMP') || kindOf(greeting) !== 'greeting')
        throw new SupervisorError('SUP_ERR_QMP_GREETING', `${path} did not greet like a QMP monitor`);
      const negotiated = await relay.send({ execute: 'qmp_capabilities' });
      if (kindOf(negotiated) !== 'return')
        throw new SupervisorError('SUP_ERR_QMP_NEGOTIATION', 'the proxy refused capabilities negotiation');
    } catch (error) {
      relay.close();
      throw error;
    }
    return relay;
  }

  /** The next greeting or reply; rejects when the proxy closes the connection first. */
  private reply(): Promise<RawMessage> {
    const reply = new Promise<RawMessage>((resolve) => this.waiting.push(resolve));
    return Promise.race([
      reply,
      this.closed.then(() => {
        throw new SupervisorError('SUP_ERR_API_UNREACHABLE', 'the QMP proxy closed the connection');
      }),
    ]);
  }

  /**
   * Send one message, with its own `id` and members exactly (an id is added only when it has
   * none), and resolve with the raw reply that answers it. One in-band command at a time:
   * replies come in order.
   * @throws SUP_ERR_API_UNREACHABLE when the proxy closes the connection before answering.
   */
  send(message: RawMessage): Promise<RawMessage> {
    const withId = Object.hasOwn(message, 'id') ? message : { ...message, id: `${RELAY_ID_PREFIX}${this.nextId++}` };
    const reply = this.reply();
    this.socket.write(`${JSON.stringify(withId)}\n`);
    return reply;
  }

  close(): void {
    this.socket.end();
  }
}
