import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAlarmHarness, type AlarmHarness } from '../support/alarm-scenario.js';

let h: AlarmHarness;
beforeAll(async () => {
  h = await createAlarmHarness();
});
afterAll(async () => {
  await h.close();
});

const BUSY = '+79165550101';
const NO_ANSWER = '+79165550102';
const REJECTS = '+79165550103';
const FAILS = '+79165550104';
const NO_ACK = '+79165550105';
const RINGS = '+79165550106';
const ANSWERS = '+79161234567';

const summary = (calls: { to: string; status: string; attempt: number }[]) => calls.map((call) => `${call.to}#${call.attempt}:${call.status}`);

describe('a smoke alarm escalating through the mock telephony', () => {
  it('retries a busy number after the delay, moves on, and stops at the first confirmation', async () => {
    await h.sensorWithRule('smoke-escalate', { to: [BUSY, ANSWERS, NO_ACK], attempts: 2, retry_delay_s: 60 });
    const accepted = await h.smoke('smoke-escalate', 'evt-escalate-1');
    expect(accepted.statusCode).toBe(202);
    expect(accepted.body).toMatchObject({ status: 'accepted', matched_rules: 1, suppressed: 0 });
    const alarmId = (accepted.body.alarm_ids as string[])[0]!;

    // Dialed at once, before any time passes.
    await h.run(0);
    expect(h.telephony.placed.map((call) => call.to)).toEqual([BUSY]);

    await h.run(1_000);
    let alarm = await h.alarm(alarmId);
    expect(summary(alarm.calls)).toEqual([`${BUSY}#1:busy`, `${BUSY}#2:queued`]);

    // Nothing happens before the retry delay is over.
    await h.run(58_000);
    expect(h.telephony.placed).toHaveLength(1);
    // The first call ended busy at 0.5 s: the retry falls due at 60.5 s, and is busy again at 61 s.
    await h.run(1_600);
    expect(h.telephony.placed).toHaveLength(2);

    await h.run(10_000);
    alarm = await h.alarm(alarmId);
    expect(alarm.status).toBe('resolved');
    expect(summary(alarm.calls)).toEqual([`${BUSY}#1:busy`, `${BUSY}#2:busy`, `${ANSWERS}#1:completed`]);
    expect(alarm.calls[2]!.acknowledged).toBe(true);
    // The third number is never called.
    expect(h.telephony.placed.map((call) => call.to)).toEqual([BUSY, BUSY, ANSWERS]);

    const log = (await h.request({ method: 'GET', url: '/api/v1/event-logs', query: { correlation_id: alarm.correlation_id as string, limit: '100' } })).json();
    const types = log.items.map((row: { type: string }) => row.type).reverse();
    expect(types.slice(0, 4)).toEqual(['event.received', 'rule.matched', 'alarm.started', 'call.queued']);
    expect(types).toContain('call.dialing');
    expect(types).toContain('call.answered');
    expect(types).toContain('call.acknowledged');
    expect(types.filter((type: string) => type === 'call.failed')).toHaveLength(2);
    expect(types).toContain('alarm.resolved');
    const failed = log.items.find((row: { type: string }) => row.type === 'call.failed');
    expect(failed.details).toMatchObject({ status: 'busy', cause: 'USER_BUSY', sip_code: 486 });
  });

  it("claims the first call in the event's own transaction and dials it as that commits, with no pass between", async () => {
    await h.sensorWithRule('smoke-at-once', { to: [ANSWERS] });
    const accepted = await h.smoke('smoke-at-once', 'evt-at-once-1');
    const alarmId = (accepted.body.alarm_ids as string[])[0]!;
    await h.run(0);
    // xmin: the transaction that wrote the row's current version. The call, as dialed, is the
    // event's own write: nothing else was committed between the event and the originate.
    const { rows } = await sql<{ id: string; status: string; claimed_by: string; same_transaction: boolean }>`
      select c.id, c.status, c.claimed_by, c.xmin::text = e.xmin::text as same_transaction
        from calls c join alarms a on a.id = c.alarm_id join device_events e on e.event_id = a.event_id
       where a.id = ${alarmId}`.execute(h.database.storage.db);
    expect(rows).toEqual([{ id: expect.any(String), status: 'dialing', claimed_by: 'test-gateway', same_transaction: true }]);
    expect(h.telephony.placed.filter((call) => call.callId === rows[0]!.id)).toHaveLength(1);

    const log = (await h.request({ method: 'GET', url: '/api/v1/event-logs', query: { correlation_id: (await h.alarm(alarmId)).correlation_id as string, limit: '100' } })).json();
    const story = log.items.reverse().map((row: { type: string; details: Record<string, unknown> }) => [row.type, row.details.instance ?? null]);
    expect(story).toEqual([
      ['event.received', null],
      ['rule.matched', null],
      ['alarm.started', null],
      ['call.queued', null],
      ['call.dialing', 'test-gateway'],
    ]);
    await h.run(15_000);
    expect((await h.alarm(alarmId)).status).toBe('resolved');
  });

  it('confirmations that arrive together resolve each alarm once, with its own story', async () => {
    const sensors = Array.from({ length: 12 }, (_, n) => `smoke-together-${n}`);
    for (const sensor of sensors) await h.sensorWithRule(sensor, { to: [ANSWERS, NO_ACK] });
    const alarmIds: string[] = [];
    for (const sensor of sensors) alarmIds.push(((await h.smoke(sensor, `evt-${sensor}`)).body.alarm_ids as string[])[0]!);
    // Dialed together, so every call rings, answers and is confirmed at the same moments.
    await h.run(0);
    await h.run(15_000);
    for (const alarmId of alarmIds) {
      const alarm = await h.alarm(alarmId);
      expect(alarm.status).toBe('resolved');
      expect(summary(alarm.calls)).toEqual([`${ANSWERS}#1:completed`]);
      const log = (await h.request({ method: 'GET', url: '/api/v1/event-logs', query: { correlation_id: alarm.correlation_id as string, limit: '100' } })).json();
      const types: string[] = log.items.map((row: { type: string }) => row.type).reverse();
      expect(types.filter((type) => type === 'call.acknowledged' || type === 'alarm.resolved')).toEqual(['call.acknowledged', 'alarm.resolved']);
      expect(types.indexOf('call.answered')).toBeLessThan(types.indexOf('call.acknowledged'));
    }
  });

  it('calls that end together each decide their own alarm: the next call queued, or the alarm exhausted', async () => {
    const retrying = Array.from({ length: 6 }, (_, n) => `smoke-busy-together-${n}`);
    const declined = Array.from({ length: 6 }, (_, n) => `smoke-declined-together-${n}`);
    for (const sensor of retrying) await h.sensorWithRule(sensor, { to: [BUSY, ANSWERS], attempts: 1 });
    for (const sensor of declined) await h.sensorWithRule(sensor, { to: [REJECTS], attempts: 1 });
    const alarmOf = new Map<string, string>();
    for (const sensor of [...retrying, ...declined]) alarmOf.set(sensor, ((await h.smoke(sensor, `evt-${sensor}`)).body.alarm_ids as string[])[0]!);
    // Dialed together: the busy calls end at the same moment, and so do the declined ones.
    await h.run(0);
    await h.run(20_000);
    const story = async (correlationId: string) => {
      const log = (await h.request({ method: 'GET', url: '/api/v1/event-logs', query: { correlation_id: correlationId, limit: '100' } })).json();
      return log.items.reverse() as { type: string; details: Record<string, unknown> }[];
    };
    for (const sensor of retrying) {
      const alarm = await h.alarm(alarmOf.get(sensor)!);
      expect(alarm.status).toBe('resolved');
      expect(summary(alarm.calls)).toEqual([`${BUSY}#1:busy`, `${ANSWERS}#1:completed`]);
      const rows = await story(alarm.correlation_id as string);
      const failed = rows.findIndex((row) => row.type === 'call.failed');
      // The busy call's end, then the next call it queued: this alarm's own, not a neighbour's.
      expect(rows[failed + 1]).toMatchObject({ type: 'call.queued', details: { alarm_id: alarm.id, to: ANSWERS, position: 1 } });
      expect(rows.filter((row) => row.type === 'call.queued')).toHaveLength(2);
    }
    for (const sensor of declined) {
      const alarm = await h.alarm(alarmOf.get(sensor)!);
      expect(alarm.status).toBe('exhausted');
      expect(summary(alarm.calls)).toEqual([`${REJECTS}#1:rejected`]);
      const types = (await story(alarm.correlation_id as string)).map((row) => row.type);
      expect(types.slice(-2)).toEqual(['call.failed', 'alarm.exhausted']);
    }
  });

  it('does not retry a decline, retries no-answer and unconfirmed answers, and ends exhausted', async () => {
    await h.sensorWithRule('smoke-exhaust', { to: [REJECTS, NO_ANSWER, NO_ACK, FAILS], attempts: 2, retry_delay_s: 30, ring_timeout_s: 20 });
    const alarmId = ((await h.smoke('smoke-exhaust', 'evt-exhaust-1')).body.alarm_ids as string[])[0]!;
    await h.run(400_000, 500);
    const alarm = await h.alarm(alarmId);
    expect(alarm.status).toBe('exhausted');
    expect(summary(alarm.calls)).toEqual([
      `${REJECTS}#1:rejected`,
      `${NO_ANSWER}#1:no_answer`,
      `${NO_ANSWER}#2:no_answer`,
      `${NO_ACK}#1:completed`,
      `${NO_ACK}#2:completed`,
      `${FAILS}#1:failed`,
      `${FAILS}#2:failed`,
    ]);
    expect(alarm.calls.every((call) => !call.acknowledged)).toBe(true);
  });

  it('is satisfied by an answer when no acknowledgement is required', async () => {
    await h.sensorWithRule('smoke-noack', { to: [NO_ACK], require_ack: false });
    const alarmId = ((await h.smoke('smoke-noack', 'evt-noack-1')).body.alarm_ids as string[])[0]!;
    await h.run(10_000);
    const alarm = await h.alarm(alarmId);
    expect(alarm.status).toBe('resolved');
    expect(summary(alarm.calls)).toEqual([`${NO_ACK}#1:completed`]);
  });

  it('answers the same event_id again as a duplicate and starts nothing', async () => {
    await h.sensorWithRule('smoke-dup', { to: [ANSWERS] });
    await h.run(0);
    const placedBefore = h.telephony.placed.length;
    const first = await h.smoke('smoke-dup', 'evt-dup-1');
    const again = await h.smoke('smoke-dup', 'evt-dup-1');
    expect(again.statusCode).toBe(202);
    expect(again.body).toMatchObject({ status: 'duplicate', matched_rules: 1, alarm_ids: first.body.alarm_ids });
    await h.run(10_000);
    expect(h.telephony.placed.length - placedBefore).toBe(1);
    const log = (await h.request({ method: 'GET', url: '/api/v1/event-logs', query: { type: 'event.duplicate', device_id: 'smoke-dup' } })).json();
    expect(log.items).toHaveLength(1);
  });

  it('suppresses a repeat during an active alarm and inside the cooldown, and logs it', async () => {
    await h.sensorWithRule('smoke-repeat', { to: [RINGS], ring_timeout_s: 60, attempts: 1 }, { cooldown_s: 600 });
    const first = await h.smoke('smoke-repeat', 'evt-repeat-1');
    const during = await h.smoke('smoke-repeat', 'evt-repeat-2');
    expect(during.body).toMatchObject({ status: 'accepted', matched_rules: 1, suppressed: 1, alarm_ids: [] });
    await h.run(70_000, 1_000);
    expect((await h.alarm((first.body.alarm_ids as string[])[0]!)).status).toBe('exhausted');
    const cooling = await h.smoke('smoke-repeat', 'evt-repeat-3');
    expect(cooling.body).toMatchObject({ suppressed: 1, alarm_ids: [] });
    const log = (await h.request({ method: 'GET', url: '/api/v1/event-logs', query: { type: 'rule.suppressed', device_id: 'smoke-repeat' } })).json();
    expect(log.items.map((row: { details: { reason: string } }) => row.details.reason)).toEqual(['cooldown', 'active_alarm']);
    h.clock.advance(600_000);
    expect((await h.smoke('smoke-repeat', 'evt-repeat-4')).body.alarm_ids).toHaveLength(1);
    await h.run(70_000, 1_000);
  });

  it('ends the alarm on smoke_cleared, hanging up the ringing call and canceling the rest', async () => {
    await h.sensorWithRule('smoke-clear', { to: [RINGS, ANSWERS], ring_timeout_s: 60 });
    const alarmId = ((await h.smoke('smoke-clear', 'evt-clear-1')).body.alarm_ids as string[])[0]!;
    await h.run(1_000);
    expect(h.telephony.liveCalls()).toHaveLength(1);
    const cleared = await h.smoke('smoke-clear', 'evt-clear-2', 'smoke_cleared');
    expect(cleared.body).toMatchObject({ status: 'accepted', canceled_alarm_ids: [alarmId] });
    await h.run(1_000);
    const alarm = await h.alarm(alarmId);
    expect(alarm.status).toBe('canceled');
    expect(summary(alarm.calls)).toEqual([`${RINGS}#1:canceled`]);
    expect(h.telephony.liveCalls()).toHaveLength(0);
  });

  it('cancels a retry waiting in the queue, and logs it as canceled', async () => {
    await h.sensorWithRule('smoke-clear-retry', { to: [BUSY], attempts: 2, retry_delay_s: 60 });
    const alarmId = ((await h.smoke('smoke-clear-retry', 'evt-clear-retry-1')).body.alarm_ids as string[])[0]!;
    await h.run(1_000);
    expect(summary((await h.alarm(alarmId)).calls)).toEqual([`${BUSY}#1:busy`, `${BUSY}#2:queued`]);
    const retry = (await h.alarm(alarmId)).calls[1] as unknown as { id: string };
    expect((await h.smoke('smoke-clear-retry', 'evt-clear-retry-2', 'smoke_cleared')).body).toMatchObject({ canceled_alarm_ids: [alarmId] });
    const alarm = await h.alarm(alarmId);
    expect(summary(alarm.calls)).toEqual([`${BUSY}#1:busy`, `${BUSY}#2:canceled`]);
    const log = (await h.request({ method: 'GET', url: '/api/v1/event-logs', query: { correlation_id: alarm.correlation_id as string, limit: '100' } })).json();
    const types = log.items.map((row: { type: string }) => row.type).reverse();
    expect(types.slice(-2)).toEqual(['call.canceled', 'alarm.canceled']);
    expect(log.items[1].details).toMatchObject({ alarm_id: alarmId, call_id: retry.id, to: BUSY, position: 0, attempt: 2, status: 'canceled', reason: 'alarm canceled' });
    // Nothing is dialed after the retry's due time.
    await h.run(70_000, 1_000);
    expect(h.telephony.placed.map((call) => call.callId)).not.toContain(retry.id);
  });

  it('cancels from the API', async () => {
    await h.sensorWithRule('smoke-cancel', { to: [RINGS], ring_timeout_s: 60 });
    const alarmId = ((await h.smoke('smoke-cancel', 'evt-cancel-1')).body.alarm_ids as string[])[0]!;
    await h.run(1_000);
    const canceled = await h.request({ method: 'POST', url: `/api/v1/alarms/${alarmId}/cancel` });
    expect(canceled.statusCode).toBe(200);
    expect(canceled.json().status).toBe('canceled');
    await h.run(1_000);
    expect((await h.alarm(alarmId)).calls[0]!.status).toBe('canceled');
    expect((await h.request({ method: 'POST', url: `/api/v1/alarms/${alarmId}/cancel` })).statusCode).toBe(409);
    expect((await h.request({ method: 'POST', url: '/api/v1/alarms/00000000-0000-4000-8000-000000000000/cancel' })).statusCode).toBe(404);
  });
});

