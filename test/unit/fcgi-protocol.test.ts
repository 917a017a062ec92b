import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  FCGI_HEADER_LEN,
  FCGI_KEEP_CONN,
  FCGI_MAX_CONTENT_LENGTH,
  ProtocolStatus,
  RecordReader,
  RecordType,
  Role,
  decodeBeginRequest,
  decodeEndRequest,
  decodeParamPairs,
  decodeParams,
  encodeBeginRequest,
  encodeEndRequest,
  encodeParams,
  encodeRecord,
  encodeStream,
  encodeUnknownType,
} from '../../tools/fcgi/protocol.js';
import { defaultParams, parseCgiResponse, socketPathFor } from '../../tools/fcgi/client.js';

describe('constants', () => {
  test('match the FastCGI 1.0 specification', () => {
    assert.equal(RecordType.BEGIN_REQUEST, 1);
    assert.equal(RecordType.END_REQUEST, 3);
    assert.equal(RecordType.PARAMS, 4);
    assert.equal(RecordType.STDIN, 5);
    assert.equal(RecordType.STDOUT, 6);
    assert.equal(RecordType.GET_VALUES, 9);
    assert.equal(RecordType.GET_VALUES_RESULT, 10);
    assert.equal(RecordType.UNKNOWN_TYPE, 11);
    assert.deepEqual(Role, { RESPONDER: 1, AUTHORIZER: 2, FILTER: 3 });
    assert.equal(FCGI_KEEP_CONN, 1);
    assert.equal(ProtocolStatus.UNKNOWN_ROLE, 3);
  });
});

describe('encodeRecord', () => {
  test('writes the header byte by byte and pads to 8 bytes', () => {
    const rec = encodeRecord(RecordType.STDOUT, 0x1234, Buffer.from('hello'));
    assert.equal(rec.length, 16);
    assert.deepEqual([...rec.subarray(0, 8)], [1, 6, 0x12, 0x34, 0, 5, 3, 0]);
    assert.equal(rec.subarray(8, 13).toString(), 'hello');
    assert.deepEqual([...rec.subarray(13)], [0, 0, 0]);
  });

  test('adds no padding when the content is a multiple of 8', () => {
    for (const n of [0, 8, 16, 64]) {
      const rec = encodeRecord(RecordType.STDIN, 1, Buffer.alloc(n, 0x61));
      assert.equal(rec.length, 8 + n, `content ${n}`);
      assert.equal(rec[6], 0, `padding byte for content ${n}`);
    }
  });

  test('every length gets total % 8 === 0 and the right padding', () => {
    for (let n = 0; n < 40; n++) {
      const rec = encodeRecord(RecordType.STDIN, 1, Buffer.alloc(n));
      assert.equal(rec.length % 8, 0, `content ${n}`);
      assert.equal(rec[6], (8 - (n % 8)) % 8, `content ${n}`);
      assert.equal(rec.readUInt16BE(4), n);
    }
  });

  test('refuses content longer than one record and bad ids', () => {
    assert.throws(() => encodeRecord(RecordType.STDIN, 1, Buffer.alloc(FCGI_MAX_CONTENT_LENGTH + 1)), RangeError);
    assert.throws(() => encodeRecord(RecordType.STDIN, 70000, Buffer.alloc(1)), /requestId/);
    assert.throws(() => encodeRecord(256, 1), /record type/);
  });
});

describe('encodeStream', () => {
  test('splits long data into 65535-byte records and ends with an empty one', () => {
    const data = Buffer.alloc(FCGI_MAX_CONTENT_LENGTH * 2 + 10, 0x7a);
    const records = new RecordReader().push(encodeStream(RecordType.STDIN, 3, data));
    assert.deepEqual(
      records.map((r) => r.content.length),
      [FCGI_MAX_CONTENT_LENGTH, FCGI_MAX_CONTENT_LENGTH, 10, 0],
    );
    assert.ok(records.every((r) => r.type === RecordType.STDIN && r.requestId === 3));
    assert.ok(Buffer.concat(records.map((r) => r.content)).equals(data));
  });

  test('an empty stream is just the terminating record', () => {
    const out = encodeStream(RecordType.PARAMS, 1, Buffer.alloc(0));
    assert.deepEqual([...out], [1, 4, 0, 1, 0, 0, 0, 0]);
  });

  test('end=false leaves the stream open', () => {
    const out = encodeStream(RecordType.STDOUT, 1, Buffer.from('x'), false);
    assert.equal(new RecordReader().push(out).length, 1);
  });
});

