// POSIX shell quoting of one argument, for showing a command line to a person (`sevsup showcmd`, the
// demo's narration). Pure. Must not: be used to build a command that a shell runs.

/** Quote one argument for a POSIX shell: bare when it is plainly safe, single-quoted otherwise. */
export function shellQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}
