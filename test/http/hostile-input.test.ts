/**
 * Whatever a client sends, the gateway answers with a 4xx application/problem+json naming the
 * problem (and, for validation, the field), never a 5xx, and keeps working afterwards.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  const target = await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'target', type: 'sensor_smoke', msisdn: '+79161234567' } });
  expect(target.statusCode).toBe(201);
});
afterAll(async () => {
  await t.close();
});

const JSON_TYPE = { 'content-type': 'application/json' };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface ExpectedProblem {
  /** The exact status, when one answer is right; otherwise any 4xx. */
  status?: number;
  code?: string;
  /** For validation problems: a field `errors[]` must name. */
  field?: string;
}

function expectProblem(response: LightMyRequestResponse, expected: ExpectedProblem): void {
  const context = `${response.statusCode} ${String(response.headers['content-type'])} ${response.body.slice(0, 300)}`;
  expect(response.statusCode, context).toBeGreaterThanOrEqual(400);
  expect(response.statusCode, context).toBeLessThan(500);
  if (expected.status !== undefined) expect(response.statusCode, context).toBe(expected.status);
  expect(response.headers['content-type'], context).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(response.body) as Record<string, unknown>;
  expect(body, context).toMatchObject({
    type: expect.any(String),
    title: expect.any(String),
    status: response.statusCode,
    detail: expect.any(String),
    code: expect.any(String),
    request_id: expect.any(String),
  });
  expect(body.request_id, context).toBe(response.headers['x-request-id']);
  if (expected.code !== undefined) expect(body.code, context).toBe(expected.code);
  if (body.code === 'validation_failed') {
    const errors = body.errors as Array<{ field: string; message: string }>;
    expect(errors.length, context).toBeGreaterThan(0);
    for (const error of errors) {
      expect(error.field, context).toMatch(/^(body|querystring|params|headers)(\.|$)/);
      expect(error.message, context).toMatch(/\S/);
    }
  }
  if (expected.field !== undefined) {
    const errors = (body.errors ?? []) as Array<{ field: string }>;
    expect(errors.map((error) => error.field), context).toContain(expected.field);
  }
}

/** `{"device_id":..., "metadata":{"a":{"a":...1...}}}` nested `depth` levels, written by hand. */
function deeplyNested(prefix: string, depth: number, open = '{"a":', close = '}'): string {
  return `{${prefix}"metadata":{"a":${open.repeat(depth)}1${close.repeat(depth)}}}`;
}

const sensor = (deviceId: string, extra: Record<string, unknown> = {}) => ({ device_id: deviceId, type: 'sensor_smoke', msisdn: '+79161234567', ...extra });
const OVER_ONE_MIB = 'x'.repeat(1_100_000);

interface Case extends ExpectedProblem {
  name: string;
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';
  url: string;
  payload?: string | object;
  headers?: Record<string, string>;
  key?: string | null;
}

