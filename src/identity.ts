import { execaSync } from 'execa';
import { SetupError } from './errors.js';

export interface Credentials {
  uid?: number;
  gid?: number;
  /** Name for initgroups (supplementary groups); known when the user exists in the passwd database. */
  userName?: string;
}

export interface SocketOwner {
  uid?: number;
  gid?: number;
}

interface PasswdEntry { name: string; uid: number; gid: number }
interface GroupEntry { name: string; gid: number }

/** One line of `getent DATABASE KEY`, split on ':'; NSS-aware (LDAP, sssd...) unlike reading /etc/passwd. */
function getent(database: 'passwd' | 'group', key: string): string[] | undefined {
  const result = execaSync('getent', [database, key], { reject: false, extendEnv: true });
  if (result.exitCode !== 0 || typeof result.stdout !== 'string' || result.stdout === '') return undefined;
  return result.stdout.split('\n')[0]!.split(':');
}

const isNumeric = (text: string): boolean => /^\d+$/.test(text);

function lookupUser(key: string): PasswdEntry | undefined {
  const fields = getent('passwd', key);
  return fields && { name: fields[0]!, uid: Number(fields[2]), gid: Number(fields[3]) };
}

function lookupGroup(key: string): GroupEntry | undefined {
  const fields = getent('group', key);
  return fields && { name: fields[0]!, gid: Number(fields[2]) };
}

/**
 * spawn-fcgi's find_user_group, minus its root holes: a user by name or number (a number with no passwd
 * entry is accepted, as upstream), the group by name or number, else the user's primary group.
 * uid 0 and gid 0 are refused as targets, including the case upstream lets through (an unknown numeric uid
 * and no -g silently kept gid 0).
 */
export function resolveCredentials(user: string | undefined, group: string | undefined): Credentials {
  const credentials: Credentials = {};
  let primaryGid: number | undefined;
  if (user !== undefined) {
    if (isNumeric(user)) {
      credentials.uid = Number(user);
      const entry = lookupUser(user);
      if (entry !== undefined) {
        credentials.userName = entry.name;
        primaryGid = entry.gid;
      }
    } else {
      const entry = lookupUser(user);
      if (entry === undefined) throw new SetupError(`can't find user name ${user}`);
      credentials.uid = entry.uid;
      credentials.userName = entry.name;
      primaryGid = entry.gid;
    }
    if (credentials.uid === 0) throw new SetupError('I will not set uid to 0');
  }
  if (group !== undefined) {
    credentials.gid = resolveGroup(group);
  } else if (user !== undefined) {
    if (primaryGid === undefined) {
      throw new SetupError(`couldn't find the user for uid ${credentials.uid}: give the group with -g`);
    }
    credentials.gid = primaryGid;
  }
  if (credentials.gid === 0) throw new SetupError('I will not set gid to 0');
  return credentials;
}

function resolveGroup(group: string): number {
  if (isNumeric(group)) return Number(group);
  const entry = lookupGroup(group);
  if (entry === undefined) throw new SetupError(`can't find group name ${group}`);
  return entry.gid;
}

/** -U/-G: the socket's owner; defaults to the children's uid, and to -U's primary group, else the children's gid. */
export function resolveSocketOwner(socketUser: string | undefined, socketGroup: string | undefined, children: Credentials): SocketOwner {
  let uid = children.uid;
  let gid: number | undefined;
  if (socketUser !== undefined) {
    const entry = lookupUser(socketUser);
    if (entry === undefined && !isNumeric(socketUser)) throw new SetupError(`can't find user name ${socketUser}`);
    uid = entry?.uid ?? Number(socketUser);
    gid = entry?.gid;
  }
  if (socketGroup !== undefined) gid = resolveGroup(socketGroup);
  return { uid, gid: gid ?? children.gid };
}
