import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, createTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

const speaker = (id: string, extra: Record<string, unknown> = {}) => ({
  device_id: id,
  type: 'speaker',
  msisdn: '+7 916 123-45-67',
  endpoint: 'http://127.0.0.1:9/notify',
  ...extra,
});

describe('POST /api/v1/devices', () => {
  it('registers a speaker with its number in E.164 and returns its signing secret once', async () => {
    const response = await t.request({ method: 'POST', url: '/api/v1/devices', payload: speaker('spk-create', { name: 'Kitchen', metadata: { room: 'kitchen' } }) });
    expect(response.statusCode).toBe(201);
    expect(response.headers.location).toBe('/api/v1/devices/spk-create');
    const body = response.json();
    expect(body).toMatchObject({ device_id: 'spk-create', type: 'speaker', msisdn: '+79161234567', name: 'Kitchen', metadata: { room: 'kitchen' }, enabled: true, has_signing_secret: true });
    expect(body.signing_secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);

    const again = await t.request({ method: 'GET', url: '/api/v1/devices/spk-create' });
    expect(again.statusCode).toBe(200);
    expect(again.json()).not.toHaveProperty('signing_secret');
    expect(again.body).not.toContain(body.signing_secret);
  });

  it('registers a smoke sensor without endpoint or secret', async () => {
    const response = await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'smoke-create', type: 'sensor_smoke', msisdn: '8 (916) 765-43-21' } });
    expect(response.statusCode).toBe(201);
    expect(response.json()).toMatchObject({ msisdn: '+79167654321', endpoint: null, has_signing_secret: false });
    expect(response.json()).not.toHaveProperty('signing_secret');
  });

  it('accepts mqtt endpoints with a topic', async () => {
    const response = await t.request({ method: 'POST', url: '/api/v1/devices', payload: speaker('spk-mqtt', { endpoint: 'mqtt://127.0.0.1:1883/home/42/speaker' }) });
    expect(response.statusCode).toBe(201);
  });

  it.each([
    ['a speaker without endpoint', { device_id: 'x1', type: 'speaker', msisdn: '+79161234567' }, 'body.endpoint'],
    ['a sensor with an endpoint', { device_id: 'x2', type: 'sensor_smoke', msisdn: '+79161234567', endpoint: 'http://127.0.0.1/x' }, 'body.endpoint'],
    ['an ftp endpoint', speaker('x3', { endpoint: 'ftp://127.0.0.1/x' }), 'body.endpoint'],
    ['an mqtt endpoint without topic', speaker('x4', { endpoint: 'mqtt://127.0.0.1:1883' }), 'body.endpoint'],
    ['an mqtt wildcard topic', speaker('x5', { endpoint: 'mqtt://127.0.0.1:1883/home/#' }), 'body.endpoint'],
    ['an invalid number', speaker('x6', { msisdn: '12345' }), 'body.msisdn'],
    ['letters in the number', speaker('x7', { msisdn: '+7916abc4567' }), 'body.msisdn'],
    ['an unknown type', speaker('x8', { type: 'toaster' }), 'body.type'],
    ['a device_id with spaces', speaker('bad id'), 'body.device_id'],
    ['a missing msisdn', { device_id: 'x9', type: 'sensor_smoke' }, 'body.msisdn'],
    ['an unknown field', speaker('x10', { colour: 'red' }), 'body.colour'],
    ['a number given as a JSON number', speaker('x11', { msisdn: 79161234567 }), 'body.msisdn'],
  ])('refuses %s with 422 naming the field', async (_name, payload, field) => {
    const response = await t.request({ method: 'POST', url: '/api/v1/devices', payload });
    expect(response.statusCode).toBe(422);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    const body = response.json();
    expect(body.code).toBe('validation_failed');
    expect(body.errors.map((error: { field: string }) => error.field)).toContain(field);
  });

  it('refuses a second device with the same device_id with 409', async () => {
    expect((await t.request({ method: 'POST', url: '/api/v1/devices', payload: speaker('spk-dup') })).statusCode).toBe(201);
    const response = await t.request({ method: 'POST', url: '/api/v1/devices', payload: speaker('spk-dup') });
    expect(response.statusCode).toBe(409);
    expect(response.json().code).toBe('device_exists');
  });

  it('needs a key (401) of the admin role (403)', async () => {
    expect((await t.request({ method: 'POST', url: '/api/v1/devices', payload: speaker('spk-auth'), key: null })).statusCode).toBe(401);
    expect((await t.request({ method: 'POST', url: '/api/v1/devices', payload: speaker('spk-auth'), key: 'tig_not-a-real-key-at-all' })).statusCode).toBe(401);
    const webhookKey = await createKey(t, 'webhook');
    const forbidden = await t.request({ method: 'POST', url: '/api/v1/devices', payload: speaker('spk-auth'), key: webhookKey });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().code).toBe('forbidden');
    expect((await t.request({ method: 'GET', url: '/api/v1/devices/spk-auth' })).statusCode).toBe(404);
  });

  it('answers 413 for a body over the limit', async () => {
    const response = await t.request({
      method: 'POST',
      url: '/api/v1/devices',
      payload: speaker('spk-big', { metadata: { blob: 'x'.repeat(1_100_000) } }),
    });
    expect(response.statusCode).toBe(413);
    expect(response.json().code).toBe('payload_too_large');
  });
});