describe('name-value pairs', () => {
  test('short names and values use 1-byte lengths', () => {
    const buf = encodeParams({ A: 'bc' });
    assert.deepEqual([...buf], [1, 2, 0x41, 0x62, 0x63]);
    assert.deepEqual(decodeParams(buf), { A: 'bc' });
  });

  test('127 bytes is still a 1-byte length, 128 needs 4 bytes with the high bit set', () => {
    const v127 = 'v'.repeat(127);
    const b127 = encodeParams([['N', v127]]);
    assert.equal(b127.length, 1 + 1 + 1 + 127);
    assert.equal(b127[1], 127);

    const v128 = 'v'.repeat(128);
    const b128 = encodeParams([['N', v128]]);
    assert.equal(b128.length, 1 + 4 + 1 + 128);
    assert.deepEqual([...b128.subarray(1, 5)], [0x80, 0, 0, 128]);
    assert.deepEqual(decodeParams(b128), { N: v128 });
  });

  test('long names and long values round trip (4-byte lengths, > 65535 too)', () => {
    const pairs: [string, string][] = [
      ['SHORT', ''],
      ['N'.repeat(200), 'x'],
      ['HTTP_COOKIE', 'c'.repeat(70_000)],
      ['EMPTY', ''],
      ['UTF8', 'héllo wörld ✓'],
    ];
    const buf = encodeParams(pairs);
    assert.deepEqual(decodeParamPairs(buf), pairs);
    // the 200-byte name's length: 4 bytes, 0x800000c8
    assert.deepEqual([...buf.subarray(2 + 5, 2 + 5 + 4)], [0x80, 0, 0, 200]);
  });

  test('lengths count bytes, not characters', () => {
    const buf = encodeParams({ K: 'é' });
    assert.equal(buf[1], 2);
  });

  test('an object and an array of pairs give the same bytes; order is kept', () => {
    const obj = encodeParams({ B: '2', A: '1' });
    const arr = encodeParams([
      ['B', '2'],
      ['A', '1'],
    ]);
    assert.ok(obj.equals(arr));
    assert.deepEqual(
      decodeParamPairs(obj).map(([n]) => n),
      ['B', 'A'],
    );
  });

  test('truncated input throws', () => {
    const buf = encodeParams({ NAME: 'value' });
    assert.throws(() => decodeParams(buf.subarray(0, buf.length - 1)), /truncated/);
    const long = encodeParams({ N: 'v'.repeat(300) });
    assert.throws(() => decodeParams(long.subarray(0, 3)), /truncated/);
  });

  test('empty buffer decodes to no pairs', () => {
    assert.deepEqual(decodeParams(Buffer.alloc(0)), {});
  });
});

describe('begin / end request bodies', () => {
  test('encodeBeginRequest round trips role and flags', () => {
    const b = encodeBeginRequest(Role.RESPONDER, FCGI_KEEP_CONN);
    assert.deepEqual([...b], [0, 1, 1, 0, 0, 0, 0, 0]);
    assert.deepEqual(decodeBeginRequest(encodeBeginRequest(Role.AUTHORIZER)), { role: 2, flags: 0 });
  });

  test('decodeEndRequest reads a 32-bit app status and the protocol status', () => {
    const c = Buffer.from([0x01, 0x02, 0x03, 0x04, 3, 0, 0, 0]);
    assert.deepEqual(decodeEndRequest(c), { appStatus: 0x01020304, protocolStatus: 3 });
    assert.deepEqual(decodeEndRequest(encodeEndRequest(0xffffffff, 0)), { appStatus: 0xffffffff, protocolStatus: 0 });
    assert.throws(() => decodeEndRequest(Buffer.alloc(4)), /too short/);
  });

  test('encodeUnknownType names the type', () => {
    assert.deepEqual([...encodeUnknownType(42)], [42, 0, 0, 0, 0, 0, 0, 0]);
  });
});

