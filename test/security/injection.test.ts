/**
 * Injection, one kind at a time: dial-string characters and Unicode look-alike digits in every
 * phone number the API takes, SQL metacharacters stored and searched literally, header splitting
 * (CR/LF) over a real socket, oversized and deeply nested JSON, prototype-pollution keys in every
 * body, and bytes that are not UTF-8. Each is refused with a 4xx problem naming what is wrong, or
 * (for text that is merely odd) stored exactly as sent; nothing reaches a switch, a header or a
 * query as syntax.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, createKey, createTestApp, type TestApp } from '../support/app.js';
import { expectProblem } from './profile.js';
import { rawExchange as rawExchangeOn } from './raw-http.js';

const rawExchange = (request: string) => rawExchangeOn(port, request);

let t: TestApp;
let telephonyKey: string;
let port: number;
beforeAll(async () => {
  t = await createTestApp({ BODY_LIMIT_BYTES: String(64 * 1024) });
  telephonyKey = await createKey(t, 'telephony');
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  port = (t.app.server.address() as AddressInfo).port;
  await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'hall-smoke', type: 'sensor_smoke', msisdn: '+79161234567' } });
});
afterAll(async () => {
  await t.close();
});

function fieldsOf(body: Record<string, unknown>): string[] {
  return ((body.errors ?? []) as { field: string }[]).map((error) => error.field);
}

/** Where a phone number goes in, as [what, request builder, field named in the 422]. */
const phoneInputs: [string, (number: string) => Parameters<TestApp['request']>[0], string][] = [
  ['device msisdn', (n) => ({ method: 'POST', url: '/api/v1/devices', payload: { device_id: `d-${Math.random().toString(36).slice(2)}`, type: 'sensor_smoke', msisdn: n } }), 'body.msisdn'],
  ['rule number', (n) => ({ method: 'POST', url: '/api/v1/rules', payload: { name: 'r', event_type: 'smoke', device_id: 'hall-smoke', action: { type: 'call', to: [n], message: 'Smoke' } } }), 'body.action.to'],
  ['rule caller id', (n) => ({ method: 'POST', url: '/api/v1/rules', payload: { name: 'r', event_type: 'smoke', device_id: 'hall-smoke', action: { type: 'call', to: ['+79161234567'], message: 'Smoke', caller_id: n } } }), 'body.action.caller_id'],
  ['incoming-call callee', (n) => ({ method: 'POST', url: '/api/v1/incoming-calls', key: telephonyKey, payload: { call_id: `c-${Math.random()}`, caller: '+74951234567', callee: n } }), 'body.callee'],
  ['device list filter', (n) => ({ method: 'GET', url: '/api/v1/devices', query: { msisdn: n } }), 'querystring.msisdn'],
  ['call list filter', (n) => ({ method: 'GET', url: '/api/v1/calls', query: { to: n } }), 'querystring.to'],
];

