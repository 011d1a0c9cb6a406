// One wording for filesystem errors in user messages ("no such file", "permission denied", …),
// and the errno accessor, so every module names I/O failures the same way.
// Must not: throw, or include paths (callers put the path in their own message).

/** The errno code (`ENOENT`, …) of an error, or undefined. */
export function errnoOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  const code: unknown = error.code;
  return typeof code === 'string' ? code : undefined;
}

/** A short human reason for a failed file operation. */
export function describeIoError(error: unknown): string {
  const code = errnoOf(error);
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a path component is not a directory';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EROFS':
      return 'read-only file system';
    case undefined:
      return error instanceof Error ? error.message : 'unknown error';
    default:
      return code;
  }
}
