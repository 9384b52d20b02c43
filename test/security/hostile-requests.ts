/**
 * fast-check arbitraries for hostile requests to one route, derived from the route's own schemas
 * (the route table carries them): bodies that are mostly the right shape with hostile values
 * mixed in (wrong types, NUL, lone surrogates, SQL and dial-string metacharacters, CR/LF,
 * look-alike digits, huge and deep values, `__proto__`/`constructor` keys, duplicate keys),
 * or not the right shape at all (any JSON, raw bytes that are not UTF-8, truncated JSON); query
 * strings with repeated, unknown and badly %-encoded parameters; path parameters of any text;
 * headers with odd content types, request ids and signature headers.
 */
import fc from 'fast-check';
import type { RouteEntry } from '../../src/auth/authenticate.js';

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
};

/** Text that has broken parsers, databases, switches and log lines before. */
export const nastyStrings = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  '\r\nX-Injected: 1',
  'line\nbreak',
  "' OR '1'='1' --",
  '"; DROP TABLE devices; --',
  '%',
  '%00',
  '%zz',
  '\\',
  '{origination_caller_id_number=1}',
  '+79161234567,user/1000',
  '+7916|1234567',
  '&park()',
  "+7916'1234567",
  '${jndi:ldap://127.0.0.1/a}',
  '../../etc/passwd',
  '<script>alert(1)</script>',
  '__proto__',
  'constructor',
  'prototype',
  '١٢٣٤٥٦٧٨٩٠',
  '+٧٩١٦١٢٣٤٥٦٧',
  '＋７９１６１２３４５６７',
  '+𝟕𝟗𝟏𝟔𝟏𝟐𝟑𝟒𝟓𝟔𝟕',
  '+7 916 123\u200b45 67',
  '\u202e7654321619+',
  '9'.repeat(400),
  'x'.repeat(5_000),
  '1e309',
  '-0',
  'NaN',
  'true',
  'null',
  '0000-00-00T00:00:00Z',
  '275760-09-13T00:00:00.001Z',
  '2026-02-30T25:61:61Z',
  'http://169.254.169.254/latest/meta-data',
  'http://127.0.0.1:9/notify',
  'mqtt://localhost:1/t',
  'file:///etc/passwd',
  'javascript:alert(1)',
  'tig_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
];

/** Only these endpoints are ever generated: refused or unreachable, so fuzzing sends nothing anywhere. */
const safeEndpoints = ['http://127.0.0.1:9/notify', 'http://10.0.0.1/x', 'http://169.254.169.254/', 'mqtt://127.0.0.1:1/t', 'ftp://127.0.0.1/', 'http://[::1]:9/', ''];

const hostileString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...nastyStrings) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
);

/** Any generated value as query or path text (String() throws on objects without a prototype). */
function asText(value: unknown): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? 'undefined');
}

/** A nesting of `depth` objects or arrays. */
function nested(depth: number, array: boolean): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = array ? [value] : { a: value };
  return value;
}

export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -1, 0, 1e308, -1e308, 0.5, 2 ** 63) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(nested(40, false), nested(40, true), nested(500, false), [], {}) },
  { weight: 1, arbitrary: fc.array(hostileString, { maxLength: 12 }) },
);

const hostileKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '', '\u0000', '\ud800', 'a'.repeat(300)),
  fc.string({ unit: 'binary', maxLength: 12 }),
);