describe('phone numbers: dial-string characters and look-alike digits never pass', () => {
  const dialStringAttacks = [
    '+79161234567,sofia/gateway/evil/+79990000000',
    '+79161234567|+79990000000',
    '{origination_caller_id_number=+74950000000}+79161234567',
    '[leg_timeout=1]+79161234567',
    '+79161234567&park()',
    "+7916'1234567",
    '+7916"1234567',
    '+7916\\1234567',
    '+7916 1234567\n&echo',
    '+79161234567\r\nX-Injected: 1',
    '+7916123456${x}',
    'sofia/gateway/tas/+79161234567',
  ];
  const lookAlikeDigits = [
    ['Arabic-Indic', '+٧٩١٦١٢٣٤٥٦٧'],
    ['Extended Arabic-Indic', '+۷۹۱۶۱۲۳۴۵۶۷'],
    ['Devanagari', '+७९१६१२३४५६७'],
    ['fullwidth', '＋７９１６１２３４５６７'],
    ['mathematical bold', '+𝟕𝟗𝟏𝟔𝟏𝟐𝟑𝟒𝟓𝟔𝟕'],
    ['superscript', '+⁷⁹¹⁶¹²³⁴⁵⁶⁷'],
    ['one fullwidth digit among ASCII', '+7916１234567'],
    ['a zero-width space', '+7916\u200b1234567'],
    ['a right-to-left override', '\u202e+79161234567'],
    ['a Cyrillic О for 0', '+7916123456О'],
  ];

  it.each(phoneInputs)('%s: refuses every dial-string trick with 422 naming the field', async (_what, build, field) => {
    for (const attack of dialStringAttacks) {
      const response = await t.request(build(attack));
      expect(response.statusCode, `${attack}: ${response.body}`).toBe(422);
      expect(fieldsOf(expectProblem(response)).some((name) => name.startsWith(field)), `${attack}: ${response.body}`).toBe(true);
    }
  });

  it.each(phoneInputs)('%s: refuses digits that only look like digits with 422 naming the field', async (_what, build, field) => {
    for (const [kind, number] of lookAlikeDigits) {
      const response = await t.request(build(number!));
      expect(response.statusCode, `${kind}: ${response.body}`).toBe(422);
      expect(fieldsOf(expectProblem(response)).some((name) => name.startsWith(field)), `${kind}: ${response.body}`).toBe(true);
    }
  });

  it('nothing of it was stored: every number in the database is strict E.164', async () => {
    const db = t.database.storage.db;
    const numbers = [
      ...(await db.selectFrom('devices').select('msisdn').execute()).map((row) => row.msisdn),
      ...(await db.selectFrom('incoming_calls').select('callee').execute()).map((row) => row.callee),
      ...(await db.selectFrom('rules').select('action').execute()).flatMap((row) => (row.action as { to: string[] }).to),
    ];
    for (const number of numbers) expect(number).toMatch(/^\+[1-9][0-9]{6,14}$/);
  });
});

describe('SQL metacharacters are data, never syntax', () => {
  const sqlText = ["'; DROP TABLE devices; --", "' OR '1'='1", 'Robert"); DELETE FROM api_keys; --', '%_\\', '$1 $$ E\'\\x00\''];

  it('stores names with quotes, comments and wildcards exactly, and the tables are intact', async () => {
    for (const [index, name] of sqlText.entries()) {
      const created = await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: `sql-${index}`, type: 'sensor_smoke', msisdn: '+79161234567', name, metadata: { [name]: name } } });
      expect(created.statusCode, created.body).toBe(201);
      const read = await t.request({ method: 'GET', url: `/api/v1/devices/sql-${index}` });
      expect(read.json()).toMatchObject({ name, metadata: { [name]: name } });
    }
    expect((await t.request({ method: 'GET', url: '/api/v1/api-keys' })).statusCode).toBe(200);
    expect((await t.request({ method: 'GET', url: '/api/v1/devices/hall-smoke' })).statusCode).toBe(200);
  });

  it('filters with metacharacters match literally: no wildcard widens a search', async () => {
    for (const value of [...sqlText, '*', '%', '_']) {
      for (const name of ['device_id', 'correlation_id']) {
        const response = await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { [name]: value } });
        expect(response.statusCode, response.body).toBe(200);
        expect(response.json().items, `${name}=${value}`).toEqual([]);
      }
    }
    // A type family is matched with LIKE, its text escaped: `_` is a literal underscore there.
    expect((await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { type: 'device.*' } })).json().items.length).toBeGreaterThan(0);
    expect((await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { type: '_evice.*' } })).json().items).toEqual([]);
    for (const type of ['device%', "device.*' OR '1'='1", 'device.%']) {
      const response = await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { type } });
      expect(response.statusCode, `${type}: ${response.body}`).toBe(422);
      expect(fieldsOf(expectProblem(response))).toContain('querystring.type');
    }
  });
});

