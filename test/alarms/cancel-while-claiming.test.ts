/**
 * Regression: canceling an alarm while the dispatcher claims its first call deadlocked on
 * PostgreSQL (and answered 500): the cancel locked the alarm FOR UPDATE then its calls, while the
 * claim locked the call then, through the calls -> alarms foreign-key check, the alarm. Found by
 * the authorization matrix (test/security). PGlite runs one connection at a time, so the race
 * exists only on a PostgreSQL server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPostgres } from '../support/database.js';

if (!onPostgres) console.log('cancel-while-claiming: runs on postgres only (PGlite serialises every transaction, so no deadlock can happen there)');

describe.skipIf(!onPostgres)('canceling an alarm at once after it started (postgres only)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('never deadlocks with the claim of its first call: 20 alarms started and canceled at once, all 200', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: `race-${i}`, type: 'sensor_smoke', msisdn: '+79161234567' } });
      await t.request({ method: 'POST', url: '/api/v1/rules', payload: { name: 'r', event_type: 'smoke', device_id: `race-${i}`, action: { type: 'call', to: ['+79165550106'], message: 'Smoke' } } });
      const event = await t.request({ method: 'POST', url: '/api/v1/webhooks/events', payload: { event_id: `race-${i}`, device_id: `race-${i}`, event_type: 'smoke' } });
      const alarmId = event.json<{ alarm_ids: string[] }>().alarm_ids[0]!;
      const cancel = await t.request({ method: 'POST', url: `/api/v1/alarms/${alarmId}/cancel` });
      statuses.push(cancel.statusCode);
      expect(cancel.statusCode, cancel.body).toBe(200);
      expect(cancel.json()).toMatchObject({ status: 'canceled' });
    }
    expect(statuses).toEqual(Array(20).fill(200));
  });
});
