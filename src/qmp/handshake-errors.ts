// The errors of the QMP handshake (greeting, then qmp_capabilities), decided from what happened:
// which step failed, whether the caller aborted, whether QEMU is gone. client.ts runs the handshake.
// Owns: those decisions and their messages (stable codes SUP_ERR_QMP_CONNECT/_GREETING/_NEGOTIATION).
// Pure. Must not: read the socket, wait, or tear the session down (client.ts).
import { SupervisorError, isSupervisorError } from '../errors.js';
import type { QmpInbound } from './message.js';

export type HandshakeStep = 'greeting' | 'negotiation';

/** QEMU exited (or its liveness check says so) before the handshake completed on `where`. */
export function exitedBeforeHandshake(where: string): SupervisorError {
  return new SupervisorError('SUP_ERR_QMP_CONNECT', `QEMU exited before completing the QMP handshake on ${where}`, {
    details: { path: where },
  });
}

/** The connect deadline passed while waiting for `step`'s message. */
export function handshakeTimeout(step: HandshakeStep, where: string, timeoutMs: number): SupervisorError {
  return new SupervisorError(
    step === 'greeting' ? 'SUP_ERR_QMP_GREETING' : 'SUP_ERR_QMP_NEGOTIATION',
    step === 'greeting'
      ? `no QMP greeting from ${where} within ${timeoutMs} ms`
      : `no reply to qmp_capabilities from ${where} within ${timeoutMs} ms`,
    { details: { timeoutMs } },
  );
}

/** Why the reply to our qmp_capabilities (sent with `id`) is not its success; null when it is. */
export function negotiationRefused(reply: QmpInbound, id: string): SupervisorError | null {
  if (reply.kind === 'error') {
    return new SupervisorError('SUP_ERR_QMP_NEGOTIATION', `qmp_capabilities failed (${reply.error.class}): ${reply.error.desc}`, {
      details: { class: reply.error.class, desc: reply.error.desc },
    });
  }
  if (reply.kind !== 'return' || reply.id !== id) {
    return new SupervisorError('SUP_ERR_QMP_NEGOTIATION', `unexpected ${reply.kind} message during capabilities negotiation`);
  }
  return null;
}

/**
 * What a failed handshake rejects with: the caller's abort reason unwrapped; CONNECT when QEMU
 * is gone (whatever the symptom was); else GREETING or NEGOTIATION with the cause.
 */
export function handshakeFailure(
  error: unknown,
  step: HandshakeStep,
  where: string,
  userSignal: AbortSignal | undefined,
  gone: AbortSignal,
  isAlive: (() => boolean) | undefined,
): unknown {
  if (userSignal?.aborted === true && error === userSignal.reason) return error;
  if (gone.aborted && error === gone.reason) return error;
  if (gone.aborted || isAlive?.() === false) {
    return new SupervisorError('SUP_ERR_QMP_CONNECT', exitedBeforeHandshake(where).message, { details: { path: where }, cause: error });
  }
  if (isSupervisorError(error) && (error.code === 'SUP_ERR_QMP_GREETING' || error.code === 'SUP_ERR_QMP_NEGOTIATION')) return error;
  return new SupervisorError(
    step === 'greeting' ? 'SUP_ERR_QMP_GREETING' : 'SUP_ERR_QMP_NEGOTIATION',
    `${step === 'greeting' ? 'no valid QMP greeting' : 'capabilities negotiation failed'} on ${where}: ${error instanceof Error ? error.message : String(error)}`,
    { cause: error },
  );
}