describe('RecordReader', () => {
  const stream = Buffer.concat([
    encodeRecord(RecordType.BEGIN_REQUEST, 1, encodeBeginRequest(Role.RESPONDER, FCGI_KEEP_CONN)),
    encodeRecord(RecordType.PARAMS, 1, encodeParams({ SCRIPT_FILENAME: '/x.php', LONG: 'y'.repeat(300) })),
    encodeRecord(RecordType.PARAMS, 1),
    encodeRecord(RecordType.STDIN, 1, Buffer.from('body!')),
    encodeRecord(RecordType.STDIN, 1),
  ]);

  function summary(records: { type: number; requestId: number; content: Buffer }[]): string[] {
    return records.map((r) => `${r.type}/${r.requestId}/${r.content.toString('hex')}`);
  }

  test('several records in one chunk', () => {
    const reader = new RecordReader();
    const records = reader.push(stream);
    assert.deepEqual(
      records.map((r) => r.type),
      [1, 4, 4, 5, 5],
    );
    assert.deepEqual(decodeParams(records[1]!.content), { SCRIPT_FILENAME: '/x.php', LONG: 'y'.repeat(300) });
    assert.equal(records[3]!.content.toString(), 'body!');
    assert.equal(reader.pending, 0);
  });

  test('byte-by-byte feeding gives the same records', () => {
    const whole = summary(new RecordReader().push(stream));
    const reader = new RecordReader();
    const got: ReturnType<RecordReader['push']> = [];
    for (let i = 0; i < stream.length; i++) got.push(...reader.push(stream.subarray(i, i + 1)));
    assert.deepEqual(summary(got), whole);
    assert.equal(reader.pending, 0);
  });

  test('every split point across two chunks gives the same records', () => {
    const whole = summary(new RecordReader().push(stream));
    for (let cut = 0; cut <= stream.length; cut++) {
      const reader = new RecordReader();
      const got = [...reader.push(stream.subarray(0, cut)), ...reader.push(stream.subarray(cut))];
      assert.deepEqual(summary(got), whole, `split at ${cut}`);
    }
  });

  test('a header split inside the padding waits for the padding', () => {
    const rec = encodeRecord(RecordType.STDOUT, 9, Buffer.from('abc')); // 8 + 3 + 5 padding
    const reader = new RecordReader();
    assert.deepEqual(reader.push(rec.subarray(0, 11)), []);
    assert.equal(reader.pending, 11);
    const out = reader.push(rec.subarray(11));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.content.toString(), 'abc');
    assert.equal(reader.pending, 0);
  });

  test('a partial record after complete ones is kept', () => {
    const reader = new RecordReader();
    const a = encodeRecord(RecordType.STDOUT, 1, Buffer.from('one'));
    const b = encodeRecord(RecordType.STDOUT, 1, Buffer.from('two'));
    const first = reader.push(Buffer.concat([a, b.subarray(0, 5)]));
    assert.deepEqual(
      first.map((r) => r.content.toString()),
      ['one'],
    );
    assert.equal(reader.pending, 5);
    assert.deepEqual(
      reader.push(b.subarray(5)).map((r) => r.content.toString()),
      ['two'],
    );
  });

  test('records carry copies, not views of the chunk', () => {
    const chunk = encodeRecord(RecordType.STDOUT, 1, Buffer.from('keep'));
    const [rec] = new RecordReader().push(chunk);
    chunk.fill(0);
    assert.equal(rec!.content.toString(), 'keep');
  });

  test('an unknown version throws', () => {
    const bad = encodeRecord(RecordType.STDOUT, 1, Buffer.from('x'));
    bad[0] = 2;
    assert.throws(() => new RecordReader().push(bad), /version 2/);
  });
});

describe('client helpers (pure)', () => {
  test('parseCgiResponse: CRLF headers, Status, lower-cased names', () => {
    const r = parseCgiResponse(Buffer.from('Status: 404 Not Found\r\nX-Test: 1\r\nContent-Type: text/html\r\n\r\nnope\r\n\r\nmore'));
    assert.equal(r.status, 404);
    assert.deepEqual(r.headers, { status: '404 Not Found', 'x-test': '1', 'content-type': 'text/html' });
    assert.equal(r.body, 'nope\r\n\r\nmore');
  });

  test('parseCgiResponse: LF-only headers, default 200, repeated headers joined', () => {
    const r = parseCgiResponse(Buffer.from('Set-Cookie: a=1\nset-cookie: b=2\n\nbody\n'));
    assert.equal(r.status, 200);
    assert.equal(r.headers['set-cookie'], 'a=1, b=2');
    assert.equal(r.body, 'body\n');
  });

  test('parseCgiResponse: bare Location means 302; no header block means all body', () => {
    assert.equal(parseCgiResponse(Buffer.from('Location: /x\r\n\r\n')).status, 302);
    const r = parseCgiResponse(Buffer.from('just text'));
    assert.deepEqual(r, { status: 200, headers: {}, body: 'just text' });
  });

  test('defaultParams fills what is missing and keeps what is given', () => {
    const p = defaultParams({ QUERY_STRING: 'a=1', REQUEST_METHOD: 'PUT', SCRIPT_NAME: '/s.php' }, 5);
    assert.equal(p.REQUEST_METHOD, 'PUT');
    assert.equal(p.QUERY_STRING, 'a=1');
    assert.equal(p.CONTENT_LENGTH, '5');
    assert.equal(p.GATEWAY_INTERFACE, 'CGI/1.1');
    assert.equal(p.SERVER_PROTOCOL, 'HTTP/1.1');
    assert.equal(p.REMOTE_ADDR, '127.0.0.1');
    assert.equal(p.REQUEST_URI, '/s.php?a=1');
    const q = defaultParams();
    assert.equal(q.REQUEST_METHOD, 'GET');
    assert.equal(q.QUERY_STRING, '');
    assert.equal(q.CONTENT_LENGTH, '0');
    assert.equal(defaultParams({}, 3).REQUEST_METHOD, 'POST');
  });

  test('socketPathFor maps @name to an abstract socket', () => {
    assert.equal(socketPathFor('@fcgi'), '\0fcgi');
    assert.equal(socketPathFor('/tmp/a.sock'), '/tmp/a.sock');
  });
});

test('FCGI_HEADER_LEN is 8', () => {
  assert.equal(FCGI_HEADER_LEN, 8);
});
