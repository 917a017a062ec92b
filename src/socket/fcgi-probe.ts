/**
 * The one FastCGI record the product itself writes: FCGI_GET_VALUES, a management record (request id 0)
 * that a FastCGI application answers with FCGI_GET_VALUES_RESULT without running anything (FastCGI 1.0,
 * section 4.1). php-cgi, libfcgi, Go's net/http/fcgi and flup answer it. The test and bench client lives
 * in src/fcgi/; this stays separate so that the product does not depend on it.
 */
const FCGI_VERSION_1 = 1;
const FCGI_GET_VALUES = 9;

const VARIABLES = ['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS'];

/** FCGI_GET_VALUES asking for the three standard variables (names with empty values, all under 128 bytes). */
export function getValuesRecord(): Buffer {
  const body = Buffer.concat(VARIABLES.map((name) => Buffer.concat([Buffer.from([name.length, 0]), Buffer.from(name, 'latin1')])));
  const header = Buffer.alloc(8);
  header.writeUInt8(FCGI_VERSION_1, 0);
  header.writeUInt8(FCGI_GET_VALUES, 1);
  header.writeUInt16BE(0, 2);
  header.writeUInt16BE(body.length, 4);
  return Buffer.concat([header, body]);
}
