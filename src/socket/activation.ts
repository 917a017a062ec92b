import { fstatSync, readFileSync } from 'node:fs';
import { SetupError } from '../common/errors.js';
import type { SocketSpec } from '../options/options.js';
import type { BoundSocket } from './socket.js';

/** sd_listen_fds(3): passed descriptors start at 3. */
const SD_LISTEN_FDS_START = 3;

export interface PassedSocket {
  fd: number;
  name: string;
}

/** The sockets systemd (or systemd-socket-activate) passed to this very process, if any. */
export function passedSockets(env: NodeJS.ProcessEnv, pid = process.pid): PassedSocket[] {
  if (env.LISTEN_PID === undefined || Number(env.LISTEN_PID) !== pid) return [];
  const count = Number(env.LISTEN_FDS ?? '0');
  if (!Number.isInteger(count) || count <= 0) return [];
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  return Array.from({ length: count }, (_, i) => ({ fd: SD_LISTEN_FDS_START + i, name: names[i] || 'unknown' }));
}

export type SocketAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number } | { kind: 'unknown' };

/**
 * What a passed descriptor is bound to, read from /proc/net (the socket's inode links the fd to its row):
 * Node cannot call getsockname on a descriptor without starting to accept on it.
 */
export function socketAddress(fd: number): SocketAddress {
  const inode = String(fstatSync(fd).ino);
  for (const line of readProc('/proc/net/unix')) {
    const fields = line.trim().split(/\s+/);
    if (fields[6] === inode) return { kind: 'unix', path: fields[7] ?? '' };
  }
  for (const [file, v6] of [
    ['/proc/net/tcp', false],
    ['/proc/net/tcp6', true],
  ] as const) {
    for (const line of readProc(file)) {
      const fields = line.trim().split(/\s+/);
      if (fields[9] !== inode) continue;
      const [hexHost, hexPort] = fields[1]!.split(':');
      return { kind: 'tcp', host: v6 ? hexToIPv6(hexHost!) : hexToIPv4(hexHost!), port: parseInt(hexPort!, 16) };
    }
  }
  return { kind: 'unknown' };
}

function readProc(file: string): string[] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .slice(1)
      .filter((l) => l.trim() !== '');
  } catch {
    return [];
  }
}

/** /proc/net/tcp writes an IPv4 address as one little-endian 32-bit word. */
function hexToIPv4(hex: string): string {
  const bytes = Buffer.from(hex, 'hex').reverse();
  return [...bytes].join('.');
}

/** /proc/net/tcp6: four little-endian 32-bit words. */
function hexToIPv6(hex: string): string {
  const words: string[] = [];
  for (let i = 0; i < 32; i += 8) {
    const word = Buffer.from(hex.slice(i, i + 8), 'hex')
      .reverse()
      .toString('hex');
    words.push(word.slice(0, 4), word.slice(4));
  }
  const mapped = words.slice(0, 6).join(':') === '0000:0000:0000:0000:0000:ffff';
  if (mapped) return hexToIPv4(Buffer.from(words.slice(6).join(''), 'hex').reverse().toString('hex'));
  return words
    .map((w) => w.replace(/^0+(?=.)/, ''))
    .join(':')
    .replace(/(^|:)0(:0)+(:|$)/, '::');
}

/**
 * Take the passed socket (the one named `name`, else the only one, else the one named "fcgi") as the pool's socket.
 * A -s or -p given as well must describe the same socket: otherwise the unit and the command line disagree.
 */
export function adoptPassedSocket(sockets: PassedSocket[], name: string | undefined, expected: SocketSpec | undefined): BoundSocket {
  const chosen = name !== undefined ? sockets.find((s) => s.name === name) : sockets.length === 1 ? sockets[0] : sockets.find((s) => s.name === 'fcgi');
  if (chosen === undefined) {
    const names = sockets.map((s) => s.name).join(', ');
    throw new SetupError(
      name !== undefined
        ? `no socket named '${name}' was passed (LISTEN_FDNAMES: ${names})`
        : `${sockets.length} sockets were passed (${names}): choose one with --fd-name`,
    );
  }
  const address = socketAddress(chosen.fd);
  if (expected !== undefined && !sameSocket(address, expected)) {
    throw new SetupError(`the socket passed by systemd (${describe(address)}) is not the one given on the command line (${describeSpec(expected)})`);
  }
  const label = `${describe(address)} (passed by systemd as fd ${chosen.fd}, name '${chosen.name}')`;
  const spec: SocketSpec | undefined =
    address.kind === 'unix'
      ? { kind: 'unix', path: address.path, abstract: address.path.startsWith('@') }
      : address.kind === 'tcp'
        ? { kind: 'tcp', host: address.host, port: address.port }
        : undefined;
  // Not ours: never unlinked.
  return { fd: chosen.fd, label, spec };
}

function sameSocket(address: SocketAddress, spec: SocketSpec): boolean {
  if (spec.kind === 'unix') {
    const path = spec.abstract ? `@${spec.path.slice(1)}` : spec.path;
    return address.kind === 'unix' && address.path === path;
  }
  return address.kind === 'tcp' && address.port === spec.port && (spec.host === '0.0.0.0' || spec.host === '::' || address.host === spec.host);
}

const describe = (address: SocketAddress): string =>
  address.kind === 'unix' ? address.path : address.kind === 'tcp' ? `${address.host}:${address.port}` : 'an unknown socket';

const describeSpec = (spec: SocketSpec): string => (spec.kind === 'unix' ? spec.path : `${spec.host}:${spec.port}`);
