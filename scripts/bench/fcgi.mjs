// A raw FastCGI client for the readiness and restart probes: one request per connection
// (BEGIN_REQUEST as a responder, PARAMS, empty STDIN), STDOUT collected until END_REQUEST.
// Plain JavaScript on purpose: the benchmark imports nothing from the TypeScript sources.
import net from 'node:net';

const BEGIN_REQUEST = 1;
const END_REQUEST = 3;
const PARAMS = 4;
const STDIN = 5;
const STDOUT = 6;
const STDERR = 7;

function record(type, content = Buffer.alloc(0)) {
  const header = Buffer.alloc(8);
  header.writeUInt8(1, 0);
  header.writeUInt8(type, 1);
  header.writeUInt16BE(1, 2);
  header.writeUInt16BE(content.length, 4);
  return Buffer.concat([header, content]);
}

function lengthBytes(n) {
  if (n < 0x80) return Buffer.from([n]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0, 0);
  return b;
}

function encodeParams(params) {
  const parts = [];
  for (const [name, value] of Object.entries(params)) {
    const n = Buffer.from(name);
    const v = Buffer.from(String(value));
    parts.push(lengthBytes(n.length), lengthBytes(v.length), n, v);
  }
  return Buffer.concat(parts);
}

export function requestBytes(params) {
  const begin = Buffer.alloc(8);
  begin.writeUInt16BE(1, 0); // FCGI_RESPONDER, flags 0 (close after the request)
  const p = encodeParams(params);
  return Buffer.concat([record(BEGIN_REQUEST, begin), record(PARAMS, p), record(PARAMS), record(STDIN)]);
}

export function phpParams(scriptFilename, query = '') {
  return {
    SCRIPT_FILENAME: scriptFilename,
    SCRIPT_NAME: `/${scriptFilename.split('/').pop()}`,
    REQUEST_METHOD: 'GET',
    QUERY_STRING: query,
    SERVER_PROTOCOL: 'HTTP/1.1',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'spawn-fcgi-ts-bench',
    REMOTE_ADDR: '127.0.0.1',
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
  };
}

/**
 * One request on a unix socket. Resolves {ok, stage, code, stdout, appStatus, ms}:
 * stage 'connect' when the connect failed (ENOENT: no socket file, ECONNREFUSED: bound but nobody
 * listens), 'answer' when the connection broke or timed out before END_REQUEST.
 */
export function fcgiRequest(path, params, timeoutMs = 5000) {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let connected = false;
    let settled = false;
    let buf = Buffer.alloc(0);
    const stdout = [];
    const stderr = [];
    const sock = net.connect({ path });
    const done = (res) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...res, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => done({ ok: false, stage: connected ? 'answer' : 'connect', code: 'TIMEOUT' }), timeoutMs);
    sock.once('connect', () => {
      connected = true;
      sock.write(requestBytes(params));
    });
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 8) {
        const type = buf[1];
        const len = buf.readUInt16BE(4);
        const pad = buf[6];
        if (buf.length < 8 + len + pad) break;
        const content = buf.subarray(8, 8 + len);
        buf = buf.subarray(8 + len + pad);
        if (type === STDOUT) stdout.push(Buffer.from(content));
        else if (type === STDERR) stderr.push(Buffer.from(content));
        else if (type === END_REQUEST) {
          done({ ok: true, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), appStatus: content.readUInt32BE(0) });
          return;
        }
      }
    });
    sock.once('error', (error) => done({ ok: false, stage: connected ? 'answer' : 'connect', code: error.code ?? String(error) }));
    sock.once('close', () => done({ ok: false, stage: connected ? 'answer' : 'connect', code: 'CLOSED' }));
  });
}

export const READY_MARKER = 'BENCH-READY-OK';

/** Does the pool answer ready.php with the marker? */
export async function probe(sockPath, readyScript, timeoutMs = 5000) {
  const res = await fcgiRequest(sockPath, phpParams(readyScript), timeoutMs);
  return { ...res, ok: res.ok && res.stdout.includes(READY_MARKER) };
}