const createDevice: Case[] = [
  { name: 'malformed JSON', method: 'POST', url: '/api/v1/devices', payload: '{"device_id":', headers: JSON_TYPE, status: 400, code: 'malformed_json' },
  { name: 'an unknown field', method: 'POST', url: '/api/v1/devices', payload: sensor('h-unknown', { colour: 'red' }), status: 422, field: 'body.colour' },
  { name: 'a number for the string device_id', method: 'POST', url: '/api/v1/devices', payload: sensor('x', { device_id: 12345 }), status: 422, field: 'body.device_id' },
  { name: 'a string for the boolean enabled', method: 'POST', url: '/api/v1/devices', payload: sensor('h-enabled', { enabled: 'true' }), status: 422, field: 'body.enabled' },
  { name: 'an object for the string name', method: 'POST', url: '/api/v1/devices', payload: sensor('h-name-obj', { name: { first: 'x' } }), status: 422, field: 'body.name' },
  { name: 'a device_id of 129 characters', method: 'POST', url: '/api/v1/devices', payload: sensor('d'.repeat(129)), status: 422, field: 'body.device_id' },
  { name: 'a name of 201 characters', method: 'POST', url: '/api/v1/devices', payload: sensor('h-long-name', { name: 'n'.repeat(201) }), status: 422, field: 'body.name' },
  { name: 'a metadata key of 65 characters', method: 'POST', url: '/api/v1/devices', payload: sensor('h-meta-key', { metadata: { ['k'.repeat(65)]: 1 } }), status: 422 },
  {
    name: 'metadata with 51 keys',
    method: 'POST',
    url: '/api/v1/devices',
    payload: sensor('h-meta-many', { metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i])) }),
    status: 422,
    field: 'body.metadata',
  },
  { name: 'a text/plain body', method: 'POST', url: '/api/v1/devices', payload: 'device_id=x', headers: { 'content-type': 'text/plain' }, status: 415, code: 'unsupported_media_type' },
  { name: 'a form-encoded body', method: 'POST', url: '/api/v1/devices', payload: 'device_id=x', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'unsupported_media_type' },
  { name: 'a body without content-type', method: 'POST', url: '/api/v1/devices', payload: 'device_id=x', status: 415, code: 'unsupported_media_type' },
  { name: 'an empty JSON body', method: 'POST', url: '/api/v1/devices', payload: '', headers: JSON_TYPE, status: 400, code: 'empty_body' },
  { name: 'a JSON array', method: 'POST', url: '/api/v1/devices', payload: '[{"device_id":"h-array"}]', headers: JSON_TYPE, status: 422, field: 'body' },
  { name: 'a JSON null', method: 'POST', url: '/api/v1/devices', payload: 'null', headers: JSON_TYPE, status: 422, field: 'body' },
  { name: 'a JSON string', method: 'POST', url: '/api/v1/devices', payload: '"h-string"', headers: JSON_TYPE, status: 422, field: 'body' },
  {
    name: 'a __proto__ key',
    method: 'POST',
    url: '/api/v1/devices',
    payload: '{"device_id":"h-proto","type":"sensor_smoke","msisdn":"+79161234567","__proto__":{"enabled":false,"polluted":true}}',
    headers: JSON_TYPE,
  },
  {
    name: 'a __proto__ key inside metadata',
    method: 'POST',
    url: '/api/v1/devices',
    payload: '{"device_id":"h-proto2","type":"sensor_smoke","msisdn":"+79161234567","metadata":{"__proto__":{"polluted":true}}}',
    headers: JSON_TYPE,
  },
  {
    name: 'a constructor.prototype key',
    method: 'POST',
    url: '/api/v1/devices',
    payload: '{"device_id":"h-ctor","type":"sensor_smoke","msisdn":"+79161234567","constructor":{"prototype":{"polluted":true}}}',
    headers: JSON_TYPE,
  },
  { name: 'metadata nested 10 000 objects deep', method: 'POST', url: '/api/v1/devices', payload: deeplyNested('"device_id":"h-deep","type":"sensor_smoke","msisdn":"+79161234567",', 10_000), headers: JSON_TYPE },
  {
    name: 'metadata nested 10 000 arrays deep',
    method: 'POST',
    url: '/api/v1/devices',
    payload: deeplyNested('"device_id":"h-deep2","type":"sensor_smoke","msisdn":"+79161234567",', 10_000, '[', ']'),
    headers: JSON_TYPE,
  },
  { name: 'a body over 1 MiB', method: 'POST', url: '/api/v1/devices', payload: sensor('h-big', { name: OVER_ONE_MIB }), status: 413, code: 'payload_too_large' },
  {
    name: 'a Content-Length far larger than the body',
    method: 'POST',
    url: '/api/v1/devices',
    payload: JSON.stringify(sensor('h-clen-big')),
    headers: { ...JSON_TYPE, 'content-length': '99999999' },
    status: 413,
  },
  {
    name: 'a Content-Length smaller than the body',
    method: 'POST',
    url: '/api/v1/devices',
    payload: JSON.stringify(sensor('h-clen-small')),
    headers: { ...JSON_TYPE, 'content-length': '5' },
    status: 400,
  },
  { name: 'a NUL in device_id', method: 'POST', url: '/api/v1/devices', payload: sensor('h-nul\u0000id'), status: 422, field: 'body.device_id' },
  { name: 'Cyrillic letters in device_id', method: 'POST', url: '/api/v1/devices', payload: sensor('датчик-1'), status: 422, field: 'body.device_id' },
  { name: 'an emoji in device_id', method: 'POST', url: '/api/v1/devices', payload: sensor('smoke-🔥'), status: 422, field: 'body.device_id' },
  { name: 'a zero-width space in device_id', method: 'POST', url: '/api/v1/devices', payload: sensor('smoke\u200b1'), status: 422, field: 'body.device_id' },
  { name: 'a newline in device_id', method: 'POST', url: '/api/v1/devices', payload: sensor('smoke\n1'), status: 422, field: 'body.device_id' },
  { name: 'a device_id starting with a dot', method: 'POST', url: '/api/v1/devices', payload: sensor('../etc'), status: 422, field: 'body.device_id' },
  { name: 'a NUL in name', method: 'POST', url: '/api/v1/devices', payload: sensor('h-nul-name', { name: 'Kitchen\u0000' }) },
  { name: 'a NUL in a metadata value', method: 'POST', url: '/api/v1/devices', payload: sensor('h-nul-meta', { metadata: { room: 'a\u0000b' } }) },
  { name: 'a NUL in a metadata key', method: 'POST', url: '/api/v1/devices', payload: sensor('h-nul-meta-key', { metadata: { 'ro\u0000om': 'kitchen' } }) },
  {
    name: 'a NUL in endpoint',
    method: 'POST',
    url: '/api/v1/devices',
    payload: { device_id: 'h-nul-endpoint', type: 'speaker', msisdn: '+79161234567', endpoint: 'http://127.0.0.1:9/notify\u0000' },
  },
  { name: 'a NUL in msisdn', method: 'POST', url: '/api/v1/devices', payload: sensor('h-nul-msisdn', { msisdn: '+7916\u00001234567' }), status: 422, field: 'body.msisdn' },
  {
    name: 'channel variables in msisdn',
    method: 'POST',
    url: '/api/v1/devices',
    payload: sensor('h-inject', { msisdn: '{origination_caller_id_number=1}+79161234567' }),
    status: 422,
    field: 'body.msisdn',
  },
];

