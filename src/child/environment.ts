/** Variables that describe the supervisor's own place under systemd; a child must never see them. */
const SUPERVISOR_ONLY = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'];
/** Internal hand-over variables of spawn-fcgi-ts itself (daemon mode). */
const INTERNAL_PREFIX = 'SPAWN_FCGI_TS_INTERNAL_';

export interface EnvironmentSpec {
  /** lighttpd's bin-copy-environment: when set, only these names are taken from the caller. */
  copyEnv?: string[];
  /** lighttpd's bin-environment: added or overriding. */
  env: Record<string, string>;
  /** `-C`: PHP_FCGI_CHILDREN. */
  phpChildren?: number;
  webServerAddrs?: string;
}

/** The environment every child starts with. Pure: the caller passes its own environment in. */
export function buildChildEnvironment(callerEnv: NodeJS.ProcessEnv, spec: EnvironmentSpec): Record<string, string> {
  const child: Record<string, string> = {};
  const names = spec.copyEnv ?? Object.keys(callerEnv);
  for (const name of names) {
    const value = callerEnv[name];
    if (value !== undefined) child[name] = value;
  }
  for (const name of Object.keys(child)) {
    if (SUPERVISOR_ONLY.includes(name) || name.startsWith(INTERNAL_PREFIX)) delete child[name];
  }
  Object.assign(child, spec.env);
  if (spec.phpChildren !== undefined) child.PHP_FCGI_CHILDREN = String(spec.phpChildren);
  if (spec.webServerAddrs !== undefined) child.FCGI_WEB_SERVER_ADDRS = spec.webServerAddrs;
  return child;
}

export const internalEnvName = (name: string): string => INTERNAL_PREFIX + name;
