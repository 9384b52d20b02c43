/** SQL of device events and signed webhook messages; each function writes a whole intake batch. */
import { sql, type Insertable, type Selectable } from 'kysely';
import { appendEvents, eventLogInsert, type EventLogEntry } from '../event-log/event-log.js';
import type { DbOrTrx } from '../storage/database.js';
import type { Database } from '../storage/schema.js';

export type DeviceEventRow = Selectable<Database['device_events']>;

/** Inserts the events whose event_id is new; returns the ids inserted (the others are duplicates). */
export async function insertNewEvents(db: DbOrTrx, rows: Insertable<Database['device_events']>[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const inserted = await db
    .insertInto('device_events')
    .values(rows)
    .onConflict((conflict) => conflict.column('event_id').doNothing())
    .returning('event_id')
    .execute();
  return new Set(inserted.map((row) => row.event_id));
}

export async function findEvents(db: DbOrTrx, eventIds: readonly string[]): Promise<Map<string, DeviceEventRow>> {
  if (eventIds.length === 0) return new Map();
  const rows = await db.selectFrom('device_events').selectAll().where('event_id', 'in', eventIds).execute();
  return new Map(rows.map((row) => [row.event_id, row]));
}

/**
 * Writes each event's outcome (returned to a later duplicate) with one UPDATE ... FROM VALUES, and
 * the log rows given by the same statement.
 */
export async function recordOutcomes(
  db: DbOrTrx,
  outcomes: readonly { eventId: string; matchedRules: number; outcome: object }[],
  logged: readonly EventLogEntry[],
): Promise<void> {
  if (outcomes.length === 0) {
    await appendEvents(db, [...logged]);
    return;
  }
  const rows = sql.join(outcomes.map((each) => sql`(${each.eventId}::text, ${each.matchedRules}::integer, ${JSON.stringify(each.outcome)}::jsonb)`));
  const withLog = logged.length > 0 ? sql`with logged as (${eventLogInsert(logged)}) ` : sql``;
  await sql`${withLog}update device_events as event set matched_rules = given.matched_rules, outcome = given.outcome
    from (values ${rows}) as given (event_id, matched_rules, outcome)
    where event.event_id = given.event_id`.execute(db);
}

/** Keeps signed messages' ids; returns the ids kept (one already kept is a replay). */
export async function insertNewMessages(db: DbOrTrx, rows: Insertable<Database['webhook_messages']>[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const inserted = await db
    .insertInto('webhook_messages')
    .values(rows)
    .onConflict((conflict) => conflict.column('webhook_id').doNothing())
    .returning('webhook_id')
    .execute();
  return new Set(inserted.map((row) => row.webhook_id));
}

/** Drops the ids of messages no replay could use any more. */
export async function pruneMessages(db: DbOrTrx, now: Date): Promise<void> {
  await db.deleteFrom('webhook_messages').where('expires_at', '<', now).execute();
}