const createApiKey: Case[] = [
  { name: 'malformed JSON', method: 'POST', url: '/api/v1/api-keys', payload: '{"role":', headers: JSON_TYPE, status: 400, code: 'malformed_json' },
  { name: 'an unknown field', method: 'POST', url: '/api/v1/api-keys', payload: { role: 'webhook', name: 'x', expires: 'never' }, status: 422, field: 'body.expires' },
  { name: 'a number for the string name', method: 'POST', url: '/api/v1/api-keys', payload: { role: 'webhook', name: 42 }, status: 422, field: 'body.name' },
  { name: 'an unknown role', method: 'POST', url: '/api/v1/api-keys', payload: { role: 'root', name: 'x' }, status: 422, field: 'body.role' },
  { name: 'a missing role', method: 'POST', url: '/api/v1/api-keys', payload: { name: 'x' }, status: 422, field: 'body.role' },
  { name: 'a name of 201 characters', method: 'POST', url: '/api/v1/api-keys', payload: { role: 'webhook', name: 'n'.repeat(201) }, status: 422, field: 'body.name' },
  { name: 'an empty name', method: 'POST', url: '/api/v1/api-keys', payload: { role: 'webhook', name: '' }, status: 422, field: 'body.name' },
  { name: 'a text/plain body', method: 'POST', url: '/api/v1/api-keys', payload: 'role=admin', headers: { 'content-type': 'text/plain' }, status: 415, code: 'unsupported_media_type' },
  { name: 'an empty JSON body', method: 'POST', url: '/api/v1/api-keys', payload: '', headers: JSON_TYPE, status: 400, code: 'empty_body' },
  { name: 'a JSON array', method: 'POST', url: '/api/v1/api-keys', payload: '[]', headers: JSON_TYPE, status: 422, field: 'body' },
  { name: 'a JSON null', method: 'POST', url: '/api/v1/api-keys', payload: 'null', headers: JSON_TYPE, status: 422, field: 'body' },
  { name: 'a __proto__ key', method: 'POST', url: '/api/v1/api-keys', payload: '{"role":"webhook","name":"x","__proto__":{"role":"admin"}}', headers: JSON_TYPE },
  { name: 'a body over 1 MiB', method: 'POST', url: '/api/v1/api-keys', payload: { role: 'webhook', name: OVER_ONE_MIB }, status: 413, code: 'payload_too_large' },
  { name: 'a NUL in name', method: 'POST', url: '/api/v1/api-keys', payload: { role: 'webhook', name: 'ci\u0000bot' } },
  { name: 'a non-numeric id to revoke', method: 'DELETE', url: '/api/v1/api-keys/abc', status: 422, field: 'params.id' },
  { name: 'a negative id to revoke', method: 'DELETE', url: '/api/v1/api-keys/-1', status: 422, field: 'params.id' },
  { name: 'an id beyond bigint to revoke', method: 'DELETE', url: '/api/v1/api-keys/99999999999999999999' },
];

