/**
 * The tests' FastCGI calls, on the repo's one client (tools/fcgi/client.ts): one request per connection,
 * the params sent exactly as given (no defaults added), STDOUT/STDERR collected until END_REQUEST.
 */
import { FcgiConnection, parseCgiResponse as parseCgi, type FcgiTarget } from '../../tools/fcgi/client.js';

export type { FcgiTarget } from '../../tools/fcgi/client.js';

export interface FcgiRequestOptions {
  /** Request body sent as FCGI_STDIN (default: empty). */
  stdin?: Buffer | string;
  /** Reject if END_REQUEST has not arrived by then (default 5000 ms). */
  timeoutMs?: number;
}

export interface FcgiResponse {
  /** The concatenated FCGI_STDOUT stream (headers and body). */
  stdout: Buffer;
  /** The concatenated FCGI_STDERR stream. */
  stderr: Buffer;
  appStatus: number;
  protocolStatus: number;
}

/** Send one request and collect the answer. Connection errors reject with Node's error (code ENOENT, ECONNREFUSED...). */
export async function fcgiRequest(target: FcgiTarget, params: Record<string, string>, options: FcgiRequestOptions = {}): Promise<FcgiResponse> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const started = Date.now();
  const connection = await FcgiConnection.connect(target, { timeoutMs });
  try {
    const answer = await connection.request({ params, exactParams: true, body: options.stdin, timeoutMs: Math.max(1, timeoutMs - (Date.now() - started)) });
    return { stdout: answer.stdout, stderr: Buffer.from(answer.stderr), appStatus: answer.appStatus, protocolStatus: answer.protocolStatus };
  } finally {
    connection.close();
  }
}

/** Split a CGI response (STDOUT stream) into lower-cased headers and the body (the client's parser). */
export function parseCgiResponse(stdout: Buffer): { headers: Record<string, string>; body: string } {
  const { headers, body } = parseCgi(stdout);
  return { headers, body };
}
