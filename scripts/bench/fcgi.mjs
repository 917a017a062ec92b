// The benchmark's readiness and restart probes, on the repo's FastCGI client (tools/fcgi/client.ts,
// bundled by `npm run build` into dist-tools/fcgi-client.mjs: the benchmark runs no TypeScript).
import { FcgiConnection, FcgiProtocolError, FcgiTimeoutError } from '../../dist-tools/fcgi-client.mjs';

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
 * A run's socket: a unix socket path, or `tcp:HOST:PORT` (the stop test's TCP variant).
 * tcpListen: {host, port} for a TCP socket, else null.
 */
export function tcpListen(sock) {
  const m = /^tcp:(.+):(\d+)$/.exec(sock);
  return m ? { host: m[1], port: Number(m[2]) } : null;
}

const failureCode = (error) => (error instanceof FcgiTimeoutError ? 'TIMEOUT' : error instanceof FcgiProtocolError ? 'CLOSED' : (error?.code ?? String(error)));

/**
 * One request on a unix socket. Resolves {ok, stage, code, stdout, appStatus, ms}:
 * stage 'connect' when the connect failed (ENOENT: no socket file, ECONNREFUSED: bound but nobody
 * listens), 'answer' when the connection broke or timed out before END_REQUEST.
 */
export async function fcgiRequest(path, params, timeoutMs = 5000) {
  const t0 = performance.now();
  const ms = () => performance.now() - t0;
  let connection;
  try {
    connection = await FcgiConnection.connect(tcpListen(path) ?? { path }, { timeoutMs });
  } catch (error) {
    return { ok: false, stage: 'connect', code: failureCode(error), ms: ms() };
  }
  try {
    const left = Math.max(1, timeoutMs - ms());
    const answer = await connection.request({ params, exactParams: true, timeoutMs: left });
    return { ok: true, stdout: answer.stdout, stderr: Buffer.from(answer.stderr), appStatus: answer.appStatus, ms: ms() };
  } catch (error) {
    return { ok: false, stage: 'answer', code: failureCode(error), ms: ms() };
  } finally {
    connection.close();
  }
}

export const READY_MARKER = 'BENCH-READY-OK';

/** Does the pool answer ready.php with the marker? */
export async function probe(sockPath, readyScript, timeoutMs = 5000) {
  const res = await fcgiRequest(sockPath, phpParams(readyScript), timeoutMs);
  return { ...res, ok: res.ok && res.stdout.includes(READY_MARKER) };
}
