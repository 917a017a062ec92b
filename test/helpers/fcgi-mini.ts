/**
 * A tiny FastCGI client for tests: one request per connection (BEGIN_REQUEST
 * as a responder without keep-alive, PARAMS, STDIN), then STDOUT/STDERR are
 * collected until END_REQUEST. Independent of the product's src/fcgi client on
 * purpose, so that tests of one do not depend on the other.
 */
import net from 'node:net';

export const FCGI_BEGIN_REQUEST = 1;
export const FCGI_END_REQUEST = 3;
export const FCGI_PARAMS = 4;
export const FCGI_STDIN = 5;
export const FCGI_STDOUT = 6;
export const FCGI_STDERR = 7;
export const FCGI_RESPONDER = 1;

/** Where to connect: a unix socket path, or a TCP host and port. */
export type FcgiTarget = { path: string } | { host: string; port: number };

export interface FcgiRequestOptions {
  /** Request body sent as FCGI_STDIN (default: empty). */
  stdin?: Buffer | string;
  /** Reject if END_REQUEST has not arrived by then (default 5000 ms). */
  timeoutMs?: number;
  /** FastCGI request id (default 1). */
  requestId?: number;
}

export interface FcgiResponse {
  /** The concatenated FCGI_STDOUT stream (headers and body). */
  stdout: Buffer;
  /** The concatenated FCGI_STDERR stream. */
  stderr: Buffer;
  appStatus: number;
  protocolStatus: number;
}

/** One record: 8-byte header, content, no padding. */
export function encodeRecord(type: number, requestId: number, content: Buffer = Buffer.alloc(0)): Buffer {
  if (content.length > 0xffff) throw new RangeError(`record content too long: ${content.length}`);
  const header = Buffer.alloc(8);
  header.writeUInt8(1, 0);
  header.writeUInt8(type, 1);
  header.writeUInt16BE(requestId, 2);
  header.writeUInt16BE(content.length, 4);
  return Buffer.concat([header, content]);
}

/** A stream split into records of at most 65535 bytes, followed by the empty end-of-stream record. */
export function encodeStream(type: number, requestId: number, data: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += 0xffff) {
    parts.push(encodeRecord(type, requestId, data.subarray(offset, offset + 0xffff)));
  }
  parts.push(encodeRecord(type, requestId));
  return Buffer.concat(parts);
}

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((length | 0x80000000) >>> 0, 0);
  return b;
}

/** FastCGI name-value pairs (1- or 4-byte lengths). */
export function encodeParams(params: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(params)) {
    const n = Buffer.from(name);
    const v = Buffer.from(value);
    parts.push(encodeLength(n.length), encodeLength(v.length), n, v);
  }
  return Buffer.concat(parts);
}

/** Send one request and collect the answer. */
export function fcgiRequest(
  target: FcgiTarget,
  params: Record<string, string>,
  options: FcgiRequestOptions = {},
): Promise<FcgiResponse> {
  const id = options.requestId ?? 1;
  const stdin = typeof options.stdin === 'string' ? Buffer.from(options.stdin) : (options.stdin ?? Buffer.alloc(0));
  const begin = Buffer.alloc(8);
  begin.writeUInt16BE(FCGI_RESPONDER, 0); // role; flags = 0: the app closes the connection
  const request = Buffer.concat([
    encodeRecord(FCGI_BEGIN_REQUEST, id, begin),
    encodeStream(FCGI_PARAMS, id, encodeParams(params)),
    encodeStream(FCGI_STDIN, id, stdin),
  ]);

  return new Promise((resolve, reject) => {
    const socket = 'path' in target ? net.connect(target.path) : net.connect(target.port, target.host);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let pending = Buffer.alloc(0);
    let settled = false;
    const finish = (error: Error | undefined, response?: FcgiResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(response!);
    };
    const timer = setTimeout(
      () => finish(new Error(`FastCGI request timed out after ${options.timeoutMs ?? 5000} ms`)),
      options.timeoutMs ?? 5000,
    );
    socket.on('connect', () => socket.write(request));
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(new Error('FastCGI connection closed before END_REQUEST')));
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 8) {
        const type = pending.readUInt8(1);
        const contentLength = pending.readUInt16BE(4);
        const total = 8 + contentLength + pending.readUInt8(6);
        if (pending.length < total) break;
        const content = pending.subarray(8, 8 + contentLength);
        pending = pending.subarray(total);
        if (type === FCGI_STDOUT) stdout.push(Buffer.from(content));
        else if (type === FCGI_STDERR) stderr.push(Buffer.from(content));
        else if (type === FCGI_END_REQUEST) {
          finish(undefined, {
            stdout: Buffer.concat(stdout),
            stderr: Buffer.concat(stderr),
            appStatus: content.readUInt32BE(0),
            protocolStatus: content.readUInt8(4),
          });
          return;
        }
      }
    });
  });
}

/** Split a CGI response (STDOUT stream) into lower-cased headers and the body. */
export function parseCgiResponse(stdout: Buffer): { headers: Record<string, string>; body: string } {
  const text = stdout.toString('utf8');
  const match = /\r?\n\r?\n/.exec(text);
  const head = match ? text.slice(0, match.index) : '';
  const body = match ? text.slice(match.index + match[0].length) : text;
  const headers: Record<string, string> = {};
  for (const line of head.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { headers, body };
}
