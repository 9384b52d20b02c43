/**
 * Replay of signed device events (WEBHOOK_SIGNING_SECRET set): a message older than the
 * tolerance is refused (401), and a message whose webhook-id was accepted before is refused
 * (409 webhook_replayed) by every instance on the same database, across restarts. A retry of the
 * same event in a new message (new webhook-id, same event_id) still gets the first outcome, and a
 * message whose first delivery failed is accepted when it comes again.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, createTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { expectProblem } from './profile.js';

const secret = `whsec_${randomBytes(32).toString('base64')}`;
const signer = new Webhook(secret);
const env = { WEBHOOK_SIGNING_SECRET: secret };

let database: TestDatabase;
let first: TestApp;
let key: string;

beforeAll(async () => {
  database = await createTestDatabase();
  first = await createTestApp(env, { database });
  key = await createKey(first, 'webhook');
  await first.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'hall-smoke', type: 'sensor_smoke', msisdn: '+79161234567' } });
});
afterAll(async () => {
  await first.app.close();
  await database.close();
});

interface Message {
  body: string;
  headers: Record<string, string>;
}

function message(event: Record<string, unknown>, options: { id?: string; at?: Date } = {}): Message {
  const body = JSON.stringify({ device_id: 'hall-smoke', event_type: 'test', ...event });
  const id = options.id ?? `msg_${randomUUID()}`;
  const at = options.at ?? new Date();
  return {
    body,
    headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signer.sign(id, at, body) },
  };
}

const deliver = (app: TestApp, sent: Message) => app.request({ method: 'POST', url: '/api/v1/webhooks/events', key, headers: sent.headers, payload: sent.body });

describe('replayed signed webhooks are refused', () => {
  it('refuses the same message again with 409 webhook_replayed, recording only the refusal', async () => {
    const sent = message({ event_id: 'replay-1' });
    expect((await deliver(first, sent)).statusCode).toBe(202);
    const replay = await deliver(first, sent);
    expect(replay.statusCode).toBe(409);
    expect(expectProblem(replay)).toMatchObject({ code: 'webhook_replayed', detail: expect.stringContaining(sent.headers['webhook-id']!) });
    const events = await database.storage.db.selectFrom('device_events').select('event_id').where('event_id', '=', 'replay-1').execute();
    expect(events).toHaveLength(1);
    const log = (await first.request({ method: 'GET', url: '/api/v1/event-logs', query: { type: 'event.rejected', device_id: 'hall-smoke' } })).json();
    expect(log.items).toEqual([expect.objectContaining({ details: expect.objectContaining({ reason: 'replayed webhook-id', webhook_id: sent.headers['webhook-id'] }) })]);
  });

  it('refuses a reused webhook-id even with another body, correctly signed', async () => {
    const id = `msg_${randomUUID()}`;
    expect((await deliver(first, message({ event_id: 'replay-2a' }, { id }))).statusCode).toBe(202);
    const reused = await deliver(first, message({ event_id: 'replay-2b', event_type: 'smoke' }, { id }));
    expect(reused.statusCode).toBe(409);
    expect((await database.storage.db.selectFrom('device_events').select('event_id').where('event_id', '=', 'replay-2b').execute())).toEqual([]);
  });

  it('answers a vendor retry (same event_id, new webhook-id) with the first outcome', async () => {
    const original = await deliver(first, message({ event_id: 'retry-1' }));
    expect(original.json()).toMatchObject({ status: 'accepted' });
    const retry = await deliver(first, message({ event_id: 'retry-1' }));
    expect(retry.statusCode).toBe(202);
    expect(retry.json()).toEqual({ ...original.json(), status: 'duplicate' });
  });

  it('refuses a message older than the tolerance, or from too far in the future, with 401', async () => {
    for (const offsetMs of [-6 * 60_000, -60 * 60_000, 6 * 60_000]) {
      const response = await deliver(first, message({ event_id: `stale-${offsetMs}` }, { at: new Date(Date.now() + offsetMs) }));
      expect(response.statusCode).toBe(401);
      expect(expectProblem(response).code).toBe('invalid_signature');
    }
  });

  it('accepts a message again when its first delivery failed (nothing was recorded then)', async () => {
    const sent = message({ event_id: 'late-device', device_id: 'not-yet-registered' });
    expect((await deliver(first, sent)).statusCode).toBe(404);
    await first.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'not-yet-registered', type: 'sensor_smoke', msisdn: '+79161234567' } });
    expect((await deliver(first, sent)).statusCode).toBe(202);
  });

  it('takes exactly one of two identical messages sent at once', async () => {
    const sent = message({ event_id: 'race-1' });
    const statuses = (await Promise.all([deliver(first, sent), deliver(first, sent)])).map((response) => response.statusCode).sort();
    expect(statuses).toEqual([202, 409]);
  });

  it('refuses a message another instance accepted, and after a restart', async () => {
    const second = await createTestApp(env, { database });
    const sent = message({ event_id: 'two-instances' });
    try {
      expect((await deliver(first, sent)).statusCode).toBe(202);
      expect((await deliver(second, sent)).statusCode).toBe(409);
    } finally {
      await second.app.close();
    }
    const restarted = await createTestApp(env, { database });
    try {
      expect((await deliver(restarted, sent)).statusCode).toBe(409);
    } finally {
      await restarted.app.close();
    }
  });

  it('keeps an id until twice the tolerance after its timestamp, and prunes what no replay can use', async () => {
    const db = database.storage.db;
    await db.insertInto('webhook_messages').values({ webhook_id: 'msg_long_gone', event_id: 'x', signed_at: new Date(Date.now() - 3_600_000), received_at: new Date(Date.now() - 3_600_000), expires_at: new Date(Date.now() - 3_000_000) }).execute();
    // A fresh instance prunes on its first signed event.
    const fresh = await createTestApp(env, { database });
    try {
      const at = new Date();
      const sent = message({ event_id: 'prune-trigger' }, { at });
      expect((await deliver(fresh, sent)).statusCode).toBe(202);
    } finally {
      await fresh.app.close();
    }
    const kept = await db.selectFrom('webhook_messages').selectAll().execute();
    expect(kept.map((row) => row.webhook_id)).not.toContain('msg_long_gone');
    const trigger = kept.find((row) => row.event_id === 'prune-trigger')!;
    expect(trigger.expires_at.getTime() - trigger.signed_at.getTime()).toBe(10 * 60_000);
  });

  it('refuses a webhook-id that is not printable ASCII or too long, and a timestamp that is not whole seconds', async () => {
    for (const headers of [{ 'webhook-id': 'x'.repeat(257) }, { 'webhook-id': 'msg with space' }, { 'webhook-timestamp': `${Math.floor(Date.now() / 1000)}abc` }, { 'webhook-timestamp': '1e9' }]) {
      const sent = message({ event_id: 'odd-headers' });
      const response = await first.request({ method: 'POST', url: '/api/v1/webhooks/events', key, headers: { ...sent.headers, ...headers }, payload: sent.body });
      expect(response.statusCode, JSON.stringify(headers)).toBe(401);
      expect(expectProblem(response).code).toBe('invalid_signature');
    }
  });
});
