// Resolving the daemon config's `socket-group` (a name or a numeric gid) to a gid, from the group
// database file (Node has no getgrnam). Owns: parsing /etc/group lines. Must not: change any
// file's group (the API server and run-dir preparation do, with the gid this returns).
import { readFile } from 'node:fs/promises';
import { SupervisorError } from '../errors.js';

export const GROUP_FILE = '/etc/group';

/**
 * The gid of `group` (a numeric gid is taken as it is).
 * @throws SUP_ERR_CONFIG_BAD_VALUE when no such group exists.
 */
export async function resolveGroup(group: string, groupFile = GROUP_FILE): Promise<number> {
  if (/^\d+$/.test(group)) return Number(group);
  const text = await readFile(groupFile, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new SupervisorError(
    'SUP_ERR_CONFIG_BAD_VALUE',
    `socket-group: no group named '${group}' in ${groupFile}; create it (groupadd ${group}) or give a numeric gid`,
    {
      details: { key: 'socket-group' },
    },
  );
}
