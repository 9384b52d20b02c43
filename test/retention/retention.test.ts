import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock/clock.js';
import { RetentionCleaner, type RetainedTable } from '../../src/retention/retention.js';
import type { Db } from '../../src/storage/database.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { testLogger } from '../support/test-logger.js';

const DAY = 86_400_000;
const now = new Date();
const daysAgo = (days: number) => new Date(now.getTime() - days * DAY);

async function addEventLogs(db: Db, count: number, at: Date, type = 'device.created'): Promise<void> {
  await db
    .insertInto('event_logs')
    .values(Array.from({ length: count }, () => ({ type, status: 'ok', at, details: '{}' })))
    .execute();
}

async function addAlarm(db: Db, options: { status: string; endedDaysAgo: number | null; calls: string[]; eventId?: string }): Promise<string> {
  const id = randomUUID();
  await db
    .insertInto('alarms')
    .values({
      id,
      rule_id: 1,
      device_id: 'hall-smoke',
      event_id: options.eventId ?? randomUUID(),
      event_type: 'smoke',
      status: options.status,
      action: '{}',
      correlation_id: 'c',
      started_at: daysAgo((options.endedDaysAgo ?? 100) + 1),
      ended_at: options.endedDaysAgo === null ? null : daysAgo(options.endedDaysAgo),
    })
    .execute();
  let previous: string | null = null;
  for (const [position, status] of options.calls.entries()) {
    const callId = randomUUID();
    await db
      .insertInto('calls')
      .values({ id: callId, alarm_id: id, position, attempt: 1, to_number: '+79161234567', status, due_at: daysAgo(100), queued_at: daysAgo(100), correlation_id: 'c', redial_of: previous })
      .execute();
    previous = callId;
  }
  return id;
}

async function addIncomingCall(db: Db, receivedDaysAgo: number, notificationStatuses: string[]): Promise<string> {
  const callId = `call-${randomUUID()}`;
  const at = daysAgo(receivedDaysAgo);
  await db
    .insertInto('incoming_calls')
    .values({ call_id: callId, caller: '+74951234567', callee: '+79161234567', state: 'ended', source: 'api', correlation_id: 'c', received_at: at })
    .execute();
  const types = ['incoming_call.ringing', 'incoming_call.answered', 'incoming_call.ended'];
  for (const [index, status] of notificationStatuses.entries()) {
    await db
      .insertInto('notifications')
      .values({
        id: randomUUID(),
        call_id: callId,
        device_id: 'kitchen-speaker',
        type: types[index]!,
        step: index + 1,
        endpoint: 'http://127.0.0.1:9/notify',
        payload: '{}',
        status,
        due_at: at,
        expires_at: at,
        created_at: at,
        correlation_id: 'c',
      })
      .execute();
  }
  return callId;
}

