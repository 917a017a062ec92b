/**
 * FastCGI 1.0 record codec: constants, record and name-value pair encoding,
 * and an incremental record reader. Pure: no I/O.
 *
 * Specification: https://fastcgi-archives.github.io/FastCGI_Specification.html
 */

export const FCGI_VERSION_1 = 1;
export const FCGI_HEADER_LEN = 8;
/** The listening socket a FastCGI application inherits. */
export const FCGI_LISTENSOCK_FILENO = 0;
/** Request id used by management records (FCGI_GET_VALUES, ...). */
export const FCGI_NULL_REQUEST_ID = 0;
/** Largest content length a single record can carry. */
export const FCGI_MAX_CONTENT_LENGTH = 0xffff;

export const RecordType = {
  BEGIN_REQUEST: 1,
  ABORT_REQUEST: 2,
  END_REQUEST: 3,
  PARAMS: 4,
  STDIN: 5,
  STDOUT: 6,
  STDERR: 7,
  DATA: 8,
  GET_VALUES: 9,
  GET_VALUES_RESULT: 10,
  UNKNOWN_TYPE: 11,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

export const Role = {
  RESPONDER: 1,
  AUTHORIZER: 2,
  FILTER: 3,
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** Flags of FCGI_BEGIN_REQUEST. */
export const FCGI_KEEP_CONN = 1;

export const ProtocolStatus = {
  REQUEST_COMPLETE: 0,
  CANT_MPX_CONN: 1,
  OVERLOADED: 2,
  UNKNOWN_ROLE: 3,
} as const;
export type ProtocolStatus = (typeof ProtocolStatus)[keyof typeof ProtocolStatus];

/** Variable names of FCGI_GET_VALUES. */
export const FCGI_MAX_CONNS = 'FCGI_MAX_CONNS';
export const FCGI_MAX_REQS = 'FCGI_MAX_REQS';
export const FCGI_MPXS_CONNS = 'FCGI_MPXS_CONNS';

export interface FcgiRecord {
  type: number;
  requestId: number;
  content: Buffer;
}

export type ParamPairs = Record<string, string> | ReadonlyArray<readonly [string, string]>;

function checkUint16(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
    throw new RangeError(`${name} must be an integer from 0 to 65535, got ${value}`);
  }
}

/**
 * Encode one record. The content must fit one record (at most 65535 bytes);
 * use {@link encodeStream} for longer payloads. Padding brings the record to a
 * multiple of 8 bytes.
 */
export function encodeRecord(type: number, requestId: number, content: Buffer = Buffer.alloc(0)): Buffer {
  if (!Number.isInteger(type) || type < 0 || type > 0xff) {
    throw new RangeError(`record type must be an integer from 0 to 255, got ${type}`);
  }
  checkUint16('requestId', requestId);
  if (content.length > FCGI_MAX_CONTENT_LENGTH) {
    throw new RangeError(`record content must be at most ${FCGI_MAX_CONTENT_LENGTH} bytes, got ${content.length} (use encodeStream)`);
  }
  const padding = (8 - (content.length % 8)) % 8;
  const out = Buffer.alloc(FCGI_HEADER_LEN + content.length + padding);
  out.writeUInt8(FCGI_VERSION_1, 0);
  out.writeUInt8(type, 1);
  out.writeUInt16BE(requestId, 2);
  out.writeUInt16BE(content.length, 4);
  out.writeUInt8(padding, 6);
  // byte 7 reserved
  content.copy(out, FCGI_HEADER_LEN);
  return out;
}

/**
 * Encode a stream (PARAMS, STDIN, STDOUT, STDERR, DATA): the data split in
 * records of at most 65535 bytes, followed by the empty record that ends the
 * stream unless `end` is false.
 */
export function encodeStream(type: number, requestId: number, data: Buffer, end = true): Buffer {
  const parts: Buffer[] = [];
  for (let off = 0; off < data.length; off += FCGI_MAX_CONTENT_LENGTH) {
    parts.push(encodeRecord(type, requestId, data.subarray(off, off + FCGI_MAX_CONTENT_LENGTH)));
  }
  if (end) parts.push(encodeRecord(type, requestId, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  if (length > 0x7fffffff) throw new RangeError(`name-value length too large: ${length}`);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((length | 0x80000000) >>> 0, 0);
  return b;
}

/** Encode name-value pairs (lengths on 1 byte below 128, else on 4 bytes). */
export function encodeParams(pairs: ParamPairs): Buffer {
  const entries: ReadonlyArray<readonly [string, string]> = Array.isArray(pairs)
    ? (pairs as ReadonlyArray<readonly [string, string]>)
    : Object.entries(pairs as Record<string, string>);
  const parts: Buffer[] = [];
  for (const [name, value] of entries) {
    const n = Buffer.from(String(name), 'utf8');
    const v = Buffer.from(String(value), 'utf8');
    parts.push(encodeLength(n.length), encodeLength(v.length), n, v);
  }
  return Buffer.concat(parts);
}

/**
 * Decode name-value pairs, in order. Throws on truncated input.
 */
export function decodeParamPairs(buf: Buffer): [string, string][] {
  const out: [string, string][] = [];
  let off = 0;
  const readLength = (): number => {
    if (off >= buf.length) throw new RangeError('truncated name-value pair: missing length');
    const first = buf[off]!;
    if (first < 0x80) {
      off += 1;
      return first;
    }
    if (off + 4 > buf.length) throw new RangeError('truncated name-value pair: short 4-byte length');
    const len = buf.readUInt32BE(off) & 0x7fffffff;
    off += 4;
    return len;
  };
  while (off < buf.length) {
    const nameLen = readLength();
    const valueLen = readLength();
    if (off + nameLen + valueLen > buf.length) {
      throw new RangeError(`truncated name-value pair: needs ${nameLen + valueLen} bytes, ${buf.length - off} left`);
    }
    const name = buf.toString('utf8', off, off + nameLen);
    off += nameLen;
    const value = buf.toString('utf8', off, off + valueLen);
    off += valueLen;
    out.push([name, value]);
  }
  return out;
}

/** Decode name-value pairs into an object (a later duplicate wins). */
export function decodeParams(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of decodeParamPairs(buf)) out[name] = value;
  return out;
}

/** Content of FCGI_BEGIN_REQUEST. */
export function encodeBeginRequest(role: number, flags = 0): Buffer {
  checkUint16('role', role);
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xff) {
    throw new RangeError(`flags must be an integer from 0 to 255, got ${flags}`);
  }
  const b = Buffer.alloc(8);
  b.writeUInt16BE(role, 0);
  b.writeUInt8(flags, 2);
  return b;
}

export function decodeBeginRequest(content: Buffer): { role: number; flags: number } {
  if (content.length < 3) throw new RangeError(`FCGI_BEGIN_REQUEST body too short: ${content.length} bytes`);
  return { role: content.readUInt16BE(0), flags: content.readUInt8(2) };
}

/** Content of FCGI_END_REQUEST. */
export function encodeEndRequest(appStatus: number, protocolStatus: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(appStatus >>> 0, 0);
  b.writeUInt8(protocolStatus, 4);
  return b;
}

export function decodeEndRequest(content: Buffer): { appStatus: number; protocolStatus: number } {
  if (content.length < 5) throw new RangeError(`FCGI_END_REQUEST body too short: ${content.length} bytes`);
  return { appStatus: content.readUInt32BE(0), protocolStatus: content.readUInt8(4) };
}

/** Content of FCGI_UNKNOWN_TYPE. */
export function encodeUnknownType(type: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(type, 0);
  return b;
}

/**
 * Incremental record reader: feed it socket chunks, get complete records.
 * Records may be split across chunks, and a chunk may hold several records.
 */
export class RecordReader {
  private buffer: Buffer = Buffer.alloc(0);

  /** Append a chunk and return every record it completes, in order. */
  push(chunk: Buffer): FcgiRecord[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const records: FcgiRecord[] = [];
    let off = 0;
    while (this.buffer.length - off >= FCGI_HEADER_LEN) {
      const version = this.buffer.readUInt8(off);
      if (version !== FCGI_VERSION_1) {
        throw new Error(`unsupported FastCGI version ${version} (expected ${FCGI_VERSION_1})`);
      }
      const contentLength = this.buffer.readUInt16BE(off + 4);
      const paddingLength = this.buffer.readUInt8(off + 6);
      const total = FCGI_HEADER_LEN + contentLength + paddingLength;
      if (this.buffer.length - off < total) break;
      records.push({
        type: this.buffer.readUInt8(off + 1),
        requestId: this.buffer.readUInt16BE(off + 2),
        // copy, so that a record does not pin the whole chunk
        content: Buffer.from(this.buffer.subarray(off + FCGI_HEADER_LEN, off + FCGI_HEADER_LEN + contentLength)),
      });
      off += total;
    }
    this.buffer = off === 0 ? this.buffer : this.buffer.subarray(off);
    if (off > 0 && this.buffer.length === 0) this.buffer = Buffer.alloc(0);
    return records;
  }

  /** Bytes received but not yet part of a complete record. */
  get pending(): number {
    return this.buffer.length;
  }
}
