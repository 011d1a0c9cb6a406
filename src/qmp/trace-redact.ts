// What the QMP trace log shows of an outbound command: its JSON text with secret arguments
// replaced by '[redacted]' (a launch secret, a secret object's data, a VNC password).
// Owns: which commands' arguments are secret, and the redaction. Pure.
// Must not: decide whether trace logging is on, or touch the text sent to QEMU.

/** Commands whose arguments carry secrets, and which of their arguments: never logged. */
const SECRET_ARGUMENTS: ReadonlyMap<string, readonly string[]> = new Map([
  ['sev-inject-launch-secret', ['packet-header', 'secret']],
  ['object-add', ['data']],
  ['set_password', ['password']],
  ['change-vnc-password', ['password']],
]);

/** The JSON text of an outbound command for the trace log, secret arguments redacted. */
export function loggableCommand(name: string, text: string): string {
  const keys = SECRET_ARGUMENTS.get(name);
  if (keys === undefined) return text;
  const wire: unknown = JSON.parse(text);
  if (typeof wire !== 'object' || wire === null || !('arguments' in wire)) return text;
  const args = wire.arguments;
  if (typeof args !== 'object' || args === null) return text;
  const redacted: Record<string, unknown> = { ...args };
  for (const key of keys) if (Object.hasOwn(redacted, key)) redacted[key] = '[redacted]';
  return JSON.stringify({ ...wire, arguments: redacted });
}
