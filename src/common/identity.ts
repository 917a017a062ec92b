import { execaSync } from 'execa';
import { SetupError } from './errors.js';

export interface Credentials {
  uid?: number;
  gid?: number;
  /** The user's name; known when the user exists in the passwd database. */
  userName?: string;
  /**
   * The supplementary groups the helper sets (setgroups): what initgroups(userName, gid) would set, i.e. gid
   * and the groups that list the user as a member; empty when the user has no passwd entry.
   */
  groups?: number[];
}

export interface SocketOwner {
  uid?: number;
  gid?: number;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}
interface GroupEntry {
  name: string;
  gid: number;
}

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
  if (credentials.uid !== undefined || credentials.gid !== undefined) {
    credentials.groups = credentials.userName === undefined ? [] : supplementaryGroups(credentials.userName, credentials.gid!, primaryGid);
  }
  return credentials;
}

/**
 * initgroups(3) in TypeScript, so that the native helper makes no NSS call and can be linked statically:
 * `getent initgroups USER` asks NSS the very question initgroups() asks (files, LDAP, sssd alike) and lists
 * the groups naming USER as a member; `gid` comes first, as initgroups adds it. Where getent has no
 * initgroups database (musl's, busybox's), `id -G USER` answers the same through getgrouplist(), with the
 * passwd primary group added: dropped unless it is `gid`.
 */
function supplementaryGroups(userName: string, gid: number, primaryGid: number | undefined): number[] {
  let members: number[];
  const fromGetent = execaSync('getent', ['initgroups', userName], { reject: false, extendEnv: true });
  if (fromGetent.exitCode === 0 && typeof fromGetent.stdout === 'string' && fromGetent.stdout !== '') {
    members = fromGetent.stdout.trim().split(/\s+/).slice(1).map(Number);
  } else {
    const fromId = execaSync('id', ['-G', '--', userName], { reject: false, extendEnv: true });
    if (fromId.exitCode !== 0 || typeof fromId.stdout !== 'string') {
      throw new SetupError(`can't find the groups of user ${userName}: 'getent initgroups' and 'id -G' failed`);
    }
    members = fromId.stdout
      .trim()
      .split(/\s+/)
      .filter((field) => field !== '')
      .map(Number)
      .filter((id) => id !== primaryGid);
  }
  if (members.some((id) => !Number.isSafeInteger(id) || id < 0)) throw new SetupError(`can't read the groups of user ${userName}`);
  return [...new Set([gid, ...members])];
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
