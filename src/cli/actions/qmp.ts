// Implementation of `sevsup qmp` and `sevsup monitor`: a human's QMP session on a guest's proxy
// socket (qmp/relay.ts speaks the protocol). Owns: turning a user's line into a QMP message and
// printing replies and events.
// Must not: bypass the proxy (it only ever connects to <run-dir>/<vm>/qmp.sock or --socket), or
// decide what is allowed (the proxy does, and answers refusals like any QMP error).
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { EXIT, SupervisorError } from '../../errors.js';
import { QmpRelay, type RawMessage } from '../../qmp/relay.js';
import { isRecord } from '../../util/is-record.js';
import type { MonitorCliOptions, QmpCliOptions } from '../commands/qmp.js';

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new SupervisorError('SUP_ERR_USAGE', `${what} is not valid JSON: ${text.slice(0, 80)}`);
  }
}

/** Turn `query-status`, `qom-list {"path":"/"}` or a whole JSON command into a QMP message. */
export function parseCommandLine(line: string): RawMessage {
  const text = line.trim();
  if (text.startsWith('{')) {
    const value = parseJson(text, 'the command');
    if (!isRecord(value)) throw new SupervisorError('SUP_ERR_USAGE', 'a QMP command must be a JSON object');
    return value;
  }
  const match = /^([A-Za-z0-9_-]+)\s*(.*)$/s.exec(text);
  if (!match) throw new SupervisorError('SUP_ERR_USAGE', `not a QMP command: ${text.slice(0, 80)}`);
  const [, name = '', rest = ''] = match;
  if (rest === '') return { execute: name };
  const args = parseJson(rest, `the arguments of ${name}`);
  if (!isRecord(args)) throw new SupervisorError('SUP_ERR_USAGE', `the arguments of ${name} must be a JSON object`);
  return { execute: name, arguments: args };
}

function socketPath(vm: string, opts: { runDir: string; socket?: string }): string {
  return opts.socket ?? join(opts.runDir, vm, 'qmp.sock');
}

/** `error (Class): desc` for an error reply, else the pretty-printed `return` value. */
export function formatReply(reply: RawMessage): { text: string; error: boolean } {
  const error = reply['error'];
  if (isRecord(error)) return { text: `error (${String(error['class'])}): ${String(error['desc'])}`, error: true };
  return { text: JSON.stringify(Object.hasOwn(reply, 'return') ? reply['return'] : reply, null, 2), error: false };
}

export async function runQmp(vm: string, command: string, opts: QmpCliOptions): Promise<void> {
  const message = parseCommandLine(command);
  const timeoutMs = Number(opts.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
    throw new SupervisorError('SUP_ERR_USAGE', `--timeout must be a positive integer, got ${opts.timeout}`);
  const peer = await QmpRelay.open(socketPath(vm, opts));
  let timer: NodeJS.Timeout | undefined;
  try {
    const reply = await Promise.race([
      peer.send(message),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new SupervisorError('SUP_ERR_QMP_TIMEOUT', `no reply within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    const { text, error } = formatReply(reply);
    if (opts.json === true) process.stdout.write(`${JSON.stringify(reply)}\n`);
    else if (error) process.stderr.write(`sevsup: ${text}\n`);
    else process.stdout.write(`${text}\n`);
    // Refused by sevsup or failed in QEMU: the caller asked for something that did not happen.
    if (error) process.exitCode = EXIT.refused;
  } finally {
    clearTimeout(timer);
    peer.close();
  }
}

/**
 * Line mode: one command per line (a name, a name and JSON arguments, or a whole JSON command);
 * replies and events go to stdout as they come. The prompt appears only on a terminal, so the
 * mode can be driven through a pipe. Ctrl-D (end of input) quits.
 */
export async function runMonitor(vm: string, opts: MonitorCliOptions): Promise<void> {
  const peer = await QmpRelay.open(socketPath(vm, opts));
  peer.onEvent = (event) => process.stdout.write(`event: ${JSON.stringify(event)}\n`);
  const interactive = process.stdin.isTTY === true;
  const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: `${vm}> `, terminal: interactive });
  // The proxy going away (guest stopped, proxy closed) ends the session at once, not at the next line.
  let finished = false;
  let lost = false;
  void peer.closed.then(() => {
    if (finished) return;
    lost = true;
    rl.close();
  });
  if (interactive) rl.prompt();
  try {
    for await (const line of rl) {
      if (line.trim() !== '') {
        let message: RawMessage;
        try {
          message = parseCommandLine(line);
        } catch (error: unknown) {
          process.stdout.write(`${error instanceof Error ? error.message : String(error)}\n`);
          if (interactive) rl.prompt();
          continue;
        }
        process.stdout.write(`${formatReply(await peer.send(message)).text}\n`);
      }
      if (interactive) rl.prompt();
    }
  } finally {
    finished = true;
    rl.close();
    peer.close();
  }
  if (lost) throw new SupervisorError('SUP_ERR_API_UNREACHABLE', `the QMP proxy of ${vm} closed the connection`);
}
