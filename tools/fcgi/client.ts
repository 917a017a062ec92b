/**
 * A small FastCGI client: one request per call ({@link fcgiRequest}), a
 * management query ({@link fcgiGetValues}), and a connection that can carry
 * several sequential requests with FCGI_KEEP_CONN ({@link FcgiConnection}).
 * Used by tests, health probes and the demo; not a web server.
 */
import net from 'node:net';

import {
  FCGI_KEEP_CONN,
  FCGI_NULL_REQUEST_ID,
  RecordReader,
  RecordType,
  Role,
  decodeEndRequest,
  decodeParams,
  encodeBeginRequest,
  encodeParams,
  encodeRecord,
  encodeStream,
  type FcgiRecord,
} from './protocol.js';

/** A unix socket path (`@name` is a Linux abstract socket) or a TCP address. */
export type FcgiTarget = { path: string } | { host: string; port: number };

export type FcgiRole = 'responder' | 'authorizer' | number;

export interface FcgiRequestOptions {
  /** CGI parameters; missing standard ones get defaults (see {@link defaultParams}). */
  params?: Record<string, string>;
  /** Send `params` exactly as given, without the defaults (tests that control every variable). Default false. */
  exactParams?: boolean;
  /** Request body, sent on FCGI_STDIN. */
  body?: Buffer | string;
  /** Overall time limit (connect + response), in ms. Default 10000. */
  timeoutMs?: number;
  /** Default 'responder'. */
  role?: FcgiRole;
  /**
   * Ask the application to keep the connection open (FCGI_KEEP_CONN).
   * {@link fcgiRequest} closes the connection itself afterwards either way.
   * Default false.
   */
  keepConn?: boolean;
}

export interface FcgiResponse {
  /** Raw FCGI_STDOUT stream. */
  stdout: Buffer;
  /** FCGI_STDERR stream, decoded as UTF-8. */
  stderr: string;
  /** appStatus of FCGI_END_REQUEST. */
  appStatus: number;
  /** protocolStatus of FCGI_END_REQUEST (0 = FCGI_REQUEST_COMPLETE). */
  protocolStatus: number;
  /** HTTP status from the CGI `Status:` header; 302 for a bare `Location:`; else 200. */
  status: number;
  /** CGI response headers, names lower-cased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** The response body after the headers, decoded as UTF-8. */
  body: string;
}

export const DEFAULT_TIMEOUT_MS = 10_000;

/** Rejection of a request that did not finish within `timeoutMs`. */
export class FcgiTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(
    readonly timeoutMs: number,
    what = 'FastCGI request',
  ) {
    super(`${what} timeout: no answer within ${timeoutMs} ms`);
    this.name = 'FcgiTimeoutError';
  }
}

/** The application broke the protocol, or closed the connection too early. */
export class FcgiProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FcgiProtocolError';
  }
}

/** Map `@name` to the abstract socket name Node expects (`\0name`). */
export function socketPathFor(path: string): string {
  return path.startsWith('@') ? `\0${path.slice(1)}` : path;
}

function describeTarget(target: FcgiTarget): string {
  return 'path' in target ? `unix:${target.path}` : `tcp:${target.host}:${target.port}`;
}

function checkTarget(target: FcgiTarget): void {
  if (target === null || typeof target !== 'object') {
    throw new TypeError(`FastCGI target must be { path } or { host, port }, got ${String(target)}`);
  }
  if ('path' in target) {
    if (typeof target.path !== 'string' || target.path === '' || target.path === '@') {
      throw new TypeError(`FastCGI target path must be a non-empty string, got ${JSON.stringify(target.path)}`);
    }
    return;
  }
  if ('host' in target && 'port' in target) {
    if (typeof target.host !== 'string' || target.host === '') {
      throw new TypeError(`FastCGI target host must be a non-empty string, got ${JSON.stringify(target.host)}`);
    }
    if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
      throw new TypeError(`FastCGI target port must be an integer from 1 to 65535, got ${target.port}`);
    }
    return;
  }
  throw new TypeError(`FastCGI target must be { path } or { host, port }, got ${JSON.stringify(target)}`);
}

function roleNumber(role: FcgiRole | undefined): number {
  if (role === undefined || role === 'responder') return Role.RESPONDER;
  if (role === 'authorizer') return Role.AUTHORIZER;
  if (Number.isInteger(role) && role >= 1 && role <= 0xffff) return role;
  throw new TypeError(`FastCGI role must be 'responder', 'authorizer' or a role number, got ${String(role)}`);
}

function checkTimeout(timeoutMs: number): void {
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new TypeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
  }
}

/**
 * The CGI parameters sent for a request: `params`, plus defaults for the
 * standard ones that are missing. REQUEST_METHOD defaults to GET, or POST
 * when a non-empty body is sent.
 */