const patchDevice: Case[] = [
  { name: 'malformed JSON', method: 'PATCH', url: '/api/v1/devices/target', payload: '{"name":', headers: JSON_TYPE, status: 400, code: 'malformed_json' },
  { name: 'an unknown field', method: 'PATCH', url: '/api/v1/devices/target', payload: { colour: 'red' }, status: 422, field: 'body.colour' },
  { name: 'a device_id change', method: 'PATCH', url: '/api/v1/devices/target', payload: { device_id: 'other' }, status: 422, field: 'body.device_id' },
  { name: 'a string for the boolean enabled', method: 'PATCH', url: '/api/v1/devices/target', payload: { enabled: 'false' }, status: 422, field: 'body.enabled' },
  { name: 'a number for the string name', method: 'PATCH', url: '/api/v1/devices/target', payload: { name: 7 }, status: 422, field: 'body.name' },
  { name: 'a name of 201 characters', method: 'PATCH', url: '/api/v1/devices/target', payload: { name: 'n'.repeat(201) }, status: 422, field: 'body.name' },
  { name: 'an empty patch', method: 'PATCH', url: '/api/v1/devices/target', payload: {}, status: 422, field: 'body' },
  { name: 'a text/plain body', method: 'PATCH', url: '/api/v1/devices/target', payload: 'enabled=false', headers: { 'content-type': 'text/plain' }, status: 415, code: 'unsupported_media_type' },
  { name: 'an empty JSON body', method: 'PATCH', url: '/api/v1/devices/target', payload: '', headers: JSON_TYPE, status: 400, code: 'empty_body' },
  { name: 'a JSON array', method: 'PATCH', url: '/api/v1/devices/target', payload: '[{"enabled":false}]', headers: JSON_TYPE, status: 422, field: 'body' },
  { name: 'a JSON null', method: 'PATCH', url: '/api/v1/devices/target', payload: 'null', headers: JSON_TYPE, status: 422, field: 'body' },
  { name: 'a __proto__ key', method: 'PATCH', url: '/api/v1/devices/target', payload: '{"name":"x","__proto__":{"enabled":false}}', headers: JSON_TYPE },
  { name: 'metadata nested 10 000 objects deep', method: 'PATCH', url: '/api/v1/devices/target', payload: deeplyNested('', 10_000), headers: JSON_TYPE },
  { name: 'a body over 1 MiB', method: 'PATCH', url: '/api/v1/devices/target', payload: { name: OVER_ONE_MIB }, status: 413, code: 'payload_too_large' },
  { name: 'a NUL in name', method: 'PATCH', url: '/api/v1/devices/target', payload: { name: 'Hall\u0000way' } },
  { name: 'an encoded slash in the id', method: 'PATCH', url: '/api/v1/devices/a%2Fb', payload: { enabled: true }, status: 422, field: 'params.device_id' },
  { name: 'an encoded path traversal in the id', method: 'PATCH', url: '/api/v1/devices/..%2F..%2Fapi-keys', payload: { enabled: true }, status: 422, field: 'params.device_id' },
  { name: 'an encoded NUL in the id', method: 'PATCH', url: '/api/v1/devices/target%00', payload: { enabled: true }, status: 422, field: 'params.device_id' },
  { name: 'an id of 5000 characters', method: 'PATCH', url: `/api/v1/devices/${'i'.repeat(5000)}`, payload: { enabled: true } },
  { name: 'a broken percent-escape in the id', method: 'PATCH', url: '/api/v1/devices/%E0%A4%A', payload: { enabled: true } },
  { name: 'a valid body for a device that does not exist', method: 'PATCH', url: '/api/v1/devices/nobody-home', payload: { enabled: true }, status: 404, code: 'device_not_found' },
];

