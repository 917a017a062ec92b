#!/usr/bin/env node
// A minimal FastCGI responder with no dependencies, for spawn-fcgi and spawn-fcgi-ts.
// It serves on the listening socket inherited as fd 0 (FCGI_LISTENSOCK_FILENO):
//   spawn-fcgi -n -s /tmp/hello.sock -- /usr/bin/node examples/hello-fcgi.mjs
// SIGTERM or SIGUSR1: stop accepting, finish the requests in flight, exit 0.
import net from 'node:net';

const T = { BEGIN: 1, ABORT: 2, END: 3, PARAMS: 4, STDIN: 5, STDOUT: 6, GET_VALUES: 9, GET_VALUES_RESULT: 10, UNKNOWN: 11 };
const RESPONDER = 1, KEEP_CONN = 1;
const COMPLETE = 0, CANT_MPX_CONN = 1, UNKNOWN_ROLE = 3;
const VALUES = { FCGI_MAX_CONNS: '100', FCGI_MAX_REQS: '100', FCGI_MPXS_CONNS: '0' };

function record(type, id, content = Buffer.alloc(0)) {
  const pad = (8 - (content.length % 8)) % 8;
  const b = Buffer.alloc(8 + content.length + pad);
  b.writeUInt8(1, 0); b.writeUInt8(type, 1); b.writeUInt16BE(id, 2);
  b.writeUInt16BE(content.length, 4); b.writeUInt8(pad, 6);
  content.copy(b, 8);
  return b;
}
function stream(type, id, data) { // data in records of <= 65535 bytes, then the empty end record
  const out = [];
  for (let o = 0; o < data.length; o += 0xffff) out.push(record(type, id, data.subarray(o, o + 0xffff)));
  out.push(record(type, id));
  return Buffer.concat(out);
}
function endRequest(id, appStatus, protocolStatus) {
  const c = Buffer.alloc(8);
  c.writeUInt32BE(appStatus, 0); c.writeUInt8(protocolStatus, 4);
  return record(T.END, id, c);
}
function decodePairs(buf) {
  const out = [];
  let o = 0;
  const len = () => { if (buf[o] < 0x80) return buf[o++]; const n = buf.readUInt32BE(o) & 0x7fffffff; o += 4; return n; };
  while (o < buf.length) {
    const nl = len(), vl = len();
    out.push([buf.toString('utf8', o, o + nl), buf.toString('utf8', o + nl, o + nl + vl)]);
    o += nl + vl;
  }
  return out;
}
function encodePairs(pairs) {
  const len = (n) => { if (n < 0x80) return Buffer.from([n]); const b = Buffer.alloc(4); b.writeUInt32BE((n | 0x80000000) >>> 0); return b; };
  return Buffer.concat(pairs.flatMap(([n, v]) => { const nb = Buffer.from(n), vb = Buffer.from(v); return [len(nb.length), len(vb.length), nb, vb]; }));
}

let stopping = false;
const connections = new Set();

function handle(socket) {
  const conn = { socket, req: null };
  connections.add(conn);
  socket.on('close', () => connections.delete(conn));
  socket.on('error', () => {}); // a peer that resets is not our problem
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 8) {
      if (buf[0] !== 1) { socket.destroy(); return; }
      const len = buf.readUInt16BE(4), total = 8 + len + buf[6];
      if (buf.length < total) break;
      onRecord(conn, buf[1], buf.readUInt16BE(2), buf.subarray(8, 8 + len));
      buf = buf.subarray(total);
    }
  });
}

function onRecord(conn, type, id, content) {
  const { socket } = conn;
  if (id === 0) { // management record
    if (type === T.GET_VALUES) {
      const answer = decodePairs(content).filter(([n]) => n in VALUES).map(([n]) => [n, VALUES[n]]);
      socket.write(record(T.GET_VALUES_RESULT, 0, encodePairs(answer)));
    } else {
      const c = Buffer.alloc(8); c.writeUInt8(type, 0);
      socket.write(record(T.UNKNOWN, 0, c));
    }
    return;
  }
  if (type === T.BEGIN) {
    const role = content.readUInt16BE(0), keepConn = (content[2] & KEEP_CONN) !== 0;
    if (conn.req) { socket.write(endRequest(id, 0, CANT_MPX_CONN)); return; }
    if (role !== RESPONDER) { socket.write(endRequest(id, 0, UNKNOWN_ROLE)); if (!keepConn) socket.end(); return; }
    conn.req = { id, keepConn, params: [], paramsDone: false };
    return;
  }
  const req = conn.req;
  if (!req || req.id !== id) return; // records of an unknown request are ignored
  if (type === T.PARAMS) {
    if (content.length > 0) req.params.push(Buffer.from(content)); else req.paramsDone = true;
  } else if (type === T.STDIN && content.length === 0) {
    respond(conn, req, Object.fromEntries(decodePairs(Buffer.concat(req.params))));
  } else if (type === T.ABORT) {
    finish(conn, req, endRequest(id, 1, COMPLETE));
  }
}

function respond(conn, req, params) {
  const method = params.REQUEST_METHOD || 'GET';
  const uri = params.REQUEST_URI || params.SCRIPT_NAME || '/';
  const body = `Hello from spawn-fcgi-ts example app: pid ${process.pid}, ${method} ${uri}\n`;
  const out = Buffer.from(`Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  finish(conn, req, Buffer.concat([stream(T.STDOUT, req.id, out), endRequest(req.id, 0, COMPLETE)]));
}

function finish(conn, req, bytes) {
  conn.req = null;
  conn.socket.write(bytes);
  if (!req.keepConn || stopping) conn.socket.end();
}

const server = net.createServer(handle);
server.on('error', (err) => {
  process.stderr.write(`hello-fcgi: cannot serve on fd 0 (it must be a listening socket, e.g. under spawn-fcgi): ${err.message}\n`);
  process.exit(1);
});
server.listen({ fd: 0 }, () => process.stderr.write(`hello-fcgi: pid ${process.pid} ready\n`));

function stop() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0)); // called once every connection has closed
  for (const conn of connections) if (!conn.req) conn.socket.end(); // idle keep-alive connections
  setTimeout(() => { for (const conn of connections) conn.socket.destroy(); }, 5000).unref(); // peers that never close
}
process.on('SIGTERM', stop);
process.on('SIGUSR1', stop);
