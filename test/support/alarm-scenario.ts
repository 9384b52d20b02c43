/** Drives the gateway through alarm scenarios on a clock the test moves, with the mock telephony. */
import { ManualClock } from '../../src/clock/clock.js';
import { MockTelephony } from '../../src/telephony/mock/mock-telephony.js';
import { createKey, createTestApp, type TestApp } from './app.js';

export interface AlarmHarness extends TestApp {
  clock: ManualClock;
  telephony: MockTelephony;
  webhookKey: string;
  /** Moves time forward in small steps, letting the gateway finish its work after each. */
  run(ms: number, stepMs?: number): Promise<void>;
  /** Registers a smoke sensor and a call rule on it; returns the rule id. */
  sensorWithRule(deviceId: string, action: Record<string, unknown>, rule?: Record<string, unknown>): Promise<number>;
  smoke(deviceId: string, eventId: string, eventType?: string): Promise<{ statusCode: number; body: Record<string, unknown> }>;
  alarm(id: string): Promise<{ status: string; calls: { to: string; status: string; attempt: number; position: number; acknowledged: boolean; hangup_cause: string | null }[] } & Record<string, unknown>>;
}

export async function createAlarmHarness(): Promise<AlarmHarness> {
  const clock = new ManualClock('2026-06-01T08:00:00Z');
  const telephony = new MockTelephony({ clock });
  const t = await createTestApp({}, { clock, telephony, instanceId: 'test-gateway' });
  const webhookKey = await createKey(t, 'webhook');
  const dispatcher = t.app.services.dispatcher;
  return {
    ...t,
    clock,
    telephony,
    webhookKey,
    async run(ms, stepMs = 250) {
      await dispatcher.settle();
      for (let elapsed = 0; elapsed < ms; elapsed += stepMs) {
        clock.advance(Math.min(stepMs, ms - elapsed));
        await dispatcher.settle();
      }
    },
    async sensorWithRule(deviceId, action, rule = {}) {
      const device = await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: deviceId, type: 'sensor_smoke', msisdn: '+79160000001' } });
      if (device.statusCode !== 201) throw new Error(device.body);
      const created = await t.request({
        method: 'POST',
        url: '/api/v1/rules',
        payload: { name: `smoke at ${deviceId}`, event_type: 'smoke', device_id: deviceId, action: { type: 'call', message: 'Smoke detected at home', ...action }, ...rule },
      });
      if (created.statusCode !== 201) throw new Error(created.body);
      return created.json<{ id: number }>().id;
    },
    async smoke(deviceId, eventId, eventType = 'smoke') {
      const response = await t.request({ method: 'POST', url: '/api/v1/webhooks/events', key: webhookKey, payload: { event_id: eventId, device_id: deviceId, event_type: eventType } });
      return { statusCode: response.statusCode, body: response.json() };
    },
    async alarm(id) {
      await dispatcher.settle();
      return (await t.request({ method: 'GET', url: `/api/v1/alarms/${id}` })).json();
    },
  };
}
