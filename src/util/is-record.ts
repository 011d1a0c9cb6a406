// The one type guard for "a JSON object" (not null, not an array), used wherever untrusted input
// (wire messages, files, API bodies) is narrowed from `unknown`.

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
