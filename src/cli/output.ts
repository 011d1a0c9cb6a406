// Small output helpers shared by CLI actions: JSON printing and POSIX shell quoting.
// Must not: decide what to print (actions do) or hide errors.

/** Print a value as pretty JSON followed by a newline. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Quote one argument for a POSIX shell: bare when it is plainly safe, single-quoted otherwise. */
export function shellQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}
