import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, createTestApp, type TestApp } from '../support/app.js';

const secret = `whsec_${randomBytes(32).toString('base64')}`;
let t: TestApp;
let key: string;
beforeAll(async () => {
  t = await createTestApp({ WEBHOOK_SIGNING_SECRET: secret });
  key = await createKey(t, 'webhook');
  await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'signed-smoke', type: 'sensor_smoke', msisdn: '+79161234567' } });
});
afterAll(async () => {
  await t.close();
});

function signed(body: string, signer = new Webhook(secret), at = new Date()) {
  const id = `msg_${randomBytes(6).toString('hex')}`;
  return { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signer.sign(id, at, body), 'content-type': 'application/json' };
}

describe('Standard Webhooks signatures on device events (WEBHOOK_SIGNING_SECRET set)', () => {
  it('accepts a correctly signed event', async () => {
    const body = JSON.stringify({ event_id: 'signed-1', device_id: 'signed-smoke', event_type: 'test' });
    const response = await t.request({ method: 'POST', url: '/api/v1/webhooks/events', key, headers: signed(body), payload: body });
    expect(response.statusCode).toBe(202);
  });

  it('refuses a missing, forged, stale or body-mismatched signature with 401, recording nothing but the refusal', async () => {
    const body = JSON.stringify({ event_id: 'signed-2', device_id: 'signed-smoke', event_type: 'test' });
    const other = new Webhook(`whsec_${randomBytes(32).toString('base64')}`);
    const cases = [
      { 'content-type': 'application/json' },
      signed(body, other),
      signed(body, undefined, new Date(Date.now() - 10 * 60_000)),
      signed(JSON.stringify({ event_id: 'signed-2', device_id: 'signed-smoke', event_type: 'smoke' })),
    ];
    for (const headers of cases) {
      const response = await t.request({ method: 'POST', url: '/api/v1/webhooks/events', key, headers, payload: body });
      expect(response.statusCode).toBe(401);
      expect(response.json().code).toBe('invalid_signature');
    }
    const events = await t.database.storage.db.selectFrom('device_events').select('event_id').where('event_id', '=', 'signed-2').execute();
    expect(events).toEqual([]);
    const log = (await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { type: 'event.rejected' } })).json();
    expect(log.items).toHaveLength(4);
  });
});