export function defaultParams(params: Record<string, string> = {}, bodyLength = 0, local?: { port?: number | undefined }): Record<string, string> {
  const query = params.QUERY_STRING ?? '';
  const scriptName = params.SCRIPT_NAME ?? '/';
  const defaults: Record<string, string> = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'spawn-fcgi-ts',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: 'localhost',
    SERVER_ADDR: '127.0.0.1',
    SERVER_PORT: '80',
    REMOTE_ADDR: '127.0.0.1',
    REMOTE_PORT: String(local?.port ?? 0),
    REQUEST_METHOD: bodyLength > 0 ? 'POST' : 'GET',
    REQUEST_URI: query === '' ? scriptName : `${scriptName}?${query}`,
    QUERY_STRING: '',
    CONTENT_LENGTH: String(bodyLength),
  };
  return { ...defaults, ...params };
}

/** Split a CGI response (FCGI_STDOUT) into status, headers and body. */
export function parseCgiResponse(stdout: Buffer): Pick<FcgiResponse, 'status' | 'headers' | 'body'> {
  const crlf = stdout.indexOf('\r\n\r\n');
  const lf = stdout.indexOf('\n\n');
  let end: number;
  let sepLength: number;
  if (crlf !== -1 && (lf === -1 || crlf < lf)) {
    end = crlf;
    sepLength = 4;
  } else if (lf !== -1) {
    end = lf;
    sepLength = 2;
  } else {
    // no header block at all
    return { status: 200, headers: {}, body: stdout.toString('utf8') };
  }
  const headers: Record<string, string> = {};
  for (const line of stdout.toString('latin1', 0, end).split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = Buffer.from(line.slice(colon + 1).trim(), 'latin1').toString('utf8');
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  let status = 200;
  const statusHeader = headers.status;
  if (statusHeader !== undefined) {
    const m = /^(\d{3})\b/.exec(statusHeader);
    if (m) status = Number(m[1]);
  } else if (headers.location !== undefined) {
    status = 302;
  }
  return { status, headers, body: stdout.toString('utf8', end + sepLength) };
}

interface Pending {
  kind: 'request' | 'values';
  requestId: number;
  stdout: Buffer[];
  stderr: Buffer[];
  resolve: (record: FcgiRecord | null) => void;
  reject: (err: Error) => void;
}

/**
 * One connection to a FastCGI application. Requests run one at a time (no
 * multiplexing). Send `keepConn: true` to reuse it for the next request.
 */
export class FcgiConnection {
  readonly socket: net.Socket;
  readonly target: FcgiTarget;
  /** Resolves when the socket is closed, by either side. */
  readonly closed: Promise<void>;
  private readonly reader = new RecordReader();
  private pending: Pending | null = null;
  private isClosed = false;
  private lastError: Error | null = null;
  private nextRequestId = 1;

  private constructor(socket: net.Socket, target: FcgiTarget) {
    this.socket = socket;
    this.target = target;
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.isClosed = true;
        const p = this.pending;
        this.pending = null;
        p?.reject(this.lastError ?? new FcgiProtocolError(`${describeTarget(target)} closed the connection before FCGI_END_REQUEST`));
        resolve();
      });
    });
    socket.on('error', (err) => {
      this.lastError = err;
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  /** Open a connection. Connection errors reject with Node's own error (ECONNREFUSED, ENOENT...). */
  static connect(target: FcgiTarget, options: { timeoutMs?: number } = {}): Promise<FcgiConnection> {
    checkTarget(target);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    checkTimeout(timeoutMs);
    return new Promise((resolve, reject) => {
      const socket =
        'path' in target ? net.createConnection({ path: socketPathFor(target.path) }) : net.createConnection({ host: target.host, port: target.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new FcgiTimeoutError(timeoutMs, `FastCGI connect to ${describeTarget(target)}`));
      }, timeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new FcgiConnection(socket, target));
      });
    });
  }

  /** True once the socket is closed (by the application or by {@link close}). */
  get isOpen(): boolean {
    return !this.isClosed && !this.socket.destroyed;
  }

  /** Send one request and wait for its FCGI_END_REQUEST. */
  async request(options: FcgiRequestOptions = {}): Promise<FcgiResponse> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    checkTimeout(timeoutMs);
    const role = roleNumber(options.role);
    const body = options.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(options.body) ? options.body : Buffer.from(options.body);
    const requestId = this.nextRequestId;
    this.nextRequestId = requestId >= 0xffff ? 1 : requestId + 1;
    const params = options.exactParams ? (options.params ?? {}) : defaultParams(options.params, body.length, { port: this.socket.localPort });

    const parts = [
      encodeRecord(RecordType.BEGIN_REQUEST, requestId, encodeBeginRequest(role, options.keepConn ? FCGI_KEEP_CONN : 0)),
      encodeStream(RecordType.PARAMS, requestId, encodeParams(params)),
    ];
    // An authorizer gets no request body (FastCGI spec 6.3); a responder always gets a terminated stdin.
    if (role !== Role.AUTHORIZER || body.length > 0) parts.push(encodeStream(RecordType.STDIN, requestId, body));

    const pending = this.start('request', requestId, timeoutMs, Buffer.concat(parts));
    const end = await pending.done;
    const { appStatus, protocolStatus } = decodeEndRequest(end!.content);
    const stdout = Buffer.concat(pending.stdout);
    return {
      stdout,
      stderr: Buffer.concat(pending.stderr).toString('utf8'),
      appStatus,
      protocolStatus,
      ...parseCgiResponse(stdout),
    };
  }

  /** FCGI_GET_VALUES: ask for variables such as FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS. */
  async getValues(names: readonly string[], options: { timeoutMs?: number } = {}): Promise<Record<string, string>> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    checkTimeout(timeoutMs);
    const query = encodeParams(names.map((n) => [n, ''] as [string, string]));
    const pending = this.start('values', FCGI_NULL_REQUEST_ID, timeoutMs, encodeRecord(RecordType.GET_VALUES, FCGI_NULL_REQUEST_ID, query));
    const result = await pending.done;
    return decodeParams(result!.content);
  }

  /** Close the connection (idempotent). */
  close(): void {
    if (!this.socket.destroyed) this.socket.destroy();
  }

  private start(kind: Pending['kind'], requestId: number, timeoutMs: number, bytes: Buffer): Pending & { done: Promise<FcgiRecord | null> } {
    if (this.pending) throw new Error('FcgiConnection: a request is already in progress on this connection');
    if (!this.isOpen) {
      throw this.lastError ?? new FcgiProtocolError(`connection to ${describeTarget(this.target)} is closed`);
    }
    let timer: NodeJS.Timeout | undefined;
    const p = { kind, requestId, stdout: [], stderr: [] } as unknown as Pending & { done: Promise<FcgiRecord | null> };
    p.done = new Promise<FcgiRecord | null>((resolve, reject) => {
      p.resolve = (rec) => {
        clearTimeout(timer);
        resolve(rec);
      };
      p.reject = (err) => {
        clearTimeout(timer);
        reject(err);
      };
    });
    timer = setTimeout(() => {
      if (this.pending === p) this.pending = null;
      this.socket.destroy();
      p.reject(new FcgiTimeoutError(timeoutMs, kind === 'values' ? 'FastCGI FCGI_GET_VALUES' : 'FastCGI request'));
    }, timeoutMs);
    this.pending = p;
    this.socket.write(bytes);
    return p;
  }

  private onData(chunk: Buffer): void {
    let records: FcgiRecord[];
    try {
      records = this.reader.push(chunk);
    } catch (err) {
      this.fail(new FcgiProtocolError(`bad record from ${describeTarget(this.target)}: ${(err as Error).message}`));
      return;
    }
    for (const record of records) this.onRecord(record);
  }

  private fail(err: Error): void {
    const p = this.pending;
    this.pending = null;
    this.socket.destroy();
    p?.reject(err);
  }

  private onRecord(record: FcgiRecord): void {
    const p = this.pending;
    if (!p) return; // late or unsolicited record: ignore
    if (p.kind === 'values') {
      if (record.requestId !== FCGI_NULL_REQUEST_ID) return;
      if (record.type === RecordType.GET_VALUES_RESULT) {
        this.pending = null;
        p.resolve(record);
      } else if (record.type === RecordType.UNKNOWN_TYPE) {
        this.fail(new FcgiProtocolError(`${describeTarget(this.target)} does not support FCGI_GET_VALUES`));
      }
      return;
    }
    if (record.requestId !== p.requestId) return;
    switch (record.type) {
      case RecordType.STDOUT:
        p.stdout.push(record.content);
        break;
      case RecordType.STDERR:
        p.stderr.push(record.content);
        break;
      case RecordType.END_REQUEST:
        if (record.content.length < 5) {
          this.fail(new FcgiProtocolError(`short FCGI_END_REQUEST from ${describeTarget(this.target)}`));
          return;
        }
        this.pending = null;
        p.resolve(record);
        break;
      default:
        break;
    }
  }
}