/** Values the schema accepts (most of the time); hostile ones mixed in. */
function valid(schema: JsonSchema | undefined, name: string, depth = 0): fc.Arbitrary<unknown> {
  if (!schema) return fc.jsonValue({ maxDepth: 2 });
  if (name === 'endpoint') return fc.constantFrom(...safeEndpoints);
  // Devices the fuzzing app has, so that valid requests get past "unknown device" to the service.
  if (name === 'device_id') return fc.oneof(fc.constantFrom('fuzz-sensor', 'target'), valid({ ...schema, pattern: schema.pattern ?? '^[a-z0-9-]{1,40}$' }, 'device'));
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  if (schema.anyOf) return fc.oneof(...schema.anyOf.map((option) => valid(option, name, depth)));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string':
      if (/msisdn|callee|caller|^to$|number/.test(name)) {
        return fc.constantFrom('+79161234567', '8 (916) 123-45-67', '+7 916 555-01-01', '0044 20 7946 0958', '+1 202 555 0143', 'anonymous', '+79169990000');
      }
      if (schema.format === 'date-time') return fc.date({ min: new Date('1970-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }).map((date) => date.toISOString());
      if (schema.format === 'uuid') return fc.uuid();
      if (schema.pattern) {
        return fc
          .stringMatching(new RegExp(schema.pattern))
          .map((text) => text.slice(0, schema.maxLength ?? 200))
          .filter((text) => text.length >= (schema.minLength ?? 0));
      }
      return fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 60, 60) });
    case 'integer':
      return fc.integer({ min: Math.max(schema.minimum ?? -1000, -(2 ** 31)), max: Math.min(schema.maximum ?? 1000, 2 ** 31) });
    case 'number':
      return fc.double({ noNaN: true, min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6 });
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(field(schema.items, name, depth + 1), { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 4, 4) });
    case 'object':
      return objectEntries(schema, depth + 1).map(entriesToObject);
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** A field's value: what the schema wants four times in five, hostile otherwise. */
function field(schema: JsonSchema | undefined, name: string, depth = 0): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 4, arbitrary: depth > 3 ? fc.constant('deep') : valid(schema, name, depth) }, { weight: 1, arbitrary: hostileValue });
}

type Entries = [string, unknown][];

function entriesToObject(entries: Entries): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const [key, value] of entries) Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  return object;
}

/** An object as key/value pairs (so `__proto__` and duplicate keys survive into the JSON text). */
function objectEntries(schema: JsonSchema, depth = 0): fc.Arbitrary<Entries> {
  const properties = Object.entries(schema.properties ?? {});
  const required = new Set(schema.required ?? []);
  const known = properties.map(([name, inner]) =>
    fc.oneof(
      { weight: required.has(name) ? 12 : 3, arbitrary: field(inner, name, depth).map((value): Entries => [[name, value]]) },
      { weight: 1, arbitrary: fc.constant<Entries>([]) },
      { weight: 1, arbitrary: fc.tuple(field(inner, name, depth), hostileValue).map(([a, b]): Entries => [[name, a], [name, b]]) },
    ),
  );
  const extra = fc.oneof(
    { weight: 5, arbitrary: fc.constant<Entries>([]) },
    { weight: 1, arbitrary: fc.array(fc.tuple(hostileKey, hostileValue), { maxLength: 3 }) },
  );
  return fc.tuple(fc.tuple(...known), extra).map(([parts, more]) => [...parts.flat(), ...more]);
}