const otherRequests: Case[] = [
  { name: 'GET a device by an encoded slash', method: 'GET', url: '/api/v1/devices/a%2Fb', status: 422, field: 'params.device_id' },
  { name: 'GET a device by an encoded NUL', method: 'GET', url: '/api/v1/devices/a%00b', status: 422, field: 'params.device_id' },
  { name: 'GET a device by an id of 5000 characters', method: 'GET', url: `/api/v1/devices/${'i'.repeat(5000)}` },
  { name: 'GET a device by a lone %', method: 'GET', url: '/api/v1/devices/%' },
  { name: 'limit given twice', method: 'GET', url: '/api/v1/devices?limit=1&limit=2', status: 422, field: 'querystring.limit' },
  { name: 'cursor given twice', method: 'GET', url: '/api/v1/devices?cursor=a&cursor=b', status: 422, field: 'querystring.cursor' },
  { name: 'type given twice', method: 'GET', url: '/api/v1/devices?type=speaker&type=sensor_smoke', status: 422, field: 'querystring.type' },
  { name: 'limit in bracket syntax', method: 'GET', url: '/api/v1/devices?limit[]=1', status: 422 },
  { name: 'a __proto__ query parameter', method: 'GET', url: '/api/v1/devices?__proto__=1', status: 422 },
  { name: 'a fractional limit', method: 'GET', url: '/api/v1/devices?limit=1.5', status: 422, field: 'querystring.limit' },
  { name: 'api-keys limit given twice', method: 'GET', url: '/api/v1/api-keys?limit=1&limit=2', status: 422, field: 'querystring.limit' },
  { name: 'event-logs device_id given twice', method: 'GET', url: '/api/v1/event-logs?device_id=a&device_id=b', status: 422, field: 'querystring.device_id' },
  { name: 'event-logs since given twice', method: 'GET', url: '/api/v1/event-logs?since=2024-01-01T00:00:00Z&since=2024-01-02T00:00:00Z', status: 422, field: 'querystring.since' },
  { name: 'event-logs device_id with a NUL', method: 'GET', url: '/api/v1/event-logs?device_id=a%00b' },
  { name: 'event-logs correlation_id with a NUL', method: 'GET', url: '/api/v1/event-logs?correlation_id=%00' },
  { name: 'an unknown route', method: 'GET', url: '/api/v1/nope', status: 404, code: 'route_not_found' },
  { name: 'an unknown route without a key', method: 'GET', url: '/api/v1/nope', key: null, status: 404, code: 'route_not_found' },
  { name: 'an unknown route outside the API', method: 'GET', url: '/wp-admin/install.php', key: null, status: 404, code: 'route_not_found' },
  { name: 'a method the route does not have', method: 'PUT', url: '/api/v1/devices' },
];

function send(c: Case): Promise<LightMyRequestResponse> {
  return t.request({
    method: c.method,
    url: c.url,
    ...(c.payload !== undefined ? { payload: c.payload } : {}),
    ...(c.headers ? { headers: c.headers } : {}),
    ...(c.key !== undefined ? { key: c.key } : {}),
  });
}

describe.each([
  ['POST /api/v1/devices', createDevice],
  ['POST /api/v1/api-keys and DELETE /api/v1/api-keys/:id', createApiKey],
  ['PATCH /api/v1/devices/:device_id', patchDevice],
  ['path, query and route', otherRequests],
])('%s', (_route, cases) => {
  it.each(cases.map((c) => [c.name, c] as const))('answers %s with a 4xx problem', async (_name, c) => {
    expectProblem(await send(c), c);
  });
});