/**
 * Send one FastCGI request and return the parsed response. The connection is
 * closed afterwards. Connection errors reject with Node's own error (code
 * ECONNREFUSED, ENOENT, ...); no answer within `timeoutMs` rejects with an
 * {@link FcgiTimeoutError}.
 */
export async function fcgiRequest(target: FcgiTarget, options: FcgiRequestOptions = {}): Promise<FcgiResponse> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  checkTimeout(timeoutMs);
  roleNumber(options.role); // refuse a bad role before connecting
  const started = Date.now();
  const conn = await FcgiConnection.connect(target, { timeoutMs });
  try {
    const left = Math.max(1, timeoutMs - (Date.now() - started));
    return await conn.request({ ...options, timeoutMs: left });
  } finally {
    conn.close();
  }
}

/** FCGI_GET_VALUES on a new connection, e.g. `['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS']`. */
export async function fcgiGetValues(target: FcgiTarget, names: readonly string[], options: { timeoutMs?: number } = {}): Promise<Record<string, string>> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  checkTimeout(timeoutMs);
  const started = Date.now();
  const conn = await FcgiConnection.connect(target, { timeoutMs });
  try {
    const left = Math.max(1, timeoutMs - (Date.now() - started));
    return await conn.getValues(names, { timeoutMs: left });
  } finally {
    conn.close();
  }
}