function entriesToJson(entries: Entries): string {
  return `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value) ?? 'null'}`).join(',')}}`;
}

/** Bytes that are not valid UTF-8, inside otherwise plausible JSON. */
const invalidUtf8 = fc.constantFrom(
  Buffer.concat([Buffer.from('{"device_id":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
  Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xc3]), Buffer.from('"}')]),
  Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]),
  Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]),
);

export const hostileBody: (schema: JsonSchema | undefined) => fc.Arbitrary<string | Buffer | undefined> = (schema) =>
  fc.oneof(
    { weight: schema ? 10 : 1, arbitrary: schema ? objectEntries(schema).map(entriesToJson) : fc.constant('{}') },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.stringify(value)) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 80 }).map((bytes) => Buffer.from(bytes)) },
    { weight: 1, arbitrary: invalidUtf8 },
    { weight: 1, arbitrary: fc.constantFrom('{"a":', '{"a":1}{"b":2}', '[', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', `${'['.repeat(5000)}${']'.repeat(5000)}`, '1'.repeat(400)) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );

const contentType = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'APPLICATION/JSON',
      'application/json, text/plain',
      'application/problem+json',
      'application/x-www-form-urlencoded',
      'text/plain',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      '',
      ';;;',
      'application/json; charset="',
    ),
  },
);

const printableHeaderValue = fc.oneof(fc.constantFrom(...nastyStrings.filter((text) => /^[\x20-\x7e]*$/.test(text))), fc.string({ unit: 'binary-ascii', maxLength: 60 }).map((text) => text.replace(/[^\x20-\x7e]/g, '')));

/** Percent-encoding of the UTF-8 bytes (a lone surrogate becomes U+FFFD's bytes, where encodeURIComponent throws). */
function percentEncode(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((byte) => (/[A-Za-z0-9\-_.~]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

function encodePathPart(text: string, raw: boolean): string {
  return raw ? text.replace(/[^\x21-\x7e]|[/?#]/g, (c) => (c === '%' ? '%' : percentEncode(c))) : percentEncode(text);
}

export interface HostileRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload: string | Buffer | undefined;
}

/** Hostile requests for one route of the route table. */
export function hostileRequests(route: RouteEntry): fc.Arbitrary<HostileRequest> {
  const schema = (route.schema ?? {}) as { body?: JsonSchema; querystring?: JsonSchema; params?: JsonSchema };
  const paramNames = [...route.url.matchAll(/:([A-Za-z_]+)/g)].map((match) => match[1]!);
  const params = fc.tuple(
    ...paramNames.map((name) =>
      fc.tuple(fc.oneof({ weight: 3, arbitrary: valid(schema.params?.properties?.[name], name).map(asText) }, { weight: 2, arbitrary: hostileString }), fc.boolean()),
    ),
  );
  const wildcard = fc.oneof(fc.constantFrom('swagger-ui.css', '../../../../etc/passwd', '..%2f..%2fpackage.json', '%2e%2e/%2e%2e/', 'index.html%00.js'), fc.string({ maxLength: 20 }).map(percentEncode));
  const queryParts = fc.array(
    fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...Object.keys(schema.querystring?.properties ?? { limit: 0 })).chain((name) => fc.tuple(fc.constant(name), field(schema.querystring?.properties?.[name], name).map(asText))) },
      { weight: 1, arbitrary: fc.tuple(fc.oneof(hostileKey, fc.constantFrom('limit[]', 'a[b]', '__proto__[x]')), hostileString) },
    ),
    { maxLength: 5 },
  );
  const query = fc.tuple(queryParts, fc.boolean(), fc.constantFrom('', '&', '%', '%zz=1', '=', '&&&', '%ff%fe=%c3')).map(([parts, raw, tail]) =>
    [...parts.map(([name, value]) => `${raw ? name.replace(/[&#=\s]/g, '') : percentEncode(name)}=${raw ? value.replace(/[&#\s]/g, '') : percentEncode(value)}`), tail].filter(Boolean).join('&'),
  );
  const extraHeaders = fc.dictionary(
    fc.constantFrom('x-request-id', 'webhook-id', 'webhook-timestamp', 'webhook-signature', 'accept', 'content-encoding', 'x-forwarded-for', 'origin', 'x-http-method-override', 'cookie'),
    printableHeaderValue,
    { maxKeys: 3 },
  );
  return fc
    .record({
      params,
      wildcard,
      query,
      body: ['POST', 'PATCH', 'PUT', 'DELETE'].includes(route.method) ? hostileBody(schema.body) : fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: hostileBody(undefined) }),
      contentType,
      extraHeaders,
    })
    .map(({ params: values, wildcard: rest, query: search, body, contentType: type, extraHeaders: headers }) => {
      let path = route.url;
      paramNames.forEach((name, index) => {
        const [value, raw] = values[index]!;
        path = path.replace(`:${name}`, encodePathPart(value, raw) || 'x');
      });
      path = path.replace('*', rest);
      return {
        method: route.method,
        url: search ? `${path}?${search}` : path,
        headers: { ...headers, ...(body !== undefined ? { 'content-type': type } : {}) },
        payload: body,
      };
    });
}