describe('the webhook intake', () => {
  it('answers 404 for an unknown device and logs it', async () => {
    const response = await h.smoke('no-such-sensor', 'evt-unknown-1');
    expect(response.statusCode).toBe(404);
    const log = (await h.request({ method: 'GET', url: '/api/v1/event-logs', query: { type: 'event.unknown_device' } })).json();
    expect(log.items[0]).toMatchObject({ device_id: 'no-such-sensor', status: 'rejected' });
  });

  it('refuses events a device does not report, and keys of other roles', async () => {
    await h.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'speaker-events', type: 'speaker', msisdn: '+79160000001', endpoint: 'http://127.0.0.1:9/x' } });
    expect((await h.smoke('speaker-events', 'evt-speaker-1')).statusCode).toBe(422);
    // A date PostgreSQL (or PGlite) cannot store is a 422 naming the field, not a 500.
    await h.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'dated-smoke', type: 'sensor_smoke', msisdn: '+79160000001' } });
    const farPast = await h.request({ method: 'POST', url: '/api/v1/webhooks/events', key: h.webhookKey, payload: { event_id: 'evt-dated', device_id: 'dated-smoke', event_type: 'test', occurred_at: '0000-01-01T00:00:00Z' } });
    expect(farPast.statusCode).toBe(422);
    expect(farPast.json().errors[0].field).toBe('body.occurred_at');
    const telephonyKey = (await h.request({ method: 'POST', url: '/api/v1/api-keys', payload: { role: 'telephony', name: 't' } })).json().key;
    const forbidden = await h.request({ method: 'POST', url: '/api/v1/webhooks/events', key: telephonyKey, payload: { event_id: 'x', device_id: 'speaker-events', event_type: 'smoke' } });
    expect(forbidden.statusCode).toBe(403);
  });

  it('lists alarms and calls with filters and pages', async () => {
    const alarms = (await h.request({ method: 'GET', url: '/api/v1/alarms', query: { limit: '2' } })).json();
    expect(alarms.items).toHaveLength(2);
    expect(alarms.next_cursor).not.toBeNull();
    const next = (await h.request({ method: 'GET', url: '/api/v1/alarms', query: { limit: '2', cursor: alarms.next_cursor } })).json();
    expect(next.items[0].id).not.toBe(alarms.items[1].id);
    const busy = (await h.request({ method: 'GET', url: '/api/v1/calls', query: { status: 'busy', to: '8 916 555-01-01' } })).json();
    expect(busy.items.length).toBeGreaterThanOrEqual(2);
    expect(busy.items.every((call: { status: string; to: string }) => call.status === 'busy' && call.to === BUSY)).toBe(true);
    const resolved = (await h.request({ method: 'GET', url: '/api/v1/alarms', query: { status: 'resolved' } })).json();
    expect(resolved.items.every((alarm: { status: string }) => alarm.status === 'resolved')).toBe(true);
  });
});