describe('after the hostile requests', () => {
  it('nothing hostile was stored and the prototype of objects is untouched', async () => {
    const list = await t.request({ method: 'GET', url: '/api/v1/devices', query: { limit: '500' } });
    expect(list.statusCode).toBe(200);
    const ids = list.json<{ items: Array<{ device_id: string }> }>().items.map((item) => item.device_id);
    expect(ids.filter((id) => id !== 'target' && !id.startsWith('h-proto') && id !== 'h-ctor')).toEqual([]);
    const target = await t.request({ method: 'GET', url: '/api/v1/devices/target' });
    expect(target.json()).toMatchObject({ device_id: 'target', enabled: true, name: null, metadata: {} });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('the gateway is still healthy and still registers a valid device', async () => {
    const health = await t.request({ method: 'GET', url: '/healthz', key: null });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({ status: 'ok' });
    const ready = await t.request({ method: 'GET', url: '/readyz', key: null });
    expect(ready.statusCode).toBe(200);
    const created = await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'after-the-storm', type: 'sensor_smoke', msisdn: '8 (916) 765-43-21' } });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ device_id: 'after-the-storm', msisdn: '+79167654321' });
  });
});

describe('boundaries that are valid', () => {
  it('a device_id of the longest allowed length (128) can be read, changed and deleted once created', async () => {
    const deviceId = `long-${'x'.repeat(123)}`;
    expect(deviceId).toHaveLength(128);
    const created = await t.request({ method: 'POST', url: '/api/v1/devices', payload: sensor(deviceId) });
    expect(created.statusCode).toBe(201);
    const location = created.headers.location as string;
    const read = await t.request({ method: 'GET', url: location });
    expect(read.statusCode, read.body.slice(0, 200)).toBe(200);
    const changed = await t.request({ method: 'PATCH', url: location, payload: { name: 'Long one' } });
    expect(changed.statusCode, changed.body.slice(0, 200)).toBe(200);
    const deleted = await t.request({ method: 'DELETE', url: location });
    expect(deleted.statusCode, deleted.body.slice(0, 200)).toBe(204);
  });

  it('event-log time filters at the edges of the calendar never answer 5xx', async () => {
    for (const since of ['0000-01-01T00:00:00Z', '0001-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '9999-12-31T23:59:59-23:59']) {
      for (const name of ['since', 'until']) {
        const response = await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { [name]: since } });
        expect(response.statusCode, `${name}=${since}: ${response.body.slice(0, 200)}`).toBeLessThan(500);
        if (response.statusCode >= 400) expectProblem(response, {});
      }
    }
  });
});

describe('request ids', () => {
  it('echoes a client-sent x-request-id in the header and in the problem', async () => {
    const response = await t.request({ method: 'POST', url: '/api/v1/devices', payload: sensor('bad id'), headers: { 'x-request-id': 'abc-123' } });
    expect(response.headers['x-request-id']).toBe('abc-123');
    expectProblem(response, { status: 422, field: 'body.device_id' });
    expect(response.json().request_id).toBe('abc-123');
  });

  it('echoes it on success too, and on a refusal for a missing key', async () => {
    const ok = await t.request({ method: 'GET', url: '/healthz', key: null, headers: { 'x-request-id': 'lb.trace:42_a' } });
    expect(ok.headers['x-request-id']).toBe('lb.trace:42_a');
    const refused = await t.request({ method: 'GET', url: '/api/v1/devices', key: null, headers: { 'x-request-id': 'abc-124' } });
    expectProblem(refused, { status: 401, code: 'unauthorized' });
    expect(refused.json().request_id).toBe('abc-124');
  });

  it.each([
    ['markup', '<script>alert(1)</script>'],
    ['300 characters', 'r'.repeat(300)],
    ['spaces', 'abc 123'],
    ['non-ASCII letters', 'запрос-1'],
    ['an empty value', ''],
  ])('replaces a request id with %s by a generated uuid', async (_what, given) => {
    const response = await t.request({ method: 'GET', url: '/api/v1/nope', headers: { 'x-request-id': given } });
    const id = response.headers['x-request-id'];
    expect(id).toMatch(UUID);
    expect(id).not.toBe(given);
    expectProblem(response, { status: 404 });
    expect(response.json().request_id).toBe(id);
  });

  it('gives every request without one a distinct id', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) ids.add((await t.request({ method: 'GET', url: '/healthz', key: null })).headers['x-request-id'] as string);
    expect(ids.size).toBe(5);
    for (const id of ids) expect(id).toMatch(UUID);
  });
});