async function exists(db: Db, table: 'alarms' | 'incoming_calls' | 'device_events', column: string, value: string): Promise<boolean> {
  const result = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)} where ${sql.ref(column)} = ${value}`.execute(db);
  return result.rows[0]!.n > 0;
}

async function count(db: Db, table: RetainedTable): Promise<number> {
  return (await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(db)).rows[0]!.n;
}

// One database for the file (the gateway below shares it): opening one is the slow part.
let database: TestDatabase;
let db: Db;
beforeAll(async () => {
  database = await createTestDatabase();
  db = database.storage.db;
});
afterAll(async () => database.close());

describe('retention removes expired rows in small batches and keeps what is still needed', () => {

  it('removes old rows of every table, batch by batch, logs and counts them', async () => {
    await addEventLogs(db, 25, daysAgo(100));
    await addEventLogs(db, 3, daysAgo(10), 'recent.kept');
    const endedAlarm = await addAlarm(db, { status: 'resolved', endedDaysAgo: 95, calls: ['busy', 'completed'] });
    const recentAlarm = await addAlarm(db, { status: 'exhausted', endedDaysAgo: 5, calls: ['no_answer'] });
    const activeEvent = `evt-${randomUUID()}`;
    const activeAlarm = await addAlarm(db, { status: 'active', endedDaysAgo: null, calls: ['busy', 'queued'], eventId: activeEvent });
    // Ended, but one call is still on the line: it waits until the call ends.
    const endingAlarm = await addAlarm(db, { status: 'canceled', endedDaysAgo: 95, calls: ['dialing'] });
    const settledCall = await addIncomingCall(db, 100, ['delivered', 'failed', 'expired']);
    const pendingCall = await addIncomingCall(db, 100, ['delivered', 'pending']);
    const recentCall = await addIncomingCall(db, 10, ['delivered']);
    const oldEvent = `evt-${randomUUID()}`;
    await db
      .insertInto('device_events')
      .values([
        { event_id: oldEvent, device_id: 'hall-smoke', event_type: 'smoke', received_at: daysAgo(100), correlation_id: 'c' },
        { event_id: activeEvent, device_id: 'hall-smoke', event_type: 'smoke', received_at: daysAgo(100), correlation_id: 'c' },
      ])
      .execute();

    const { lines, logger } = testLogger();
    const cleaner = new RetentionCleaner(
      { db, clock: new ManualClock(now), logger },
      { eventLogDays: 90, callDays: 90, notificationDays: 90, batchSize: 10, intervalMs: 3_600_000 },
    );
    const batches: [RetainedTable, number][] = [];
    cleaner.onDeleted((table, rows) => batches.push([table, rows]));
    const deleted = await cleaner.runPass();

    expect(deleted).toEqual({ event_logs: 25, device_events: 1, notifications: 4, incoming_calls: 1, alarms: 1, calls: 2 });
    // Ten rows per statement at most.
    expect(batches.filter(([table]) => table === 'event_logs').map(([, rows]) => rows)).toEqual([10, 10, 5]);
    expect(await count(db, 'event_logs')).toBe(3);
    expect(await exists(db, 'alarms', 'id', endedAlarm)).toBe(false);
    for (const kept of [recentAlarm, activeAlarm, endingAlarm]) expect(await exists(db, 'alarms', 'id', kept)).toBe(true);
    expect(await count(db, 'calls')).toBe(4);
    expect(await exists(db, 'incoming_calls', 'call_id', settledCall)).toBe(false);
    expect(await exists(db, 'incoming_calls', 'call_id', pendingCall)).toBe(true);
    expect(await exists(db, 'incoming_calls', 'call_id', recentCall)).toBe(true);
    expect(await count(db, 'notifications')).toBe(2); // the pending one and the recent one
    expect(await exists(db, 'device_events', 'event_id', oldEvent)).toBe(false);
    expect(await exists(db, 'device_events', 'event_id', activeEvent)).toBe(true);

    expect(lines).toContainEqual({ level: 'info', msg: 'retention pass removed expired rows', obj: expect.objectContaining({ deleted }) as object });
    expect(cleaner.stats).toMatchObject({ passes: 1, failedPasses: 0, deleted, lastPass: { deleted } });

    // Nothing left to remove: the next pass removes nothing and says so only at debug level.
    expect(Object.values(await cleaner.runPass()).every((rows) => rows === 0)).toBe(true);
    expect(lines.filter((line) => line.level === 'info')).toHaveLength(1);
    expect(cleaner.stats.deleted.event_logs).toBe(25);
  });

  it('keeps rows forever when a retention is 0', async () => {
    await addEventLogs(db, 2, daysAgo(4000));
    const cleaner = new RetentionCleaner(
      { db, clock: new ManualClock(now), logger: testLogger().logger },
      { eventLogDays: 0, callDays: 0, notificationDays: 0, batchSize: 10, intervalMs: 3_600_000 },
    );
    expect((await cleaner.runPass()).event_logs).toBe(0);
    expect(await count(db, 'event_logs')).toBe(5);
  });
});

describe('the gateway runs retention in the background', () => {
  let gateway: TestApp;
  const clock = new ManualClock(now);
  beforeAll(async () => {
    gateway = await createTestApp({ EVENT_LOG_RETENTION_DAYS: '30', RETENTION_INTERVAL_S: '60', RETENTION_BATCH_SIZE: '10' }, { clock, database });
  });
  afterAll(async () => gateway.app.close());

  it('a minute after start, and then every RETENTION_INTERVAL_S', async () => {
    const retention = gateway.app.services.retention;
    await addEventLogs(db, 12, daysAgo(31), 'old.row');
    clock.advance(59_000);
    await retention.settle();
    expect(retention.stats.passes).toBe(0);
    clock.advance(1_000);
    await retention.settle();
    expect(retention.stats.passes).toBe(1);
    const oldRows = () => db.selectFrom('event_logs').select('id').where('type', '=', 'old.row').execute();
    expect(await oldRows()).toHaveLength(0);
    const removedFirst = retention.stats.deleted.event_logs;
    expect(removedFirst).toBeGreaterThanOrEqual(12);

    await addEventLogs(db, 3, daysAgo(45), 'old.row');
    clock.advance(60_000);
    await retention.settle();
    expect(retention.stats).toMatchObject({ passes: 2, deleted: { event_logs: removedFirst + 3 } });
    expect(await oldRows()).toHaveLength(0);
  });
});
