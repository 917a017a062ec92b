import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildChildEnvironment } from '../../../src/child/environment.js';

const caller = {
  PATH: '/usr/bin',
  HOME: '/root',
  SECRET: 's',
  LISTEN_FDS: '1',
  LISTEN_PID: '1',
  LISTEN_FDNAMES: 'fcgi',
  NOTIFY_SOCKET: '/run/n',
  WATCHDOG_USEC: '1',
  SPAWN_FCGI_TS_INTERNAL_DAEMON: '1',
};

test('inherits the caller environment by default, minus the supervisor-only variables', () => {
  assert.deepEqual(buildChildEnvironment(caller, { env: {} }), { PATH: '/usr/bin', HOME: '/root', SECRET: 's' });
});

test('--copy-env gives a clean environment with only the named variables', () => {
  assert.deepEqual(buildChildEnvironment(caller, { copyEnv: ['PATH', 'MISSING', 'NOTIFY_SOCKET'], env: {} }), { PATH: '/usr/bin' });
});

test('extras, PHP_FCGI_CHILDREN and FCGI_WEB_SERVER_ADDRS are added and override', () => {
  const env = buildChildEnvironment(caller, { copyEnv: ['PATH'], env: { PATH: '/bin', A: 'x y' }, phpChildren: 0, webServerAddrs: '127.0.0.1,::1' });
  assert.deepEqual(env, { PATH: '/bin', A: 'x y', PHP_FCGI_CHILDREN: '0', FCGI_WEB_SERVER_ADDRS: '127.0.0.1,::1' });
});
