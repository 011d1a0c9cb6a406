// Small output helpers shared by CLI actions: JSON printing (shell quoting: util/shell-quote.ts).
// Must not: decide what to print (actions do) or hide errors.

/** Print a value as pretty JSON followed by a newline. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