describe('GET /api/v1/devices', () => {
  beforeAll(async () => {
    for (let i = 0; i < 7; i++) {
      const payload = { device_id: `page-${i}`, type: i % 2 ? 'sensor_smoke' : 'speaker', msisdn: '+44 20 7946 0958', ...(i % 2 ? {} : { endpoint: 'http://127.0.0.1:9/n' }) };
      expect((await t.request({ method: 'POST', url: '/api/v1/devices', payload })).statusCode).toBe(201);
    }
  });

  it('pages through every device bound to a number, in order, without repeats', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: Record<string, string> = { msisdn: '+442079460958', limit: '3', ...(cursor ? { cursor } : {}) };
      const response = await t.request({ method: 'GET', url: '/api/v1/devices', query });
      expect(response.statusCode).toBe(200);
      const body = response.json();
      expect(body.items.length).toBeLessThanOrEqual(3);
      seen.push(...body.items.map((item: { device_id: string }) => item.device_id));
      cursor = body.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(['page-0', 'page-1', 'page-2', 'page-3', 'page-4', 'page-5', 'page-6']);
  });

  it('filters by type and by a number written any way', async () => {
    const response = await t.request({ method: 'GET', url: '/api/v1/devices', query: { type: 'sensor_smoke', msisdn: '0044 20 7946 0958' } });
    expect(response.json().items.map((item: { device_id: string }) => item.device_id)).toEqual(['page-1', 'page-3', 'page-5']);
  });

  it('refuses a bad cursor, limit or filter with 422', async () => {
    const queries: Record<string, string>[] = [{ cursor: 'garbage' }, { limit: '0' }, { limit: '100000' }, { type: 'toaster' }, { msisdn: 'not a number' }, { colour: 'red' }];
    for (const query of queries) {
      const response = await t.request({ method: 'GET', url: '/api/v1/devices', query });
      expect(response.statusCode, JSON.stringify(query)).toBe(422);
    }
  });
});

describe('PATCH, DELETE and rotate-secret', () => {
  it('changes only the given fields and logs it', async () => {
    await t.request({ method: 'POST', url: '/api/v1/devices', payload: speaker('spk-patch', { name: 'Old' }) });
    const response = await t.request({ method: 'PATCH', url: '/api/v1/devices/spk-patch', payload: { name: null, msisdn: '8 916 000 11 22', enabled: false } });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ name: null, msisdn: '+79160001122', enabled: false, endpoint: 'http://127.0.0.1:9/notify' });
    const log = await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { device_id: 'spk-patch', type: 'device.updated' } });
    expect(log.json().items[0].details).toMatchObject({ changed: ['name', 'msisdn', 'enabled'], previous_msisdn: '+79161234567' });
  });

  it('refuses to clear a speaker endpoint, to change the type, or an empty patch', async () => {
    await t.request({ method: 'POST', url: '/api/v1/devices', payload: speaker('spk-patch2') });
    for (const payload of [{ endpoint: null }, { type: 'sensor_smoke' }, {}, { device_id: 'other' }]) {
      const response = await t.request({ method: 'PATCH', url: '/api/v1/devices/spk-patch2', payload });
      expect(response.statusCode, JSON.stringify(payload)).toBe(422);
    }
  });

  it('answers 404 for unknown devices on every route', async () => {
    expect((await t.request({ method: 'GET', url: '/api/v1/devices/nope' })).statusCode).toBe(404);
    expect((await t.request({ method: 'PATCH', url: '/api/v1/devices/nope', payload: { name: 'x' } })).statusCode).toBe(404);
    expect((await t.request({ method: 'DELETE', url: '/api/v1/devices/nope' })).statusCode).toBe(404);
    expect((await t.request({ method: 'POST', url: '/api/v1/devices/nope/rotate-secret' })).statusCode).toBe(404);
  });

  it('rotates a speaker secret, and refuses for a sensor', async () => {
    const created = (await t.request({ method: 'POST', url: '/api/v1/devices', payload: speaker('spk-rotate') })).json();
    const rotated = await t.request({ method: 'POST', url: '/api/v1/devices/spk-rotate/rotate-secret' });
    expect(rotated.statusCode).toBe(200);
    expect(rotated.json().signing_secret).toMatch(/^whsec_/);
    expect(rotated.json().signing_secret).not.toBe(created.signing_secret);
    await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'smoke-rotate', type: 'sensor_smoke', msisdn: '+79161234567' } });
    expect((await t.request({ method: 'POST', url: '/api/v1/devices/smoke-rotate/rotate-secret' })).statusCode).toBe(409);
  });

  it('deletes a device and logs it', async () => {
    await t.request({ method: 'POST', url: '/api/v1/devices', payload: speaker('spk-delete') });
    expect((await t.request({ method: 'DELETE', url: '/api/v1/devices/spk-delete' })).statusCode).toBe(204);
    expect((await t.request({ method: 'GET', url: '/api/v1/devices/spk-delete' })).statusCode).toBe(404);
    const log = await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { device_id: 'spk-delete' } });
    expect(log.json().items.map((row: { type: string }) => row.type)).toEqual(['device.deleted', 'device.created']);
  });
});