describe('header splitting (CR/LF) over a real socket', () => {
  it('refuses a header value with a bare LF or CR, or an obsolete line fold, with 400 problem+json', async () => {
    for (const header of ['X-Request-Id: abc\nX-Injected: yes', 'X-Request-Id: abc\rX-Injected: yes', 'X-Request-Id: abc\r\n X-Injected: yes']) {
      const answer = await rawExchange(`GET /healthz HTTP/1.1\r\nHost: x\r\n${header}\r\nConnection: close\r\n\r\n`);
      expect(answer, JSON.stringify(header)).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer).toMatch(/content-type: application\/problem\+json/i);
      expect(answer).not.toMatch(/x-injected/i);
    }
  });

  it('never echoes CR/LF sent %-encoded in a path, a query or a request id into a response header', async () => {
    const requests = [
      `GET /api/v1/devices/a%0d%0aX-Injected:%20yes HTTP/1.1\r\nHost: x\r\nX-API-Key: ${ADMIN_KEY}\r\nConnection: close\r\n\r\n`,
      `GET /api/v1/event-logs?device_id=%0d%0aX-Injected:%20yes HTTP/1.1\r\nHost: x\r\nX-API-Key: ${ADMIN_KEY}\r\nConnection: close\r\n\r\n`,
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a%0d%0aX-Injected: yes\r\nConnection: close\r\n\r\n`,
    ];
    for (const request of requests) {
      const answer = await rawExchange(request);
      const head = answer.split('\r\n\r\n')[0]!;
      expect(head, request).toMatch(/^HTTP\/1\.1 [24]\d\d /);
      expect(head.split('\r\n').filter((line) => /^x-injected/i.test(line))).toEqual([]);
      expect(head).not.toMatch(/%0d%0a/i);
    }
  });
});

describe('oversized and deeply nested JSON', () => {
  it('refuses a body over BODY_LIMIT_BYTES with 413, on every body route', async () => {
    const big = JSON.stringify({ padding: 'x'.repeat(70 * 1024) });
    for (const [method, url] of [
      ['POST', '/api/v1/devices'],
      ['POST', '/api/v1/rules'],
      ['POST', '/api/v1/webhooks/events'],
      ['POST', '/api/v1/incoming-calls'],
      ['POST', '/api/v1/api-keys'],
      ['PATCH', '/api/v1/devices/hall-smoke'],
    ] as const) {
      const response = await t.request({ method, url, payload: big, headers: { 'content-type': 'application/json' } });
      expect(response.statusCode, `${method} ${url}`).toBe(413);
      expect(expectProblem(response).code).toBe('payload_too_large');
    }
  });

  it('refuses nesting deeper than 32 levels in free-form fields with 422, and 30 000 levels without crashing', async () => {
    const deep = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    const deepArrays = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
    for (const depth of [40, 30_000]) {
      for (const nested of [deep(depth), deepArrays(depth)]) {
        const event = await t.request({
          method: 'POST',
          url: '/api/v1/webhooks/events',
          headers: { 'content-type': 'application/json' },
          payload: `{"event_id":"deep-${depth}","device_id":"hall-smoke","event_type":"test","data":{"x":${nested}}}`,
        });
        expect(event.statusCode, event.body.slice(0, 200)).toBeGreaterThanOrEqual(400);
        expect(event.statusCode).toBeLessThan(500);
        expectProblem(event);
      }
    }
    expect((await t.request({ method: 'GET', url: '/healthz', key: null })).statusCode).toBe(200);
  });
});

describe('prototype-pollution keys', () => {
  const bodies: [string, string, string][] = [
    ['POST', '/api/v1/devices', '{"device_id":"pp-1","type":"sensor_smoke","msisdn":"+79161234567",%KEY%}'],
    ['POST', '/api/v1/devices', '{"device_id":"pp-2","type":"sensor_smoke","msisdn":"+79161234567","metadata":{%KEY%}}'],
    ['PATCH', '/api/v1/devices/hall-smoke', '{"name":"x",%KEY%}'],
    ['POST', '/api/v1/rules', '{"name":"r","event_type":"smoke","device_id":"hall-smoke","action":{"type":"call","to":["+79161234567"],"message":"m",%KEY%}}'],
    ['POST', '/api/v1/webhooks/events', '{"event_id":"pp-evt","device_id":"hall-smoke","event_type":"test","data":{%KEY%}}'],
    ['POST', '/api/v1/incoming-calls', '{"call_id":"pp-call","caller":"+74951234567","callee":"+79161234567",%KEY%}'],
    ['POST', '/api/v1/api-keys', '{"role":"webhook","name":"pp",%KEY%}'],
  ];
  const keys = ['"__proto__":{"polluted":true,"role":"admin"}', '"constructor":{"prototype":{"polluted":true}}'];

  it.each(bodies)('%s %s: refuses __proto__ and constructor.prototype with 400, polluting nothing', async (method, url, template) => {
    for (const key of keys) {
      const response = await t.request({ method: method, url, payload: template.replace('%KEY%', key), headers: { 'content-type': 'application/json' } });
      expect(response.statusCode, `${key}: ${response.body}`).toBe(400);
      expect(expectProblem(response).code).toBe('malformed_json');
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('role');
  });

  it('a "constructor" key that is not a prototype path is plain data', async () => {
    const response = await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'pp-data', type: 'sensor_smoke', msisdn: '+79161234567', metadata: { constructor: 'Acme', prototype: 'v2' } } });
    expect(response.statusCode, response.body).toBe(201);
    expect(response.json().metadata).toEqual({ constructor: 'Acme', prototype: 'v2' });
  });
});

describe('bytes that are not UTF-8', () => {
  const invalid: [string, Buffer][] = [
    ['a lone continuation byte', Buffer.from([0x80])],
    ['0xFF', Buffer.from([0xff])],
    ['a truncated sequence', Buffer.from([0xe2, 0x82])],
    ['an overlong encoding of /', Buffer.from([0xc0, 0xaf])],
    ['an encoded surrogate', Buffer.from([0xed, 0xa0, 0x80])],
  ];

  it.each(invalid)('refuses a JSON body with %s with 400 instead of storing U+FFFD', async (_what, bytes) => {
    const payload = Buffer.concat([Buffer.from('{"device_id":"utf8-bad","type":"sensor_smoke","msisdn":"+79161234567","name":"Hall'), bytes, Buffer.from('"}')]);
    const response = await t.request({ method: 'POST', url: '/api/v1/devices', payload, headers: { 'content-type': 'application/json' } });
    expect(response.statusCode, response.body).toBe(400);
    expect(expectProblem(response)).toMatchObject({ code: 'malformed_json', detail: expect.stringContaining('UTF-8') });
    expect((await t.request({ method: 'GET', url: '/api/v1/devices/utf8-bad' })).statusCode).toBe(404);
  });

  it('accepts valid UTF-8 of every plane, and a byte-order mark', async () => {
    const payload = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ device_id: 'utf8-good', type: 'sensor_smoke', msisdn: '+79161234567', name: 'Кухня 厨房 🔥' }))]);
    const response = await t.request({ method: 'POST', url: '/api/v1/devices', payload, headers: { 'content-type': 'application/json' } });
    expect(response.statusCode, response.body).toBe(201);
    expect(response.json().name).toBe('Кухня 厨房 🔥');
  });

  it('answers %-encoded invalid UTF-8 in a path or query with a 4xx problem or an empty result, never 5xx', async () => {
    for (const url of ['/api/v1/devices/%FF', '/api/v1/devices/%C0%AF', '/api/v1/rules/%ED%A0%80', '/api/v1/event-logs?device_id=%FF', '/api/v1/devices?msisdn=%C3', '/api/v1/incoming-calls/%E2%82']) {
      const response = await t.request({ method: 'GET', url });
      expect(response.statusCode, `${url}: ${response.body}`).toBeLessThan(500);
      if (response.statusCode >= 400) expectProblem(response, url);
      else expect(response.json().items, url).toEqual([]);
    }
  });
});
