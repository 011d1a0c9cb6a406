// A datagram listener standing in for systemd's notify socket: Node can neither bind nor receive
// AF_UNIX datagrams, so /usr/bin/python3 does, with SO_PASSCRED on (as systemd has it) so that each
// message comes with the pid the kernel attributes it to, and closes passed fds as systemd does
// (systemd-notify's BARRIER=1 waits for that). One JSON line per datagram on stdout.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

export const PYTHON = '/usr/bin/python3';

const SCRIPT = String.raw`
import array, json, os, socket, struct, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
print(json.dumps({"listening": True}), flush=True)
while True:
    data, anc, flags, _ = s.recvmsg(65536, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(64))
    pid = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
        elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            # BARRIER=1 comes with a pipe fd; closing it (as systemd does) releases systemd-notify.
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(json.dumps({"pid": pid, "data": data.decode("utf-8", "replace")}), flush=True)
`;

export interface Datagram {
  readonly pid: number | null;
  /** The assignments of one message, in order (BARRIER=1 messages of systemd-notify included). */
  readonly lines: readonly string[];
}

/** A running listener on `address` (a path or `@abstract`). */
export class NotifyListener {
  readonly received: Datagram[] = [];
  readonly #child: ChildProcess;
  readonly #waiters: (() => void)[] = [];
  readonly ready: Promise<void>;

  constructor(readonly address: string) {
    this.#child = spawn(PYTHON, ['-c', SCRIPT, address], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buffer = '';
    let onReady: () => void = () => {};
    this.ready = new Promise((resolve, reject) => {
      onReady = resolve;
      this.#child.once('exit', (code) => reject(new Error(`notify listener exited (${code}) before listening`)));
    });
    this.#child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = JSON.parse(buffer.slice(0, nl)) as { listening?: true; pid?: number | null; data?: string };
        buffer = buffer.slice(nl + 1);
        if (line.listening === true) onReady();
        else this.received.push({ pid: line.pid ?? null, lines: (line.data ?? '').split('\n') });
        for (const w of this.#waiters.splice(0)) w();
      }
    });
  }

  /** Messages other than systemd-notify's BARRIER=1. */
  messages(): Datagram[] {
    return this.received.filter((d) => !(d.lines.length === 1 && d.lines[0] === 'BARRIER=1'));
  }

  /** Resolves once a message has a line matching `pattern`. */
  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<Datagram> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages().find((d) => d.lines.some((l) => pattern.test(l)));
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no notify message matching ${pattern} within ${timeoutMs} ms; got ${JSON.stringify(this.messages())}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.kill('SIGTERM');
    await exited;
  }
}

export const HAVE_PYTHON = existsSync(PYTHON);
